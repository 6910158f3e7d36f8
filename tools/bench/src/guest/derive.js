'use strict';
// Figures the issue asks for that are not a plain library/C ratio: mapped
// MMIO against the pread path (why mapping matters), and interrupts per
// second from the closed-loop measurement.
const { fmtNs } = require('../report');
const { verdict, TARGETS } = require('../targets');

function derive(measurements) {
  const m = Object.fromEntries(measurements.map((x) => [x.id, x]));
  const out = [];
  for (const [mmio, pio, what] of [['mmio-read32', 'pread-4', 'read32'], ['mmio-write32', 'pwrite-4', 'write32']]) {
    if (!m[mmio] || !m[pio]) continue;
    const lib = m[pio].js.median / m[mmio].js.median;
    const c = m[pio].c.median / m[mmio].c.median;
    out.push({
      id: `${mmio}-vs-pread`,
      item: 3,
      where: 'guest',
      label: `${what}: mapped vs pread/pwrite speed-up`,
      value: lib,
      cValue: c,
      baselineText: `C: ${c.toFixed(1)}x (${fmtNs(m[mmio].c.median)} vs ${fmtNs(m[pio].c.median)})`,
      libraryText: `library: ${lib.toFixed(1)}x (${fmtNs(m[mmio].js.median)} vs ${fmtNs(m[pio].js.median)})`,
      valueText: `${lib.toFixed(1)}x faster`,
      target: TARGETS.mmioVsPread.text,
      verdict: verdict('mmioVsPread', lib),
    });
  }
  const rate = m['irq-rate'];
  if (rate) {
    const perSec = (ns) => Math.round(1e9 / ns);
    out.push({
      id: 'irq-per-second',
      item: 5,
      where: 'guest',
      label: 'interrupts per second, sustained',
      value: perSec(rate.js.median),
      cValue: perSec(rate.c.median),
      baselineText: `C: ${perSec(rate.c.median)}/s`,
      libraryText: `library: ${perSec(rate.js.median)}/s`,
      valueText: `${(rate.c.median / rate.js.median).toFixed(2)} of C's rate`,
      target: null,
      verdict: '',
    });
  }
  return out;
}

module.exports = { derive };
