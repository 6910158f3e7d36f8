'use strict';
// The generated README section: where and how the figures were taken, the
// table, the soak figures and the missed targets.
const { markdownTable } = require('./report');

function renderReadmeSection(r) {
  const h = r.host;
  const g = r.guest;
  const lines = [
    `Run of ${r.date.slice(0, 16).replace('T', ' ')} UTC, \`${r.command}\`, ${r.seconds.toFixed(0)} s in all.`,
    '',
    ...(r.source ? [`- Code: commit ${r.source.commit.slice(0, 7)}${r.source.packagesDirty ? ' with uncommitted changes in packages/ (see `source.dirtyFiles` in the JSON)' : ''}.`] : []),
    `- Host: ${h.cpu}, ${h.cores} cores, ${h.memoryGiB} GiB, Linux ${h.kernel}, Node ${h.node}${h.hypervisorFlag ? ' (itself a VM)' : ''}` +
      `${h.loadAverage ? `, load average ${h.loadAverage.join(' / ')} at the start (shared with other work)` : ''}.`,
  ];
  if (g) {
    lines.push(
      `- Guest: QEMU q35 + intel-iommu, **${g.accelerator.toUpperCase()}${g.kvm ? '' : ' (no KVM: software emulation)'}**, ` +
        `${g.cpu}, ${g.cores} vCPUs, Linux ${g.kernel}, Node ${g.node}, device edu bound to vfio-pci.`,
    );
  }
  lines.push(
    `- ${r.options.rounds} rounds of baseline then library, ${r.options.samples} samples per side per round after ${r.options.warmup} warm-up batches; ` +
      'min and median of the per-call time (batch time / batch size).',
    '',
    markdownTable(r),
    '',
  );
  if (r.soak) lines.push('Soak (leaks):', '', ...soakLines(r.soak), '');
  lines.push(r.missed.length ? 'Targets missed in this run:' : 'All targets met in this run.');
  for (const m of r.missed) lines.push(`- ${m}`);
  return lines.join('\n');
}

function soakLines(soak) {
  const out = [];
  for (const run of soak.runs ?? []) {
    const d = (k) => `${run.start[k]} -> ${run.end[k]}`;
    const leaked = Object.values(run.leakedFds ?? {});
    out.push(
      `- ${run.label}: ${run.cycles}${run.cycles === run.requested ? '' : ` of ${run.requested}`} cycles in ${run.seconds.toFixed(1)} s` +
        `${run.cycles ? ` (${((run.seconds * 1000) / run.cycles).toFixed(1)} ms/cycle)` : ''}; ` +
        `fds ${d('fds')}, ${run.start.vfioMaps === undefined ? '' : `VFIO mappings ${d('vfioMaps')}, `}VmLck ${d('lockedKiB')} KiB, VmPin ${d('pinnedKiB')} KiB, RSS ${d('rssKiB')} KiB ` +
        `(V8 heap ${d('heapUsedKiB')} KiB, external ${d('externalKiB')} KiB${rssSlope(run.checkpoints)}): **${run.clean ? 'clean' : 'NOT CLEAN'}**` +
        `${run.mapsOutlivedFds ? `; in ${run.mapsOutlivedFds} cycles a dropped BAR mapping was unmapped only after the fds were closed (waited for)` : ''}` +
        `${leaked.length ? `; fds left open: ${leaked.join(', ')}` : ''}${run.failure ? `; stopped: ${run.failure}` : ''}`,
    );
  }
  return out;
}

/** RSS growth per cycle from the first checkpoint on (past warm-up), where there are two. */
function rssSlope(checkpoints) {
  if (!checkpoints || checkpoints.length < 2) return '';
  const [a, b] = [checkpoints[0], checkpoints[checkpoints.length - 1]];
  return `; RSS from cycle ${a.cycle} to ${b.cycle}: ${((b.rssKiB - a.rssKiB) / (b.cycle - a.cycle)).toFixed(1)} KiB/cycle`;
}

module.exports = { renderReadmeSection };
