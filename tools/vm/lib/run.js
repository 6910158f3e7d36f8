'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { VmError } = require('./errors');
const { prepare } = require('./setup');
const { getProfile } = require('./profiles');
const { qemuArgs, kvmUsable, qemuCommand } = require('./qemu');
const { getBoot, DEFAULT_KERNEL } = require('./kernels');
const { prepareRunDir } = require('./job');
const paths = require('./paths');

const DEFAULT_TIMEOUT_MS = 20 * 60 * 1000;
// Printed by the guest's init around the job (see guest/init).
const START = '@@vm-start@@';
const EXIT_RE = /@@vm-exit (\d+)@@/;

// How long QEMU may outlive the timeout if this process dies without
// killing it (see the watchdog below).
const WATCHDOG_GRACE_S = 30;

const lastLines = (text, n = 5) => text.replace(/\r/g, '').trim().split('\n').slice(-n).join('\n');
const readIfExists = (p) => (fs.existsSync(p) ? fs.readFileSync(p, 'utf8').trim() : null);

// The job's own output: what the console printed between the two markers.
function jobOutput(consoleText) {
  const text = consoleText.replace(/\r\n/g, '\n');
  const start = text.indexOf(START);
  if (start < 0) return '';
  const body = text.slice(start + START.length + 1);
  const end = body.search(EXIT_RE);
  return end < 0 ? body : body.slice(0, end);
}

/**
 * Boots the guest (kernel and boot variant from kernels.js; extraQemuArgs
 * added to QEMU's command line; qemuVersion 'host' or '11.1' overrides the
 * profile's QEMU), binds the profile's devices to vfio-pci and
 * runs command (a shell string, or an argv array) chrooted into the host root at cwd.
 * Resolves to { exitCode, output, consolePath, testbed, runDir, accelerator
 * ('kvm' | 'tcg'), bootSeconds (to the command's start), seconds }; rejects with a VmError when the test bed itself fails (guest
 * setup, QEMU death, timeout, cancellation through the AbortSignal signal).
 * onOutput(text, source) receives the console live ('console') and QEMU's
 * own stderr ('qemu').
 */
