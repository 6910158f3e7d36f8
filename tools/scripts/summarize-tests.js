#!/usr/bin/env node
// Adds up the test runners' own result files in a folder: one line per file
// ("guest debian-6.1: N passed, N failed", "host vfio-ioctls: ..."), then the
// one line CI reads: "N passed, N failed" (", N skipped" when any were
// skipped). jest writes *.json (--json --outputFile); node's test runner
// writes *.tap (guest-<kernel>[-<boot>].tap per entry of the kernel matrix,
// *-harness.tap when a run broke before its report was complete).
// Exits 1 when a test failed, a suite failed to run, or no results exist.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { tapCounts } = require('./tap-counts');

const dir = process.argv[2];
if (!dir) {
  console.error('usage: summarize-tests.js RESULTS_DIR');
  process.exit(2);
}

// "guest-vfio-7.3-noiommu.tap" -> "guest vfio-7.3-noiommu", "vfio-ioctls.json" -> "host vfio-ioctls".
const label = (name) => {
  const base = name.replace(/\.(json|tap)$/, '');
  return base.startsWith('guest-') ? `guest ${base.slice(6)}` : base === 'fresh-machine' ? 'fresh-machine' : `host ${base}`;
};

function countJest(file) {
  const r = JSON.parse(fs.readFileSync(file, 'utf8'));
  // A test file that fails to load has no failed test but a failed suite: count it.
  const broken = r.testResults.filter((t) => t.status === 'failed' && t.assertionResults.every((a) => a.status !== 'failed'));
  for (const t of broken) console.log(`broken suite: ${t.name}: ${(t.message || '').split('\n')[0]}`);
  return { passed: r.numPassedTests, failed: r.numFailedTests + broken.length, skipped: r.numPendingTests + (r.numTodoTests ?? 0) };
}

function countTap(file) {
  // A report cut off before its counts has passed nothing; the harness that
  // ran it records the failure in a report of its own.
  return tapCounts(fs.readFileSync(file, 'utf8')) ?? { passed: 0, failed: 0, skipped: 0 };
}

let passed = 0, failed = 0, skipped = 0, files = 0;
for (const name of fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []) {
  const file = path.join(dir, name);
  const c = name.endsWith('.json') ? countJest(file) : name.endsWith('.tap') ? countTap(file) : null;
  if (!c) continue;
  console.log(`${label(name)}: ${c.passed} passed, ${c.failed} failed${c.skipped ? `, ${c.skipped} skipped` : ''}`);
  passed += c.passed;
  failed += c.failed;
  skipped += c.skipped;
  files++;
}
if (files === 0) {
  console.log(`no test results in ${dir}`);
  failed += 1;
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
