'use strict';
// Figures the issues ask for that are not a plain library/C ratio: mapped
// MMIO against the pread path (why mapping matters), interrupts per second
// from the closed-loop measurement, and (issue 13) the migration save as
// bytes/s and its data fd read to the end (the save cycle minus the same
// arcs without the read).
const { fmtNs } = require('../report');
const { verdict, TARGETS } = require('../targets');

/** Vectors per storm (storm-ops.js, c/irq_storm.c). */
const STORM_VECTORS = 64;

/** `migrationBytes`: MIG_DATA_SIZE of the saved device (every save read exactly that). */
function derive(measurements, { migrationBytes } = {}) {
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
  const latency = m['irq-latency'];
  if (latency) {
    out.push({
      id: 'irq-latency-min',
      item: 12,
      where: 'guest',
      label: 'interrupt latency to a JS listener, minima (edu MSI raise -> listener; one drained wake-up per interrupt)',
      value: latency.ratio.min,
      cValue: latency.c.min,
      baselineText: `C: min ${fmtNs(latency.c.min)}, median ${fmtNs(latency.c.median)}`,
      libraryText: `library: min ${fmtNs(latency.js.min)}, median ${fmtNs(latency.js.median)}`,
      valueText: `${latency.ratio.min.toFixed(2)}x C (min), ${latency.ratio.median.toFixed(2)}x (median)`,
      target: TARGETS.irqLatencyMin.text,
      verdict: verdict('irqLatencyMin', latency.ratio.min),
    });
  }
  const storm = m['msix-storm'];
  if (storm) {
    const perSec = (ns) => Math.round((STORM_VECTORS * 1e9) / ns);
    out.push({
      id: 'msix-storm-per-second',
      item: 12,
      where: 'guest',
      label: `MSI-X storm: interrupts per second (${STORM_VECTORS} vectors per storm, each counted exactly once: none lost)`,
      value: perSec(storm.js.median),
      cValue: perSec(storm.c.median),
      baselineText: `C: ${perSec(storm.c.median)}/s (best ${perSec(storm.c.min)}/s)`,
      libraryText: `library: ${perSec(storm.js.median)}/s (best ${perSec(storm.js.min)}/s)`,
      valueText: `${(storm.c.median / storm.js.median).toFixed(2)} of C's rate`,
      target: null,
      verdict: '',
    });
  }
  out.push(...deriveGuestMemory(m));
  out.push(...deriveMigration(m, migrationBytes));
  return out;
}

/** Issue 12: how much faster 1 GiB of guest memory maps with 2 MiB huge pages than with 4 KiB pages, per backend. */
function deriveGuestMemory(m) {
  const out = [];
  for (const suffix of ['', '@iommufd']) {
    const small = m[`gmem-1g-4k${suffix}`];
    const huge = m[`gmem-1g-2m${suffix}`];
    if (!small || !huge) continue;
    const lib = small.js.median / huge.js.median;
    const c = small.c.median / huge.c.median;
    out.push({
      id: `gmem-1g-2m-vs-4k${suffix}`,
      item: 12,
      where: 'guest',
      label: `1 GiB guest memory map + unmap: 2 MiB huge pages vs 4 KiB pages speed-up${suffix ? ', iommufd' : ', container'}`,
      value: lib,
      cValue: c,
      baselineText: `C: ${c.toFixed(1)}x (${fmtNs(huge.c.median)} vs ${fmtNs(small.c.median)})`,
      libraryText: `library: ${lib.toFixed(1)}x (${fmtNs(huge.js.median)} vs ${fmtNs(small.js.median)})`,
      valueText: `${lib.toFixed(1)}x faster`,
      target: null,
      verdict: '',
    });
  }
  return out;
}

const rate = (bytes, ns) => {
  const perSec = (bytes * 1e9) / ns;
  return perSec >= 1e6 ? `${(perSec / 1e6).toFixed(2)} MB/s` : `${(perSec / 1e3).toFixed(1)} kB/s`;
};

function deriveMigration(m, bytes) {
  const cycle = m['mig-save-cycle'];
  const arcs = m['mig-save-arcs'];
  const out = [];
  if (!cycle || !bytes) return out;
  out.push({
    id: 'mig-save-rate',
    item: 13,
    bytes,
    where: 'guest',
    label: `migration save cycle as a rate (${bytes} B of mtty state per save: a fixed cost, not a link speed)`,
    value: (bytes * 1e9) / cycle.js.median, // bytes/s
    cValue: (bytes * 1e9) / cycle.c.median,
    baselineText: `C: ${rate(bytes, cycle.c.median)}, ${Math.round(1e9 / cycle.c.median)} saves/s`,
    libraryText: `library: ${rate(bytes, cycle.js.median)}, ${Math.round(1e9 / cycle.js.median)} saves/s`,
    valueText: `${(cycle.c.median / cycle.js.median).toPrecision(2)} of C's rate`,
    target: null,
    verdict: '',
  });
  if (!arcs) return out;
  // Medians subtracted: two noisy figures, so the difference is rough.
  const read = (side) => cycle[side].median - arcs[side].median;
  const text = (side) => (read(side) > 0 ? `${fmtNs(read(side))} (${rate(bytes, read(side))})` : `${fmtNs(read(side))} (below the noise)`);
  const readViaCall = m['mig-save-cycle-read'] ? m['mig-save-cycle-read'].js.median - arcs.js.median : null;
  out.push({
    id: 'mig-read-to-end',
    item: 13,
    bytes,
    where: 'guest',
    label: 'migration data fd read to its end (save cycle minus arcs only, medians)',
    value: read('js'),
    cValue: read('c'),
    baselineText: `C: ${text('c')}`,
    libraryText: `library: stream ${text('js')}${readViaCall == null ? '' : `; read() loop ${fmtNs(readViaCall)}`}`,
    valueText: read('c') > 0 ? `${(read('js') / read('c')).toFixed(2)}x` : '-',
    target: null,
    verdict: '',
  });
  return out;
}

module.exports = { derive };
