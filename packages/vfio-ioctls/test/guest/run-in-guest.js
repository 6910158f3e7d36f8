#!/usr/bin/env node
// Host side of `pnpm test:guest`: runs the guest suite on every entry of the
// test bed's kernel matrix (tools/vm/lib/kernels.js: a kernel, a boot variant
// and a device profile), one guest boot per entry. Each test file declares what it needs
// on its first line (`// @guest-needs iommu kvm`); a file is registered only
// on the entries whose capabilities cover its needs, and the table of which
// file runs where is printed first. Every entry runs capabilities.test.js,
// which fails when a kernel lacks a capability it promises (or has one it
// does not), so nothing is skipped silently.
//
// Per entry, node's test runner writes a TAP report to
// <repo>/.cache/test-results/guest-<entry>.tap (counted by
// tools/scripts/summarize-tests.js) and the spec report streams on the
// console. A run that fails without a TAP failure (the guest died, QEMU
// aborted) is recorded as a failure in guest-<entry>-harness.tap, so CI's
// count never reads a broken run as a clean one.
//
// A file whose second line is `// @guest-backends container iommufd` is
// backend-neutral: on entries whose kernel has iommufd (where Device.open
// picks it), it runs a second time in its own boot with
// VFIO_GUEST_IOMMU=container (entry name suffixed '@container'), so the
// same public API is seen to behave the same on both backends.
//
// An entry with `backends: ['container']` (kernels.js; compat-7.3, whose
// /dev/vfio/vfio is iommufd's emulation) tests one backend: it boots once,
// with VFIO_GUEST_IOMMU=container, and runs the files that need nothing
// (capabilities) and those whose `@guest-backends` line names the
// container: the backend-neutral ones, and the container files that hold on
// any container (`// @guest-backends container`). The other files, written
// for VFIO's own container or for iommufd's API, stay with the entries that
// test both backends.
//
// VFIO_GUEST_KERNELS (e.g. "debian-6.1,vfio-7.3/noiommu") picks entries;
// VFIO_GUEST_FILES (e.g. "iommufd,dma-irq") picks test files (while working on them);
// VFIO_GUEST_QEMU (host | 11.1) runs every entry on that QEMU (to compare);
// VFIO_GUEST_TIMEOUT (seconds, default 900) bounds each guest run.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const packageDir = path.resolve(__dirname, '../..');
const repo = path.resolve(packageDir, '../..');
const vm = require(path.join(repo, 'tools/vm/lib'));
const { tapCounts } = require(path.join(repo, 'tools/scripts/tap-counts'));
const results = path.join(repo, '.cache/test-results');
const testsDir = 'dist-guest/test/guest';
const sourceDir = path.join(packageDir, 'test/guest');

/** The capabilities each test file needs, from its `// @guest-needs` first line. */
function testFiles() {
  return fs.readdirSync(sourceDir).filter((f) => f.endsWith('.test.ts')).sort().map((f) => {
    const first = fs.readFileSync(path.join(sourceDir, f), 'utf8').split('\n')[0];
    const m = /^\/\/ @guest-needs\s*(.*)$/.exec(first);
    if (!m) throw new Error(`${f}: the first line must declare its needs: // @guest-needs <capabilities> (or "(none...)")`);
    const needs = m[1].startsWith('(') ? [] : m[1].split(/\s+/).filter(Boolean);
    const second = fs.readFileSync(path.join(sourceDir, f), 'utf8').split('\n')[1];
    const b = /^\/\/ @guest-backends\s+(.*)$/.exec(second);
    const backends = b ? b[1].split(/\s+/).filter(Boolean) : [];
    const unknown = backends.filter((x) => !vm.BACKENDS.includes(x));
    if (unknown.length) throw new Error(`${f}: unknown backend ${unknown.join(' ')} on its @guest-backends line (known: ${vm.BACKENDS.join(' ')})`);
    const bothBackends = vm.BACKENDS.every((x) => backends.includes(x));
    return { file: f.replace(/\.ts$/, '.js'), needs, backends, bothBackends };
  });
}

function selectedEntries() {
  const wanted = process.env.VFIO_GUEST_KERNELS?.split(',').filter(Boolean);
  const entries = vm.MATRIX.filter((e) => !wanted || wanted.includes(vm.entryName(e)));
  if (wanted) {
    const unknown = wanted.filter((w) => !vm.MATRIX.some((e) => vm.entryName(e) === w));
    if (unknown.length) throw new Error(`VFIO_GUEST_KERNELS names entries not in the matrix: ${unknown.join(', ')}`);
  }
  return entries;
}

/** The counts of a TAP report, or undefined when it is missing or unfinished. */
function reportCounts(file) {
  return fs.existsSync(file) ? tapCounts(fs.readFileSync(file, 'utf8')) : undefined;
}

