#!/usr/bin/env node
'use strict';
const os = require('node:os');
// CLI of the real-kernel test bed; see tools/vm/README.md.
const { runInGuest, setup, PROFILES, VmError, DEFAULT_TIMEOUT_MS } = require('../lib');

// Exit status when the test bed itself fails, as opposed to the command:
// 125, like docker run, is unlikely to collide with a test runner's own codes.
const HARNESS_FAILURE = 125;

const USAGE = `usage:
  vm.js setup                      install host packages, fetch the kernel, build the initramfs
  vm.js run [options] -- <command...>
      --profile edu|suite          devices to bind to vfio-pci (default: edu)
      --env NAME=VALUE | NAME      set (or pass through) a variable in the guest; repeatable
      --timeout SECONDS            kill the guest after this long (default: ${DEFAULT_TIMEOUT_MS / 1000})
      --results DIR                a host folder the guest may write (same path inside)
      --quiet                      do not stream the guest console
  vm.js profiles                   list the device profiles
exit status: the command's own, or ${HARNESS_FAILURE} when the test bed failed`;

let cancelledBy = null;
const log = (m) => process.stderr.write(`vm: ${m}\n`);

function usageError(msg) {
  process.stderr.write(`vm: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function parseRun(argv) {
  const opts = { profile: 'edu', env: [], timeoutMs: DEFAULT_TIMEOUT_MS, quiet: false };
  let i = 0;
  const value = (name) => (i + 1 < argv.length ? argv[++i] : usageError(`${name} needs a value`));
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { i++; break; }
    if (a === '--profile') opts.profile = value(a);
    else if (a === '--env') opts.env.push(value(a));
    else if (a === '--results') opts.resultsDir = value(a);
    else if (a === '--quiet') opts.quiet = true;
    else if (a === '--timeout') {
      const s = Number(value(a));
      if (!(s > 0)) usageError('--timeout needs a positive number of seconds');
      opts.timeoutMs = s * 1000;
    } else if (a.startsWith('-')) usageError(`unknown option ${a}`);
    else break;
  }
  opts.command = argv.slice(i);
  if (opts.command.length === 0) usageError('run needs a command');
  if (!PROFILES[opts.profile]) usageError(`unknown profile "${opts.profile}"`);
  return opts;
}

async function main([verb, ...rest]) {
  if (verb === 'setup') {
    const s = setup({ log });
    log(`ready in ${s.seconds.toFixed(1)} s: kernel ${s.kernel.version}, initramfs ${s.initramfs.path}`);
    return 0;
  }
  if (verb === 'run') {
    const opts = parseRun(rest);
    const onOutput = opts.quiet ? undefined : (text, source) => (source === 'qemu' ? process.stderr : process.stdout).write(text);
    // A signal stops the guest first (QEMU must not outlive us), then the
    // CLI exits as that signal would have made it.
    const abort = new AbortController();
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
      process.once(sig, () => {
        cancelledBy = sig;
        abort.abort(sig);
      });
    }
    const r = await runInGuest({ ...opts, onOutput, log, signal: abort.signal });
    log(`exit code ${r.exitCode}; boot ${r.bootSeconds?.toFixed(1)} s, total ${r.seconds.toFixed(1)} s; console ${r.consolePath}`);
    return r.exitCode;
  }
  if (verb === 'profiles') {
    for (const [name, p] of Object.entries(PROFILES)) {
      console.log(`${name}: ${p.description}`);
      for (const d of p.devices) console.log(`  ${d.role.padEnd(14)} ${d.model.padEnd(8)} slot path ${d.slotPath}`);
    }
    return 0;
  }
  if (verb === undefined || verb === 'help' || verb === '--help' || verb === '-h') {
    console.log(USAGE);
    return verb === undefined ? 2 : 0;
  }
  return usageError(`unknown command "${verb}"`);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    if (!(err instanceof VmError)) throw err;
    log(err.message);
    process.exit(err.cancelled ? 128 + (os.constants.signals[cancelledBy] || 2) : HARNESS_FAILURE);
  },
);
