'use strict';
// Host side of the guest half: one boot of the edu profile (tools/vm) that
// runs src/guest/main.js chrooted into the host root; the guest writes its
// figures into a results folder shared back to the host.
const fs = require('node:fs');
const path = require('node:path');
const { REPO_ROOT, CACHE_DIR } = require('./paths');
const { summarize } = require('./profile-summary');
const { NVME_OPS, onlyRows } = require('./guest/ops');

const GUEST_MAIN = path.join(__dirname, 'guest', 'main.js');

async function runGuestParts(opts, log) {
  const vm = require(path.join(REPO_ROOT, 'tools', 'vm', 'lib'));
  // One folder per bench process: two runs at once (several people on one
  // machine) must not remove each other's results before they are read.
  const resultsDir = path.join(CACHE_DIR, `guest-${process.pid}`);
  fs.rmSync(resultsDir, { recursive: true, force: true });
  fs.mkdirSync(resultsDir, { recursive: true });
  const outFile = path.join(resultsDir, 'guest.json');
  const args = [
    '--out', outFile, '--rounds', opts.rounds, '--samples', opts.samples, '--warmup', opts.warmup, '--soak-cycles', opts.soakCycles,
    '--backends', opts.backends.join(','), '--soak-backends', opts.soakBackends.join(','),
  ];
  if (opts.only) args.push('--only', opts.only.join(','));
  if (!opts.soak) args.push('--no-soak');
  if (!opts.ops) args.push('--soak-only');
  if (opts.profile) args.push('--profile-dir', path.join(resultsDir, 'profile'));
  if (opts.mallocStats) args.push('--malloc-stats', opts.mallocStats);
  if (opts.pkruProbe) args.push('--pkru-probe', opts.pkruProbe);
  if (opts.cPkey) args.push('--c-pkey');
  let accelerator = 'unknown';
  const started = Date.now();
  // The MSI-X storm rows need the suite profile's nvme (edu sits at the same
  // address in both profiles); every other row needs edu alone.
  const profile = opts.ops && onlyRows(NVME_OPS, opts.only).length > 0 ? 'suite' : 'edu';
  const r = await vm.runInGuest({
    profile,
    kernel: opts.kernel,
    // --expose-gc: the soak forces collections to check the finalizers.
    command: ['node', '--expose-gc', GUEST_MAIN, ...args.map(String)],
    cwd: REPO_ROOT,
    resultsDir,
    // 10,000 cycles of each of the three container soaks take ~40 minutes under TCG.
    timeoutMs: 3 * 60 * 60 * 1000,
    onOutput: (text) => process.stderr.write(text),
    log: (m) => {
      // The harness says which accelerator it booted with.
      if (/booting/.test(m)) accelerator = /\bKVM\b/.test(m) && !/no \/dev\/kvm/.test(m) ? 'kvm' : 'tcg';
      log(`vm: ${m}`);
    },
  });
  if (r.exitCode !== 0 || !fs.existsSync(outFile)) {
    throw new Error(`guest bench failed (exit code ${r.exitCode}); console: ${r.consolePath}`);
  }
  const guest = JSON.parse(fs.readFileSync(outFile, 'utf8'));
  if (opts.profile) guest.profile = summarize(path.join(resultsDir, 'profile'), 25);
  fs.rmSync(resultsDir, { recursive: true, force: true });
  accelerator = r.accelerator ?? accelerator;
  guest.boot = {
    accelerator, kvm: accelerator === 'kvm', bootSeconds: r.bootSeconds, totalSeconds: (Date.now() - started) / 1000, profile,
    kernelName: opts.kernel, qemuVersion: r.qemuVersion ?? null,
  };
  return guest;
}

module.exports = { runGuestParts };