function runEntry(entry, files, env, pass = '') {
  const name = vm.entryName(entry) + pass;
  const slug = name.replace(/\//g, '-');
  const tap = path.join(results, `guest-${slug}.tap`);
  const harnessTap = path.join(results, `guest-${slug}-harness.tap`);
  fs.rmSync(tap, { force: true });
  fs.rmSync(harnessTap, { force: true });
  const backend = env.find((e) => e.startsWith('VFIO_GUEST_IOMMU='));
  console.log(`\n=== guest ${name}: ${files.length} files${backend ? ` (${backend})` : ''} ===`);
  const guestCommand = [
    'node', '--test', '--test-concurrency=1',
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tap}`,
    ...files.map((f) => `${testsDir}/${f}`),
  ];
  const started = Date.now();
  const run = spawnSync(process.execPath, [
    path.join(repo, 'tools/vm/bin/vm.js'), 'run', '--kernel', entry.kernel, '--boot', entry.boot, '--profile', entry.profile,
    ...(process.env.VFIO_GUEST_QEMU ? ['--qemu-version', process.env.VFIO_GUEST_QEMU] : []),
    '--results', results, '--env', 'NO_COLOR=1', ...env.flatMap((e) => ['--env', e]),
    '--timeout', process.env.VFIO_GUEST_TIMEOUT ?? '900', '--', ...guestCommand,
  ], { cwd: packageDir, stdio: 'inherit' });
  const seconds = (Date.now() - started) / 1000;
  const status = run.status ?? 1;
  let counts = reportCounts(tap);
  if (counts === undefined || (status !== 0 && counts.failed === 0)) {
    const why = status === 125 ? 'the test bed failed (see the harness message above)'
      : counts === undefined ? `the guest run ended with status ${status} before the TAP report was complete`
        : `the guest run ended with status ${status} although no test failed`;
    fs.writeFileSync(harnessTap, `TAP version 13\nnot ok 1 - guest run on ${name}\n# ${why}\n1..1\n# tests 1\n# pass 0\n# fail 1\n`);
    console.error(`test:guest ${name}: ${why}; recorded as a failure in ${path.relative(repo, harnessTap)}`);
    counts = { passed: counts?.passed ?? 0, failed: (counts?.failed ?? 0) + 1 };
  }
  return { name, ...counts, seconds };
}

/**
 * The guest boots of one matrix entry: [{ entry, pass, env, files }]. An
 * entry tests the IOMMU backends its `backends` lists (default: both).
 */
function passesOf(entry, files) {
  const caps = [...vm.getBoot(entry.kernel, entry.boot).caps, ...vm.getProfile(entry.profile).caps];
  const runs = files.filter((f) => f.needs.every((n) => caps.includes(n)));
  if (entry.backends && entry.backends.length === 1) {
    const [backend] = entry.backends;
    const mine = runs.filter((f) => f.needs.length === 0 || f.backends.includes(backend));
    return [{ entry, pass: '', env: [`VFIO_GUEST_IOMMU=${backend}`], files: mine.map((f) => f.file) }];
  }
  const neutral = runs.filter((f) => f.bothBackends);
  const passes = [{ entry, pass: '', env: [], files: runs.map((f) => f.file) }];
  if (caps.includes('iommufd') && neutral.length > 0) {
    passes.push({ entry, pass: '@container', env: ['VFIO_GUEST_IOMMU=container'], files: neutral.map((f) => f.file) });
  }
  return passes;
}

function main() {
  if (!fs.existsSync(path.join(packageDir, testsDir))) {
    console.error(`${testsDir} is missing: run \`pnpm run build:guest\` first`);
    return 2;
  }
  fs.mkdirSync(results, { recursive: true });
  const only = process.env.VFIO_GUEST_FILES?.split(',').filter(Boolean);
  const files = testFiles().filter((f) => !only || only.some((o) => f.file === `${o}.test.js`));
  const entries = selectedEntries();
  // Which file runs where, before anything boots.
  const plan = entries.flatMap((e) => passesOf(e, files));
  console.log('guest suite plan (file: needs -> entries where it runs):');
  for (const f of files) {
    const on = plan.filter((p) => p.files.includes(f.file)).map((p) => vm.entryName(p.entry) + p.pass);
    console.log(`  ${f.file.padEnd(28)} ${(f.needs.join(' ') || '-').padEnd(12)} -> ${on.join(', ') || 'nowhere'}`);
  }
  // A boot with no file to run would run node --test's default discovery (every file): skip it.
  const empty = plan.filter((p) => p.files.length === 0);
  for (const p of empty) console.log(`  (${vm.entryName(p.entry)}${p.pass}: no selected file applies; not booted)`);
  const kvmCheck = vm.buildCheck('kvm-hlt');
  const outcomes = plan.filter((p) => p.files.length > 0).map((p) => runEntry(p.entry, p.files, [`VFIO_VM_KVM_CHECK=${kvmCheck}`, ...p.env], p.pass));
  console.log('');
  for (const o of outcomes) console.log(`guest ${o.name}: ${o.passed} passed, ${o.failed} failed (${o.seconds.toFixed(0)} s)`);
  return outcomes.some((o) => o.failed > 0) ? 1 : 0;
}

process.exit(main());
