'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { run } = require('./exec');
const { VmError } = require('./errors');
const { aptUpdateOnce } = require('./host-packages');
const paths = require('./paths');

// The guest runs the distribution's own kernel (the one this host's suite
// ships), fetched as a .deb and unpacked into the cache: never installed, so
// the host's /boot and /lib/modules stay untouched.

// "linux-image-amd64" depends on e.g. "linux-image-6.1.0-56-amd64" (the
// signed image); the unsigned twin has the same files and no shim baggage.
function resolveKernelPackage(log) {
  const depends = () => run('apt-cache', ['depends', 'linux-image-amd64'], { allowFail: true }).stdout;
  let out = depends();
  if (!/Depends:\s*linux-image-\d/.test(out)) {
    aptUpdateOnce(log);
    out = depends();
  }
  const m = /Depends:\s*linux-image-(\d[^\s]*)-amd64\b/.exec(out);
  if (!m) throw new VmError(`cannot find the kernel ABI in "apt-cache depends linux-image-amd64":\n${out.trim()}`);
  const abi = m[1];
  return { abi, version: `${abi}-amd64`, package: `linux-image-${abi}-amd64-unsigned` };
}

function findDeb(pkg) {
  if (!fs.existsSync(paths.downloadsDir)) return null;
  const deb = fs.readdirSync(paths.downloadsDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
  return deb ? path.join(paths.downloadsDir, deb) : null;
}

function downloadKernel(kernel, log) {
  const cached = findDeb(kernel.package);
  if (cached) return cached;
  fs.mkdirSync(paths.downloadsDir, { recursive: true });
  log(`downloading ${kernel.package}`);
  // As root apt would drop to the _apt user, which cannot write into the cache.
  run('apt-get', ['-o', 'APT::Sandbox::User=root', 'download', kernel.package], { cwd: paths.downloadsDir });
  const deb = findDeb(kernel.package);
  if (!deb) throw new VmError(`apt-get download ${kernel.package} left no .deb in ${paths.downloadsDir}`);
  return deb;
}

// Unpacks into kernels/<version>/root; a ".done" stamp makes an interrupted
// unpack start over instead of leaving a half tree that looks valid.
function unpackKernel(kernel, deb, log) {
  const dir = path.join(paths.kernelsDir, kernel.version);
  const root = path.join(dir, 'root');
  const stamp = path.join(dir, '.done');
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8') === path.basename(deb)) return root;
  log(`unpacking ${path.basename(deb)}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(root, { recursive: true });
  run('dpkg-deb', ['-x', deb, root]);
  // modules.dep is not shipped in the .deb (the postinst makes it).
  run('depmod', ['-b', root, kernel.version]);
  fs.writeFileSync(stamp, path.basename(deb));
  return root;
}

function ensureKernel(log) {
  const kernel = resolveKernelPackage(log);
  const deb = downloadKernel(kernel, log);
  const root = unpackKernel(kernel, deb, log);
  const vmlinuz = path.join(root, 'boot', `vmlinuz-${kernel.version}`);
  if (!fs.existsSync(vmlinuz)) throw new VmError(`${path.basename(deb)} has no boot/vmlinuz-${kernel.version}`);
  return { ...kernel, deb, root, vmlinuz };
}

module.exports = { ensureKernel, resolveKernelPackage };
