#!/usr/bin/env node
'use strict';
const os = require('node:os');
// CLI of the real-kernel test bed; see tools/vm/README.md.
const { runInGuest, setup, PROFILES, KERNELS, BOOTS, DEFAULT_KERNEL, VmError, DEFAULT_TIMEOUT_MS } = require('../lib');

// Exit status when the test bed itself fails, as opposed to the command:
// 125, like docker run, is unlikely to collide with a test runner's own codes.
const HARNESS_FAILURE = 125;

const USAGE = `usage:
  vm.js setup [--kernel NAME|all]  install host packages, fetch or build the kernel(s), build the initramfs
  vm.js run [options] -- <command...>
      --kernel NAME                the guest kernel (default: ${DEFAULT_KERNEL}; see vm.js kernels)
      --boot VARIANT               iommu (default) | noiommu | nointremap, where the kernel has it
      --profile NAME               devices to bind to vfio-pci (default: edu; see vm.js profiles)
      --qemu-version host|11.1     which QEMU (default: the profile's; the host's unless it says 11.1)
      --qemu 'ARGS'                more QEMU arguments for this run, split at white space
                                   (e.g. --qemu '-device ivshmem-plain,memdev=m0 -object memory-backend-ram,id=m0,size=4G')
      --env NAME=VALUE | NAME      set (or pass through) a variable in the guest; repeatable
      --timeout SECONDS            kill the guest after this long (default: ${DEFAULT_TIMEOUT_MS / 1000})
      --results DIR                a host folder the guest may write (same path inside)
      --quiet                      do not stream the guest console
  vm.js profiles                   list the device profiles
  vm.js kernels                    list the kernels, their boot variants and capabilities
exit status: the command's own, or ${HARNESS_FAILURE} when the test bed failed`;

let cancelledBy = null;
const log = (m) => process.stderr.write(`vm: ${m}\n`);

function usageError(msg) {
  process.stderr.write(`vm: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function parseRun(argv) {
  const opts = { profile: 'edu', kernel: DEFAULT_KERNEL, boot: 'iommu', extraQemuArgs: [], env: [], timeoutMs: DEFAULT_TIMEOUT_MS, quiet: false };
  let i = 0;
  const value = (name) => (i + 1 < argv.length ? argv[++i] : usageError(`${name} needs a value`));
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') { i++; break; }
    if (a === '--profile') opts.profile = value(a);
    else if (a === '--kernel') opts.kernel = value(a);
    else if (a === '--boot') opts.boot = value(a);
    else if (a === '--qemu-version') opts.qemuVersion = value(a);
    else if (a === '--qemu') opts.extraQemuArgs.push(...value(a).split(/\s+/).filter(Boolean));
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
  if (!KERNELS[opts.kernel]) usageError(`unknown kernel "${opts.kernel}" (known: ${Object.keys(KERNELS).join(', ')})`);
  if (!BOOTS[opts.boot]) usageError(`unknown boot variant "${opts.boot}"`);
  return opts;
}

async function main([verb, ...rest]) {
  if (verb === 'setup') {
    let kernels = [DEFAULT_KERNEL];
    if (rest[0] === '--kernel') {
      if (!rest[1]) usageError('--kernel needs a value');
      kernels = rest[1] === 'all' ? 'all' : rest[1].split(',');
      for (const k of kernels === 'all' ? [] : kernels) if (!KERNELS[k]) usageError(`unknown kernel "${k}"`);
    } else if (rest.length) usageError(`unknown setup option ${rest[0]}`);
    const s = setup({ kernels, log });
    for (const name of s.names) log(`${name}: ${s.state.kernels[name].kernel.version}`);
    log(`ready in ${s.seconds.toFixed(1)} s`);
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
    log(`exit code ${r.exitCode}; kernel ${r.kernel.name} (${r.kernel.version}), boot ${r.boot}, QEMU ${r.qemuVersion}; ` +
      `boot ${r.bootSeconds?.toFixed(1)} s, total ${r.seconds.toFixed(1)} s; console ${r.consolePath}`);
    return r.exitCode;
  }
  if (verb === 'kernels') {
    for (const [name, k] of Object.entries(KERNELS)) {
      console.log(`${name}: ${k.description}\n  capabilities: ${k.caps.join(' ')}\n  boots: ${k.boots.join(' ')}`);
    }
    for (const [name, b] of Object.entries(BOOTS)) console.log(`boot ${name}: ${b.description}`);
    return 0;
  }
  if (verb === 'profiles') {
    for (const [name, p] of Object.entries(PROFILES)) {
      console.log(`${name}: ${p.description}${p.qemu ? ` (QEMU ${p.qemu})` : ''}; capabilities: ${p.caps.join(' ') || '-'}`);
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
