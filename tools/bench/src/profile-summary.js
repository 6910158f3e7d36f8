'use strict';
// Reads V8 .cpuprofile files (node --cpu-prof) and lists where the time
// went, by self time per function: the "what the profile shows" behind a
// missed target.
const fs = require('node:fs');
const path = require('node:path');

function summarize(dir, top = 15) {
  const self = new Map();
  let total = 0;
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const p = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    const dt = new Map();
    p.samples.forEach((id, i) => dt.set(id, (dt.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
    for (const n of p.nodes) {
      const f = n.callFrame;
      const where = f.url ? `${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}` : '';
      const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
      const us = dt.get(n.id) ?? 0;
      self.set(key, (self.get(key) ?? 0) + us);
      total += us;
    }
  }
  return [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([fn, us]) => ({ fn, selfPercent: Math.round((1000 * us) / total) / 10 }));
}

module.exports = { summarize };

if (require.main === module) {
  for (const r of summarize(process.argv[2], Number(process.argv[3] ?? 15))) console.log(`${String(r.selfPercent).padStart(5)}%  ${r.fn}`);
}
