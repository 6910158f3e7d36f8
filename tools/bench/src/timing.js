'use strict';
// Batch timing shared by every JS measurement, the mirror of c/bench.h: a
// sample is one batch's time divided by its size, so reading the clock
// (process.hrtime.bigint costs tens of ns, more in the guest) is spread
// over the batch; warm-up batches let V8 optimise the loop before timing.

/** Runs fn `batch` times per sample; returns ns per call for each sample. */
function measureSync(fn, { batch, samples, warmup }) {
  const out = [];
  for (let s = 0; s < warmup + samples; s++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) fn();
    const t1 = process.hrtime.bigint();
    if (s >= warmup) out.push(Number(t1 - t0) / batch);
  }
  return out;
}

/** The same for an operation that completes asynchronously (interrupts). */
async function measureAsync(fn, { batch, samples, warmup }) {
  const out = [];
  for (let s = 0; s < warmup + samples; s++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) await fn();
    const t1 = process.hrtime.bigint();
    if (s >= warmup) out.push(Number(t1 - t0) / batch);
  }
  return out;
}

function stats(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  const median = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return { n, min: sorted[0], median, max: sorted[n - 1] };
}

module.exports = { measureSync, measureAsync, stats };
