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

// vfio-pci for the devices, 9p over virtio-pci for the host shares. Everything
// else (PCI, the Intel IOMMU, serial console, devtmpfs) is built into
// Debian's kernel.
const MODULES = ['vfio-pci', 'vfio_iommu_type1', '9p', '9pnet_virtio', 'virtio_pci'];
const BUSYBOX = '/bin/busybox';

// modprobe prints each module's dependencies before it, one "insmod PATH"
// line per module, repeats included: keeping first occurrences gives a
// valid load order for busybox insmod (which knows no dependencies).
function moduleFiles(kernel) {
  const out = run('modprobe', ['-d', kernel.root, '-S', kernel.version, '-a', '--show-depends', ...MODULES]).stdout;
  const seen = new Set();
  for (const line of out.split('\n')) {
    const m = /^insmod\s+(\S+)/.exec(line);
    if (m && !seen.has(m[1])) seen.add(m[1]);
  }
  if (seen.size === 0) throw new VmError(`modprobe found no modules for ${MODULES.join(' ')} in ${kernel.root}`);
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
    path.basename(kernel.deb),
    fs.readFileSync(paths.guestInitPath),
    fs.readFileSync(__filename),
    modules.map((m) => path.relative(kernel.root, m)).join('\n'),
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
    // Older images of any recipe are dead weight once a new one exists.
    for (const f of fs.readdirSync(paths.initramfsDir)) {
      if (f.endsWith('.cpio.gz') && f !== path.basename(out)) fs.rmSync(path.join(paths.initramfsDir, f), { force: true });
    }
  }
  return { path: out, key, modules: modules.map((m) => path.basename(m)) };
}

module.exports = { ensureInitramfs, moduleFiles, MODULES };
