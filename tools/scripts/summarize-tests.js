#!/usr/bin/env node
// Adds up the test runners' own result files in a folder and prints the one
// line CI reads: "N passed, N failed" (", N skipped" when any were skipped).
// jest writes *.json (--json --outputFile); node's test runner writes *.tap.
// Exits 1 when a test failed, a suite failed to run, or no results exist.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dir = process.argv[2];
if (!dir) {
  console.error('usage: summarize-tests.js RESULTS_DIR');
  process.exit(2);
}

let passed = 0, failed = 0, skipped = 0, brokenSuites = 0, files = 0;
const files_ = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
for (const name of files_) {
  const file = path.join(dir, name);
  if (name.endsWith('.json')) {
    const r = JSON.parse(fs.readFileSync(file, 'utf8'));
    passed += r.numPassedTests;
    failed += r.numFailedTests;
    skipped += r.numPendingTests + (r.numTodoTests ?? 0);
    // A test file that fails to load has no failed test but a failed suite: count it.
    const broken = r.testResults.filter((t) => t.status === 'failed' && t.assertionResults.every((a) => a.status !== 'failed'));
    brokenSuites += broken.length;
    for (const t of broken) console.log(`broken suite: ${t.name}: ${(t.message || '').split('\n')[0]}`);
    files++;
  } else if (name.endsWith('.tap')) {
    const text = fs.readFileSync(file, 'utf8');
    const count = (key) => Number((text.match(new RegExp(`^# ${key} (\\d+)$`, 'm')) || [0, 0])[1]);
    passed += count('pass');
    failed += count('fail') + count('cancelled');
    skipped += count('skipped') + count('todo');
    files++;
  }
}
failed += brokenSuites;
if (files === 0) {
  console.log(`no test results in ${dir}`);
  failed += 1;
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
