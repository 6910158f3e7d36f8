'use strict';
// Issue 6 asks for the two sides "alternating": rather than all C samples
// then all library samples (which would put any drift of the machine, such
// as the TCG guest's translation cache warming, on one side only), each
// round runs the baseline then the library, and the samples of all rounds
// are pooled.

/**
 * rounds: how many baseline/library pairs. runBaseline(round) and
 * runLibrary(round) return { id: { batch, samples } } for the measurements
 * they ran; returns { id: { baseline, library } } with samples pooled.
 */
async function alternate(rounds, runBaseline, runLibrary) {
  const pooled = {};
  const add = (side, byId) => {
    for (const [id, rec] of Object.entries(byId)) {
      pooled[id] ??= {};
      const slot = (pooled[id][side] ??= { batch: rec.batch, samples: [] });
      slot.samples.push(...rec.samples);
    }
  };
  for (let r = 0; r < rounds; r++) {
    add('baseline', await runBaseline(r));
    add('library', await runLibrary(r));
  }
  return pooled;
}

module.exports = { alternate };
