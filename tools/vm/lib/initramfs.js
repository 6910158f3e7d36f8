'use strict';
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');
const { run } = require('./exec');
const { VmError } = require('./errors');
const paths = require('./paths');

// vfio-pci for the devices, 9p over virtio-pci for the host shares, KVM for
// /dev/kvm (TCG's -cpu max emulates AMD SVM). Everything else (PCI, the Intel
// IOMMU, serial console, devtmpfs) is built into Debian's kernels; the
// purpose-built kernel has all of it built in and no modules at all.
const MODULES = ['vfio-pci', 'vfio_iommu_type1', '9p', '9pnet_virtio', 'virtio_pci', 'kvm_amd'];
const BUSYBOX = '/bin/busybox';

// modprobe prints each module's dependencies before it, one "insmod PATH"
// line per module ("builtin NAME" for built-in ones), repeats included:
// keeping first occurrences gives a valid load order for busybox insmod
// (which knows no dependencies).
function moduleFiles(kernel) {
  if (!kernel.modules) return [];
  const seen = new Set();
  for (const mod of MODULES) {
    const res = run('modprobe', ['-d', kernel.root, '-S', kernel.version, '--show-depends', mod], { allowFail: true });
    // A module the package does not have is built in (7.x ships no
    // modules.builtin to tell): the guest proves it by mounting 9p, binding
    // vfio-pci and finding /dev/kvm, or fails.
    if (res.status !== 0 && /not found/.test(res.stderr)) continue;
    if (res.status !== 0) throw new VmError(`modprobe --show-depends ${mod} failed for ${kernel.version}: ${res.stderr.trim()}`);
    for (const line of res.stdout.split('\n')) {
      const m = /^insmod\s+(\S+)/.exec(line);
      if (m && !seen.has(m[1])) seen.add(m[1]);
    }
  }
  if (seen.size === 0) throw new VmError(`modprobe found none of ${MODULES.join(' ')} in ${kernel.root}`);
  return [...seen];
}

function sha256(...parts) {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 16);
}

// The key covers everything the image is made of, so a new kernel, a changed
// init script or recipe, or another busybox gives a new file.
function initramfsKey(kernel, modules) {
  return sha256(
    kernel.version,
    kernel.id,
    fs.readFileSync(paths.guestInitPath),
    fs.readFileSync(__filename),
    modules.map((m) => path.relative(kernel.root ?? '/', m)).join('\n'),
    fs.readFileSync(BUSYBOX),
  );
}

// Compressed modules (newer Debian kernels ship .ko.xz) are unpacked, since
// busybox insmod may lack the decompressor.
function copyModule(src, destDir) {
  let name = path.basename(src);
  const dest = (n) => path.join(destDir, n);
  if (name.endsWith('.xz') || name.endsWith('.zst')) {
    const tool = name.endsWith('.xz') ? 'xz' : 'zstd';
    name = name.replace(/\.(xz|zst)$/, '');
    const res = spawnSync(tool, ['-dc', src], { maxBuffer: 64 << 20 });
    if (res.status !== 0) throw new VmError(`cannot decompress ${src} with ${tool}`);
    fs.writeFileSync(dest(name), res.stdout);
  } else {
    fs.copyFileSync(src, dest(name));
  }
  return name;
}

function listTree(root) {
  const out = [];
  const walk = (rel) => {
    for (const e of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      out.push(r);
      if (e.isDirectory()) walk(r);
    }
  };
  walk('');
  return out.sort();
}

function buildInitramfs(kernel, outPath) {
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-vm-initramfs-'));
  try {
    for (const d of ['bin', 'modules']) fs.mkdirSync(path.join(stage, d));
    fs.copyFileSync(BUSYBOX, path.join(stage, 'bin', 'busybox'));
    fs.copyFileSync(paths.guestInitPath, path.join(stage, 'init'));
    fs.chmodSync(path.join(stage, 'init'), 0o755);
    const names = moduleFiles(kernel).map((m) => copyModule(m, path.join(stage, 'modules')));
    fs.writeFileSync(path.join(stage, 'modules', 'order'), names.join('\n') + '\n');
    // There is no cpio binary on a plain Debian; busybox has one.
    const cpio = run(BUSYBOX, ['cpio', '-o', '-H', 'newc'], {
      cwd: stage,
      input: listTree(stage).join('\n') + '\n',
      binary: true,
    }).stdout;
    fs.mkdirSync(path.dirname(outPath), { recursive: true });
    // Written aside and renamed: a concurrent run never boots half a file.
    const tmp = `${outPath}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, zlib.gzipSync(cpio, { level: 9 }));
    fs.renameSync(tmp, outPath);
    return names;
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

// Returns the cached image for this kernel and recipe, building it if needed.
function ensureInitramfs(kernel, log) {
  const modules = moduleFiles(kernel);
  const key = initramfsKey(kernel, modules);
  const out = path.join(paths.initramfsDir, `initramfs-${kernel.version}-${key}.cpio.gz`);
  if (!fs.existsSync(out)) {
    log(`building the initramfs (${modules.length} modules)`);
    buildInitramfs(kernel, out);
    // Older images of this kernel are dead weight once a new one exists.
    const mine = `initramfs-${kernel.version}-`;
    for (const f of fs.readdirSync(paths.initramfsDir)) {
      if (f.startsWith(mine) && f.endsWith('.cpio.gz') && f !== path.basename(out)) fs.rmSync(path.join(paths.initramfsDir, f), { force: true });
    }
  }
  return { path: out, key, modules: modules.map((m) => path.basename(m)) };
}

module.exports = { ensureInitramfs, moduleFiles, MODULES };
