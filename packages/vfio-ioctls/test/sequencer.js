// Runs test/finalizers.test.ts first, then the rest in Jest's own order.
// Why first: see the note at the top of that file (a Node 20 V8 bug stops
// every FinalizationRegistry callback once some registry dies with a cleanup
// pending, and Jest drops the registries of each file it has run).
const Sequencer = require('@jest/test-sequencer').default;

const FIRST = /[\\/]test[\\/]finalizers\.test\.ts$/;

class FinalizersFirst extends Sequencer {
  sort(tests) {
    const sorted = super.sort(tests);
    return [...sorted.filter((t) => FIRST.test(t.path)), ...sorted.filter((t) => !FIRST.test(t.path))];
  }
}

module.exports = FinalizersFirst;
