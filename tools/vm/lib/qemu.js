'use strict';
const fs = require('node:fs');
const { run, which } = require('./exec');
const { VmError } = require('./errors');

// The guest kernel's command line: quiet, but the serial console stays the
// job's stdout. panic=-1 with QEMU's -no-reboot turns a kernel panic into a
// QEMU exit instead of a hang until the timeout. shpchp (built in) fails
// noisily on the emulated pcie-pci-bridge, whose hotplug nobody uses. The
// boot variant (kernels.js) adds its own parameters (intel_iommu=on, ...).
const KERNEL_CMDLINE = 'console=ttyS0 quiet panic=-1 initcall_blacklist=shpcd_init';

function kvmUsable() {
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

// A 9p export; multidevs=remap keeps inode numbers unique when the exported
// tree spans several filesystems (the host root always does).
// QEMU's option syntax escapes a comma by doubling it.
const optPath = (p) => p.replace(/,/g, ',,');

function share(id, hostPath, tag, addr, readonly) {
  const ro = readonly ? ',readonly=on' : '';
  return [
    '-fsdev', `local,id=${id},path=${optPath(hostPath)},security_model=none,multidevs=remap${ro}`,
    '-device', `virtio-9p-pci,fsdev=${id},mount_tag=${tag},bus=pcie.0,addr=${addr}`,
  ];
}

// kernel, initrd: files; runDir: the writable run folder; resultsDir: an
// optional second writable folder; profile: from profiles.js; boot: a boot
// variant from kernels.js (its IOMMU device and kernel parameters); extra:
// QEMU arguments added for one run.
function qemuArgs({ kernel, initrd, runDir, resultsDir, profile, boot, extra = [], kvm = kvmUsable(), memoryMiB = 2048, cpus = 2 }) {
  // With KVM, interrupt remapping needs the split irqchip (QEMU refuses
  // intremap=on otherwise). intremap=on is what lets VFIO_SET_IOMMU succeed
  // without allow_unsafe_interrupts.
  const machine = kvm ? 'q35,kernel-irqchip=split' : 'q35';
  const args = [
    '-machine', machine,
    // TCG runs the vCPUs one at a time (thread=single): with a thread per
    // vCPU, a guest kernel patching its own text (static keys, int3 then the
    // new bytes) could be seen half-patched by the other vCPU, which then
    // hit the int3 with no patch in progress (seen: Debian's 7.3 panicked in
    // __schedule, "Oops: int3", once in five boots under QEMU 7.2).
    '-accel', kvm ? 'kvm' : 'tcg,thread=single',
    '-cpu', 'max',
    '-m', String(memoryMiB),
    '-smp', String(cpus),
    '-nodefaults',
    '-no-user-config',
    '-display', 'none',
    '-monitor', 'none',
    '-serial', 'stdio',
    '-no-reboot',
    // The IOMMU first: devices created before it would sit outside it.
    ...boot.qemu,
    '-kernel', optPath(kernel),
    '-initrd', optPath(initrd),
    // VFIO_VM_APPEND adds kernel parameters for debugging (e.g. loglevel=7).
    '-append', [KERNEL_CMDLINE, ...boot.append, process.env.VFIO_VM_APPEND].filter(Boolean).join(' '),
    ...share('fsroot', '/', 'hostroot', '0x10', true),
    ...share('fsrun', runDir, 'vmrun', '0x11', false),
  ];
  if (resultsDir) args.push(...share('fsresults', resultsDir, 'results', '0x12', false));
  for (const d of profile.devices) args.push(...d.qemu);
  args.push(...extra);
  return args;
}

// The QEMU a profile asks for: the host's own by default, or a version run
// from a Debian 13 root under the cache (qemu-root.js). Returns { version,
// command: the argv prefix, env }.
function qemuCommand(version, log) {
  if (version && version !== 'host') return require('./qemu-root').ensureQemu({ version, log });
  if (!which('qemu-system-x86_64')) throw new VmError('qemu-system-x86_64 not found: run "node tools/vm/bin/vm.js setup"');
  const banner = run('qemu-system-x86_64', ['--version'], { allowFail: true }).stdout;
  return { version: /version (\S+)/.exec(banner)?.[1] ?? 'host', command: ['qemu-system-x86_64'], env: {} };
}

module.exports = { qemuArgs, kvmUsable, qemuCommand, KERNEL_CMDLINE };
