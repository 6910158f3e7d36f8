#!/usr/bin/env node
// Host side of `pnpm test:guest`: boots the test bed once (profile suite) and
// runs every compiled guest test file in it with node's test runner, one file
// at a time (the files share the devices). The spec report streams on the
// console; the TAP report lands in <repo>/.cache/test-results/guest.tap,
// where tools/scripts/summarize-tests.js counts it.
//
// VFIO_GUEST_TIMEOUT (seconds, default 900) bounds the whole guest run.
//
// Exit status: the guest command's (non-zero when a test failed), or the
// harness's 125 when the test bed itself failed. Whenever the run failed
// without the TAP file recording a failure (the guest died, QEMU aborted,
// the runner never finished), guest-harness.tap records one, so that CI's
// count can never read a broken run as a clean one.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const packageDir = path.resolve(__dirname, '../..');
const repo = path.resolve(packageDir, '../..');
const results = path.join(repo, '.cache/test-results');
const tap = path.join(results, 'guest.tap');
const harnessTap = path.join(results, 'guest-harness.tap');
const testsDir = 'dist-guest/test/guest/';

if (!fs.existsSync(path.join(packageDir, testsDir))) {
  console.error(`${testsDir} is missing: run \`pnpm run build:guest\` first`);
  process.exit(2);
}
fs.mkdirSync(results, { recursive: true });
fs.rmSync(tap, { force: true });
fs.rmSync(harnessTap, { force: true });

const guestCommand = [
  'node', '--test', '--test-concurrency=1',
  '--test-reporter=spec', '--test-reporter-destination=stdout',
  '--test-reporter=tap', `--test-reporter-destination=${tap}`,
  testsDir,
];
const started = Date.now();
const run = spawnSync(process.execPath, [
  path.join(repo, 'tools/vm/bin/vm.js'), 'run', '--profile', 'suite',
  '--results', results, '--env', 'NO_COLOR=1', '--timeout', process.env.VFIO_GUEST_TIMEOUT ?? '900',
  '--', ...guestCommand,
], { cwd: packageDir, stdio: 'inherit' });
const seconds = ((Date.now() - started) / 1000).toFixed(1);
const status = run.status ?? 1;

/** The `# fail N` count of the TAP report, or undefined when the report is missing or unfinished. */
function failCount() {
  if (!fs.existsSync(tap)) return undefined;
  const match = /^# fail (\d+)$/m.exec(fs.readFileSync(tap, 'utf8'));
  return match ? Number(match[1]) : undefined;
}

const failed = failCount();
const broken = failed === undefined || (status !== 0 && failed === 0);
if (broken) {
  const why = status === 125 ? 'the test bed failed (see the harness message above)'
    : failed === undefined ? `the guest run ended with status ${status} before the TAP report was complete`
      : `the guest run ended with status ${status} although no test failed`;
  fs.writeFileSync(harnessTap, `TAP version 13\nnot ok 1 - guest run\n# ${why}\n1..1\n# tests 1\n# pass 0\n# fail 1\n`);
  console.error(`test:guest: ${why}; recorded as a failure in ${path.relative(repo, harnessTap)}`);
}
console.log(`test:guest: guest run took ${seconds} s (boot included), exit status ${status}`);
process.exit(status !== 0 ? status : failed || broken ? 1 : 0);
