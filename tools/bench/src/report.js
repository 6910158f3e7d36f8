'use strict';
// The one place results are turned into text: the console table and the
// Markdown table of the README (same rows), plus the list of missed targets.

function fmtNs(ns) {
  if (ns == null || !Number.isFinite(ns)) return '-';
  if (ns < 1e3) return `${ns.toFixed(ns < 10 ? 1 : 0)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 2 : 1)} us`;
  return `${(ns / 1e6).toFixed(2)} ms`;
}

const fmtRatio = (r) => (r == null || !Number.isFinite(r) ? '-' : `${r.toFixed(2)}x`);

/** Rows shared by both renderings. */
function rows(results) {
  const out = [];
  for (const m of results.measurements) {
    out.push([
      String(m.item),
      m.label,
      m.where,
      `${fmtNs(m.c.min)} / ${fmtNs(m.c.median)}`,
      `${fmtNs(m.js.min)} / ${fmtNs(m.js.median)}`,
      `${fmtRatio(m.ratio.median)} (min ${fmtRatio(m.ratio.min)})`,
      m.target ? `${m.target}: ${m.verdict}` : '',
    ]);
  }
  for (const d of results.derived ?? []) {
    out.push([String(d.item), d.label, d.where, d.baselineText, d.libraryText, d.valueText, d.target ? `${d.target}: ${d.verdict}` : '']);
  }
  return out;
}

const HEADER = ['#', 'measurement', 'where', 'baseline min / median', 'library min / median', 'library / baseline (median)', 'target'];

function consoleTable(results) {
  const all = [HEADER, ...rows(results)];
  const widths = HEADER.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(all[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}

function markdownTable(results) {
  const esc = (s) => s.replace(/\|/g, '\\|');
  return [
    `| ${HEADER.join(' | ')} |`,
    `|${HEADER.map(() => '---').join('|')}|`,
    ...rows(results).map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

/** Every target that was measured and missed, as one line each. */
function missed(results) {
  const out = [];
  for (const m of results.measurements) if (m.verdict === 'MISSED') out.push(`${m.label}: ${fmtRatio(m.ratio.median)}, target ${m.target}`);
  for (const d of results.derived ?? []) if (d.verdict === 'MISSED') out.push(`${d.label}: ${d.valueText}, target ${d.target}`);
  return out;
}

/**
 * One line per soak run: what must come back exactly (fds, VFIO mappings,
 * VmLck, VmPin), RSS against its tolerance, and the figures that say where
 * RSS went (V8 heap, malloc in use) with their per-cycle slopes over the
 * second half of the run.
 */
function soakLines(soak) {
  const out = [];
  for (const run of soak.runs ?? []) {
    const d = (k) => `${run.start[k]} -> ${run.end[k]}`;
    const kib = (k) => `${d(k)} KiB (${signed(run.end[k] - run.start[k])})`;
    const slope = (k) => (run.slopes?.[k] == null ? '' : `, ${signed(run.slopes[k])} B/cycle in the second half`);
    const leaked = Object.values(run.leakedFds ?? {});
    out.push(
      `- ${run.backend ? `${run.backend}, ` : ''}${run.label}: ${run.cycles}${run.cycles === run.requested ? '' : ` of ${run.requested}`} cycles after ${run.warmupCycles ?? 0} ${run.warmupOwnCycles ? 'warm-up cycles of its own kind' : 'closed warm-up cycles'}, ${run.seconds.toFixed(0)} s` +
        `${run.cycles ? ` (${((run.seconds * 1000) / run.cycles).toFixed(1)} ms/cycle)` : ''}` +
        `${run.mode === 'half' ? `, ${Math.ceil(run.cycles / 2)} closed and ${Math.floor(run.cycles / 2)} dropped` : ''}: ` +
        `fds ${d('fds')}, VFIO mappings ${d('vfioMaps')}, VmLck ${d('lockedKiB')} KiB, VmPin ${d('pinnedKiB')} KiB; ` +
        `RSS ${kib('rssKiB')}${slope('rss')}, tolerance +${run.rssToleranceKiB} KiB; V8 heap used ${kib('heapUsedKiB')}${slope('heapUsed')}` +
        `${run.start.mallocKiB == null ? '' : `; malloc in use ${kib('mallocKiB')}${slope('malloc')}`}: **${run.clean ? 'clean' : 'NOT CLEAN'}**` +
        `${run.mapsOutlivedFds ? `; in ${run.mapsOutlivedFds} cycles a dropped BAR mapping was unmapped only after the fds were closed (waited for)` : ''}` +
        `${leaked.length ? `; fds left open: ${leaked.join(', ')}` : ''}${run.failure ? `; stopped: ${run.failure}` : ''}`,
    );
  }
  return out;
}

function signed(n) {
  return `${n >= 0 ? '+' : ''}${n}`;
}

module.exports = {
  soakLines, consoleTable, markdownTable, missed, fmtNs, fmtRatio };
