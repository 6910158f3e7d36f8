'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { VmError } = require('./errors');
const { prepare } = require('./setup');
const { getProfile } = require('./profiles');
const { qemuArgs, kvmUsable } = require('./qemu');
const { prepareRunDir } = require('./job');
const paths = require('./paths');

const DEFAULT_TIMEOUT_MS = 20 * 60 * 1000;
// Printed by the guest's init around the job (see guest/init).
const START = '@@vm-start@@';
const EXIT_RE = /@@vm-exit (\d+)@@/;

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
 * Boots the guest, binds the profile's devices to vfio-pci and runs command
 * (a shell string, or an argv array) chrooted into the host root at cwd.
 * Resolves to { exitCode, output, consolePath, testbed, runDir, bootSeconds,
 * seconds }; rejects with a VmError when the test bed itself fails (guest
 * setup, QEMU death, timeout). onOutput(text, source) receives the console
 * live ('console') and QEMU's own stderr ('qemu').
 */
async function runInGuest({
  profile = 'edu',
  command,
  env = {},
  cwd = process.cwd(),
  resultsDir,
  timeoutMs = DEFAULT_TIMEOUT_MS,
  onOutput = () => {},
  log = () => {},
} = {}) {
  const prof = getProfile(profile);
  const state = prepare({ log });
  const results = resultsDir ? path.resolve(cwd, resultsDir) : undefined;
  if (results) fs.mkdirSync(results, { recursive: true });
  const job = prepareRunDir({
    profile: prof, command, env, cwd: path.resolve(cwd), resultsDir: results, kernelVersion: state.kernel.version,
  });
  const args = qemuArgs({
    kernel: state.kernel.vmlinuz, initrd: state.initramfs.path, runDir: job.runDir, resultsDir: results, profile: prof,
  });
  fs.writeFileSync(path.join(job.runDir, 'qemu-args.json'), JSON.stringify(args, null, 1) + '\n');
  log(`booting ${prof.name} guest (${kvmUsable() ? 'KVM' : 'TCG, no /dev/kvm'}), run folder ${job.runDir}`);

  const started = Date.now();
  const consoleFile = fs.openSync(job.consolePath, 'w');
  let consoleText = '';
  let qemuStderr = '';
  let bootSeconds = null;
  let timedOut = false;

  // stdin stays an open pipe that is never written: the serial port then
  // reads nothing, and QEMU never sees an EOF or a terminal to take over.
  const child = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);

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

  const { code, signal, spawnError } = await new Promise((resolve) => {
    child.on('error', (e) => resolve({ spawnError: e }));
    child.on('close', (c, sig) => resolve({ code: c, signal: sig }));
  });
  clearTimeout(timer);
  process.removeListener('exit', killOnExit);
  fs.closeSync(consoleFile);
  fs.copyFileSync(job.consolePath, paths.lastConsolePath);
  const seconds = (Date.now() - started) / 1000;
  const where = `guest console: ${job.consolePath}`;

  if (spawnError) {
    throw new VmError(`cannot start qemu-system-x86_64 (${spawnError.message}); run "node tools/vm/bin/vm.js setup"`);
  }
  if (timedOut) {
    throw new VmError(`the guest did not finish within ${timeoutMs / 1000} s and was killed; ${where}`,
      { consolePath: job.consolePath });
  }
  const guestError = readIfExists(job.guestErrorPath);
  if (guestError) throw new VmError(`guest setup failed: ${guestError}; ${where}`, { consolePath: job.consolePath });

  // The file is the source of truth; the console marker is a fallback for
  // a share that failed to flush.
  let exitCode = readIfExists(job.exitCodePath);
  if (exitCode === null) exitCode = EXIT_RE.exec(consoleText)?.[1] ?? null;
  if (exitCode === null) {
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    const tail = qemuStderr.trim().split('\n').slice(-5).join('\n');
    throw new VmError(`QEMU ${how} before the command finished${tail ? `:\n${tail}\n` : '; '}${where}`,
      { consolePath: job.consolePath });
  }
  const testbedText = readIfExists(job.testbedPath);
  return {
    exitCode: Number(exitCode),
    output: jobOutput(consoleText),
    consolePath: job.consolePath,
    testbed: testbedText ? JSON.parse(testbedText) : null,
    runDir: job.runDir,
    bootSeconds,
    seconds,
  };
}

module.exports = { runInGuest, jobOutput, DEFAULT_TIMEOUT_MS };