async function runInGuest({
  profile = 'edu',
  kernel = DEFAULT_KERNEL,
  boot = 'iommu',
  extraQemuArgs = [],
  qemuVersion,
  command,
  env = {},
  cwd = process.cwd(),
  resultsDir,
  timeoutMs = DEFAULT_TIMEOUT_MS,
  onOutput = () => {},
  log = () => {},
  signal,
} = {}) {
  const prof = getProfile(profile);
  const bootVariant = getBoot(kernel, boot);
  const state = prepare({ kernel, log });
  const qemu = qemuCommand(qemuVersion ?? prof.qemu, log);
  // What the suite may rely on: the kernel's and boot's, and the profile's devices.
  const caps = [...bootVariant.caps, ...(prof.caps ?? [])].sort();
  // Real paths: the guest mounts the writable shares at these paths before
  // it chroots, where a symlink on the way (a .cache linked elsewhere, as
  // CI does) would resolve into the initramfs instead of the host's root.
  let results;
  if (resultsDir) {
    fs.mkdirSync(path.resolve(cwd, resultsDir), { recursive: true });
    results = fs.realpathSync(path.resolve(cwd, resultsDir));
  }
  const job = prepareRunDir({
    profile: prof, command, env, cwd: fs.realpathSync(path.resolve(cwd)), resultsDir: results, kernel: state.kernel, boot: bootVariant, caps,
  });
  const args = qemuArgs({
    kernel: state.kernel.vmlinuz, initrd: state.initramfs.path, runDir: job.runDir, resultsDir: results, profile: prof,
    boot: bootVariant, extra: extraQemuArgs,
  });
  fs.writeFileSync(path.join(job.runDir, 'qemu-args.json'), JSON.stringify([...qemu.command, ...args], null, 1) + '\n');
  const accelerator = kvmUsable() ? 'kvm' : 'tcg';
  log(`booting ${prof.name} guest on ${kernel} (${state.kernel.version}, boot ${boot}, QEMU ${qemu.version}, ` +
    `${accelerator === 'kvm' ? 'KVM' : 'TCG, no /dev/kvm'}), run folder ${job.runDir}`);

  const started = Date.now();
  const consoleFile = fs.openSync(job.consolePath, 'w');
  let consoleText = '';
  let qemuStderr = '';
  let bootSeconds = null;
  let timedOut = false;
  let cancelled = false;

  // coreutils' timeout is a watchdog that outlives this process: if Node is
  // killed outright, QEMU still ends soon after the run's own timeout.
  // --foreground keeps QEMU in our process group, so a Ctrl-C reaches it; a
  // SIGTERM sent to timeout is passed on to QEMU, which then quits.
  // stdin stays an open pipe that is never written: the serial port then
  // reads nothing, and QEMU never sees an EOF or a terminal to take over.
  const watchdog = String(Math.ceil(timeoutMs / 1000) + WATCHDOG_GRACE_S);
  const child = spawn('timeout', ['--foreground', '-s', 'KILL', watchdog, ...qemu.command, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...qemu.env },
  });
  const stop = () => {
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  };
  process.on('exit', stop);
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, timeoutMs);
  const onAbort = () => {
    cancelled = true;
    stop();
  };
  if (signal?.aborted) onAbort();
  signal?.addEventListener('abort', onAbort);

  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (s) => {
    fs.writeSync(consoleFile, s);
    consoleText += s;
    if (bootSeconds === null && consoleText.includes(START)) bootSeconds = (Date.now() - started) / 1000;
    onOutput(s, 'console');
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (s) => {
    fs.writeSync(consoleFile, s);
    qemuStderr += s;
    onOutput(s, 'qemu');
  });

  const { code, killedBy, spawnError } = await new Promise((resolve) => {
    child.on('error', (e) => resolve({ spawnError: e }));
    child.on('close', (c, sig) => resolve({ code: c, killedBy: sig }));
  });
  clearTimeout(timer);
  process.removeListener('exit', stop);
  signal?.removeEventListener('abort', onAbort);
  fs.closeSync(consoleFile);
  fs.copyFileSync(job.consolePath, paths.lastConsolePath);
  const seconds = (Date.now() - started) / 1000;
  const where = `guest console: ${job.consolePath}`;

  if (spawnError) {
    throw new VmError(`cannot start QEMU under timeout(1): ${spawnError.message}`);
  }
  if (cancelled) {
    throw new VmError(`the run was cancelled; ${where}`, { consolePath: job.consolePath, cancelled: true });
  }
  if (timedOut) {
    const what = bootSeconds === null ? 'the guest did not reach the command' : 'the command did not finish';
    throw new VmError(`${what} within ${timeoutMs / 1000} s; QEMU was killed. ${where}`,
      { consolePath: job.consolePath });
  }
  const guestError = readIfExists(job.guestErrorPath);
  if (guestError) throw new VmError(`guest setup failed: ${guestError}; ${where}`, { consolePath: job.consolePath });

  // The file is the source of truth; the console marker is a fallback for
  // a share that failed to flush.
  let exitCode = readIfExists(job.exitCodePath);
  if (exitCode === null) exitCode = EXIT_RE.exec(consoleText)?.[1] ?? null;
  if (exitCode === null) {
    // timeout(1) reports a signal death of QEMU as 128 + the signal number.
    const sig = killedBy || (code > 128 && Object.keys(os.constants.signals).find((k) => os.constants.signals[k] === code - 128));
    const panic = /Kernel panic[^\r\n]*/.exec(consoleText)?.[0];
    const how = sig ? `was killed by ${sig}` : `exited with code ${code}${panic ? ` (guest: ${panic})` : ''}`;
    // QEMU's complaint if it has one, else how the guest's console ended
    // (a panic, a setup step that failed before the run share was there).
    const tail = lastLines(qemuStderr) || lastLines(consoleText);
    throw new VmError(`QEMU ${how} before the command finished${tail ? `; last output:\n${tail}\n` : '; '}${where}`,
      { consolePath: job.consolePath });
  }
  const testbedText = readIfExists(job.testbedPath);
  return {
    exitCode: Number(exitCode),
    output: jobOutput(consoleText),
    consolePath: job.consolePath,
    testbed: testbedText ? JSON.parse(testbedText) : null,
    runDir: job.runDir,
    kernel: { name: kernel, version: state.kernel.version },
    boot,
    caps,
    qemuVersion: qemu.version,
    accelerator,
    bootSeconds,
    seconds,
  };
}

module.exports = { runInGuest, jobOutput, DEFAULT_TIMEOUT_MS };
