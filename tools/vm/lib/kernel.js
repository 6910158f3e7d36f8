'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { run } = require('./exec');
const { VmError } = require('./errors');
const apt = require('./debian-apt');
const paths = require('./paths');

// Debian's own kernels, fetched with the private apt (any suite, whatever the
// host runs) and unpacked into the cache: never installed, so the host's
// /boot and /lib/modules stay untouched.

// The newest package whose name matches; its first group is the kernel's ABI.
function newest(pattern) {
  // apt-cache search takes POSIX extended expressions: no \d.
  const names = apt.searchNames(pattern.source.replace(/\\d/g, '[0-9]'));
  const abi = (n) => pattern.exec(n)[1].split(/[.+-]/).map((p) => Number(p) || 0);
  const byAbi = (a, b) => {
    const [x, y] = [abi(a), abi(b)];
    for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
    return 0;
  };
  const found = names.filter((n) => pattern.test(n)).sort(byAbi).pop();
  if (!found) throw new VmError(`no Debian package matches ${pattern.source} (private apt lists under ${apt.aptDir})`);
  return { name: found, abi: pattern.exec(found)[1] };
}

// Debian 12's 6.1: one unsigned image package holds the image and modules.
// Debian 13's 7.x images are split into an image meta package, the binary
// (vmlinuz) and the modules, all of one ABI.
const FLAVOURS = {
  'bookworm-6.1': () => {
    const { abi } = newest(/^linux-image-(6\.1\.0-\d+)-amd64-unsigned$/);
    return { version: `${abi}-amd64`, packages: [`linux-image-${abi}-amd64-unsigned`] };
  },
  'trixie-backports-7.3': () => {
    const { abi } = newest(/^linux-binary-(7\.3\.\d+\+deb13)-amd64$/);
    const v = `${abi}-amd64`;
    return { version: v, packages: [`linux-binary-${v}`, `linux-modules-${v}`] };
  },
};

// The image may sit in /boot (6.1) or beside the modules (7.x, merged /usr).
function findVmlinuz(root, version) {
  for (const p of [`boot/vmlinuz-${version}`, `usr/lib/modules/${version}/vmlinuz`, `lib/modules/${version}/vmlinuz`]) {
    if (fs.existsSync(path.join(root, p))) return path.join(root, p);
  }
  throw new VmError(`no vmlinuz for ${version} in ${root}`);
}

/**
 * Downloads and unpacks the newest kernel of a flavour; returns { version,
 * packages, debs, root, vmlinuz, modules: true }. modules.dep is made with
 * depmod (the package's postinst would make it).
 */
function ensureDebianKernel(flavour, log) {
  const resolve = FLAVOURS[flavour];
  if (!resolve) throw new VmError(`unknown Debian kernel flavour ${flavour}`);
  const { version, packages } = resolve();
  const debs = packages.map((p) => apt.download(p, undefined, { log }));
  const dir = path.join(paths.kernelsDir, version);
  const root = path.join(dir, 'root');
  const stamp = path.join(dir, '.done');
  const want = debs.map((d) => path.basename(d)).join('\n');
  if (!fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== want) {
    log(`unpacking ${packages.join(', ')}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(root, { recursive: true });
    for (const deb of debs) run('dpkg-deb', ['-x', deb, root]);
    // depmod and modprobe -d look under ROOT/lib/modules; merged-/usr
    // packages ship usr/lib/modules only.
    if (!fs.existsSync(path.join(root, 'lib')) && fs.existsSync(path.join(root, 'usr/lib/modules'))) {
      fs.symlinkSync('usr/lib', path.join(root, 'lib'));
    }
    run('depmod', ['-b', root, version]);
    fs.writeFileSync(stamp, want);
  }
  return { version, packages, debs, root, vmlinuz: findVmlinuz(root, version), modules: true };
}

module.exports = { ensureDebianKernel, FLAVOURS };
