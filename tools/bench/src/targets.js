'use strict';
// Issue 6's targets, as data: reported against, never asserted (a slow CI
// machine must not fail a build over a benchmark). `ratio` is library / C
// (or library / hand-written DataView for the codecs), on the medians.

const TARGETS = {
  ioctl: { max: 1.5, text: 'at most 1.5x C' },
  dma: { max: 1.2, text: 'at most 1.2x C' },
  mmio: { max: 3, text: 'at most 3x C' },
  irqLatency: { max: 2, text: 'median at most 2x C' },
  kvmIrqfd: { max: 1.2, text: 'irqfd within 1.2x C (in-guest latency)' },
  // Issue 12: the same latency after the faster JS path, on the minima.
  irqLatencyMin: { max: 2, text: 'min at most 2x C' },
  codec: { max: 1, text: 'at least as fast as DataView' },
  // Mapped access against the library's own pread path: pread time / mmio time.
  mmioVsPread: { min: 20, text: 'mapped at least 20x faster than pread' },
};

/** 'met' | 'MISSED' | '' for a measured value against a target key. */
function verdict(targetKey, value) {
  const t = TARGETS[targetKey];
  if (!t || value == null || !Number.isFinite(value)) return '';
  if (t.max != null) return value <= t.max ? 'met' : 'MISSED';
  return value >= t.min ? 'met' : 'MISSED';
}

module.exports = { TARGETS, verdict };
