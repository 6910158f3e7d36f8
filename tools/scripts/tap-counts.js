'use strict';
// The closing counts of a TAP report written by node's test runner
// (`# pass N`, `# fail N`, ...). Shared by the test summary and the guest
// suite's harness, so both read a report the same way.

/**
 * { passed, failed, skipped } of a TAP report's text (failed includes
 * cancelled, skipped includes todo), or undefined when the report has no
 * `# fail` line: it was cut off before the runner finished.
 */
function tapCounts(text) {
  const count = (key) => Number((new RegExp(`^# ${key} (\\d+)$`, 'm').exec(text) || [0, 0])[1]);
  if (!/^# fail \d+$/m.test(text)) return undefined;
  return { passed: count('pass'), failed: count('fail') + count('cancelled'), skipped: count('skipped') + count('todo') };
}

module.exports = { tapCounts };
