'use strict';
// The generated README section: where and how the figures were taken, the
// table, the soak figures and the missed targets.
const { markdownTable, soakLines } = require('./report');

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
      `- Guest: QEMU${g.qemuVersion ? ` ${g.qemuVersion}` : ''} q35 + intel-iommu, **${g.accelerator.toUpperCase()}${g.kvm ? '' : ' (no KVM: software emulation)'}**, ` +
        `${g.cpu}, ${g.cores} vCPUs, Linux ${g.kernel}${g.kernelName ? ` (tools/vm kernel \`${g.kernelName}\`)` : ''}, Node ${g.node}, device edu bound to vfio-pci.`,
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

module.exports = { renderReadmeSection };
