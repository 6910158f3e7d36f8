'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { run, which } = require('./exec');
const { VmError } = require('./errors');

// Minimal Debian roots made with debootstrap (--variant=minbase), for two
// uses: a Debian 13 root to install newer packages into than the host has
// (QEMU from trixie-backports, see qemu-root.js), and a clean machine to run
// a fresh clone of the repository in with chroot.
//
// The pristine root is made once per suite and kept as a tarball under
// <repo>/.cache/roots (or $VFIO_ROOTS_CACHE); makeRoot extracts it into a
// folder of the caller's, so every caller starts from the same clean state.
// Nothing from the host goes into the pristine root: debootstrap copies the
// host's /etc/resolv.conf and /etc/hostname into its target, and both are
// removed before the tarball is written. The host's extra certificate
// authorities (this network intercepts TLS) are carried into a root only on
// request, by carryTrust; DNS is lent for the length of a chroot by
// withMounts (a bind mount, gone afterwards).
//
// Needs root (debootstrap, mount, chroot) and a Debian host with debootstrap
// and debian-archive-keyring.

const MIRROR = 'http://deb.debian.org/debian';
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
const repoRoot = path.resolve(__dirname, '..', '..', '..');
// The same convention as paths.js's cacheDir: a folder of <repo>/.cache.
const rootsDir = process.env.VFIO_ROOTS_CACHE || path.join(repoRoot, '.cache', 'roots');

// What a chroot gets as its whole environment unless the caller adds to it.
const BASE_ENV = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
};

function requireRoot(what) {
  if (process.getuid && process.getuid() !== 0) throw new VmError(`${what} needs root (debootstrap, mount and chroot)`);
}

// Bumped when the way the pristine root is made changes: a tarball of an
// older recipe is made again.
const RECIPE = 2;

/** A JSON file's value, or null when it is missing or unreadable. */
const readJson = (p) => {
  try {
    return JSON.parse(fs.readFileSync(p, 'utf8'));
  } catch {
    return null;
  }
};

function basePaths(suite) {
  const name = `debian-${suite}-minbase`;
  return { tarball: path.join(rootsDir, `${name}.tar`), meta: path.join(rootsDir, `${name}.json`) };
}

/**
 * Path of the cached pristine tarball of a minimal Debian root of suite,
 * made with debootstrap --variant=minbase the first time (trixie: 80-130 s
 * here, a 124 MiB tar of a 128 MiB root), a file test afterwards. Its
 * metadata (debootstrap seconds, size, date) is in the .json beside it.
 */
function ensureBaseRoot({ suite = 'trixie', log = () => {} } = {}) {
  if (!/^[a-z]+$/.test(suite)) throw new VmError(`not a Debian suite name: ${suite}`);
  const { tarball, meta } = basePaths(suite);
  if (fs.existsSync(tarball) && readJson(meta)?.recipe === RECIPE) return tarball;
  requireRoot('making a Debian root');
  if (!which('debootstrap')) throw new VmError('debootstrap is not installed (apt-get install debootstrap)');
  if (!fs.existsSync(KEYRING)) throw new VmError(`${KEYRING} is missing (apt-get install debian-archive-keyring)`);
  fs.mkdirSync(rootsDir, { recursive: true });
  const work = path.join(rootsDir, `.debootstrap-${suite}-${process.pid}`);
  removeTree(work);
  const started = Date.now();
  try {
    log(`debootstrap --variant=minbase ${suite} (a few minutes, once)`);
    run('debootstrap', ['--variant=minbase', `--keyring=${KEYRING}`, suite, work, MIRROR]);
    const seconds = (Date.now() - started) / 1000;
    // debootstrap's copies of the host's files (setup_etc in its functions).
    for (const f of ['etc/resolv.conf', 'etc/hostname']) fs.rmSync(path.join(work, f), { force: true });
    // Left over from the bootstrap itself: its log, the 80 .debs it installed
    // and apt's lists of that day (stale soon; like a fresh Debian image the
    // root needs an apt-get update before an install). 214 MiB -> 127 MiB.
    fs.rmSync(path.join(work, 'var/log/bootstrap.log'), { force: true });
    const clean = (d, keep) => {
      const at = path.join(work, d);
      for (const f of fs.existsSync(at) ? fs.readdirSync(at) : []) {
        if (!keep.includes(f)) fs.rmSync(path.join(at, f), { recursive: true, force: true });
      }
    };
    clean('var/cache/apt/archives', ['partial', 'lock']);
    clean('var/cache/apt', ['archives']);
    clean('var/lib/apt/lists', ['partial', 'lock']);
    const du = run('du', ['-sxk', work]).stdout.split(/\s/)[0];
    const tmpTar = `${tarball}.${process.pid}.tmp`;
    run('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-C', work, '-cpf', tmpTar, '.']);
    fs.renameSync(tmpTar, tarball);
    const info = {
      recipe: RECIPE, suite, variant: 'minbase', mirror: MIRROR,
      debootstrap: run('debootstrap', ['--version']).stdout.trim(),
      debootstrapSeconds: seconds,
      rootKiB: Number(du),
      tarBytes: fs.statSync(tarball).size,
      madeAt: new Date().toISOString(),
    };
    fs.writeFileSync(meta, JSON.stringify(info, null, 2) + '\n');
    log(`pristine ${suite} root: ${tarball} (debootstrap ${seconds.toFixed(0)} s, ${(info.rootKiB / 1024).toFixed(0)} MiB)`);
    return tarball;
  } finally {
    removeTree(work);
  }
}

// The mount points strictly beneath dir, deepest first, from mountinfo
// (its paths escape space, tab, newline and backslash as octal).
function mountsUnder(dir) {
  const real = fs.existsSync(dir) ? fs.realpathSync(dir) : path.resolve(dir);
  const unescape = (s) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((l) => unescape(l.split(' ')[4]))
    .filter((p) => p.startsWith(real + '/'))
    .sort((a, b) => b.split('/').length - a.split('/').length || b.length - a.length);
}

/** Unmounts everything mounted beneath dir (lazily where a plain umount fails); throws if something stays. */
function unmountAll(dir) {
  for (let pass = 0; pass < 3; pass++) {
    const left = mountsUnder(dir);
    if (left.length === 0) return;
    for (const m of left) {
      if (run('umount', [m], { allowFail: true }).status !== 0) run('umount', ['-l', m], { allowFail: true });
    }
  }
  const left = mountsUnder(dir);
  if (left.length) throw new VmError(`cannot unmount ${left.join(', ')}`);
}

// rm -rf that never leaves the folder's own filesystem (a bind mount of
// /dev or /sys left behind by a killed chroot must never be emptied), and
// unmounts first.
function removeTree(dir) {
  if (!fs.existsSync(dir)) return;
  const abs = path.resolve(dir);
  if (abs === '/' || abs.split('/').length < 3) throw new VmError(`refusing to remove ${abs}`);
  unmountAll(abs);
  run('rm', ['-rf', '--one-file-system', abs]);
}

/**
 * Lays a fresh copy of the pristine suite root into dir and returns dir.
 * dir must be missing, empty, or a Debian root (etc/debian_version), which
 * is then removed first (anything still mounted in it is unmounted).
 */
function makeRoot({ suite = 'trixie', dir, log = () => {} } = {}) {
  if (!dir) throw new VmError('makeRoot needs dir');
  const abs = path.resolve(dir);
  const tarball = ensureBaseRoot({ suite, log });
  if (fs.existsSync(abs) && fs.readdirSync(abs).length > 0) {
    if (!fs.existsSync(path.join(abs, 'etc/debian_version'))) {
      throw new VmError(`${abs} is not empty and is not a Debian root: not replacing it`);
    }
    removeTree(abs);
  }
  fs.mkdirSync(abs, { recursive: true });
  run('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-C', abs, '-xpf', tarball]);
  return abs;
}

// The host's certificate authorities beyond Debian's, and the environment
// variables its tools read them from.
const LOCAL_CA_DIR = '/usr/local/share/ca-certificates';
const BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/**
 * Copies the host's extra certificate authorities (the files under
 * /usr/local/share/ca-certificates) into the same folder of the root at dir,
 * runs update-ca-certificates in it when the root has ca-certificates (when
 * it does not, its postinst picks the files up once it is installed), and
 * returns the environment to set inside: the CA variables pointing at the
 * root's own bundle (paths as seen inside the chroot). Nothing else of the
 * host's is copied.
 */
function carryTrust(dir) {
  requireRoot('carryTrust');
  const abs = path.resolve(dir);
  const dest = path.join(abs, LOCAL_CA_DIR);
  fs.mkdirSync(dest, { recursive: true });
  if (fs.existsSync(LOCAL_CA_DIR)) fs.cpSync(LOCAL_CA_DIR, dest, { recursive: true, dereference: true });
  if (fs.existsSync(path.join(abs, 'usr/sbin/update-ca-certificates'))) {
    withMounts(abs, () => run('chroot', chrootArgv(abs, ['update-ca-certificates']).slice(1)), { dns: false });
  }
  // Node reads NODE_EXTRA_CA_CERTS on top of its own store; OpenSSL users
  // (curl, git, pip) SSL_CERT_FILE and their own variables.
  const env = { NODE_EXTRA_CA_CERTS: BUNDLE, SSL_CERT_FILE: BUNDLE, SSL_CERT_DIR: '/etc/ssl/certs' };
  for (const name of ['CURL_CA_BUNDLE', 'GIT_SSL_CAINFO', 'REQUESTS_CA_BUNDLE', 'PIP_CERT']) {
    if (process.env[name]) env[name] = BUNDLE;
  }
  return env;
}

// Roots with withMounts's mounts in place (in this process).
const active = new Set();

// The mounts a chroot needs, in order: [type or 'bind', source, target in the root].
const MOUNTS = [
  ['proc', 'proc', 'proc'],
  ['sysfs', 'sysfs', 'sys'],
  ['bind', '/dev', 'dev'],
  ['bind', '/dev/pts', 'dev/pts'],
  ['tmpfs', 'tmpfs', 'dev/shm'],
  ['tmpfs', 'tmpfs', 'run'],
];

/**
 * Runs fn() with /proc, /sys, /dev, /dev/pts, a fresh /dev/shm and /run
 * mounted in the root at dir, plus the host's /etc/resolv.conf bound
 * read-only over the root's (dns: false leaves it out), and unmounts them
 * afterwards whatever happens: after fn returns or throws, after its promise
 * settles when it returns one, at process exit, and on SIGINT, SIGTERM and
 * SIGHUP (which are then raised again). Leftover mounts of an earlier killed
 * run are unmounted first. Returns what fn returns.
 */
function withMounts(dir, fn, { dns = true } = {}) {
  requireRoot('withMounts');
  const abs = fs.realpathSync(path.resolve(dir));
  if (abs === '/') throw new VmError('withMounts: dir is the host root');
  // Nested (carryTrust inside a caller's withMounts): the mounts are there.
  if (active.has(abs)) return fn();
  unmountAll(abs);
  active.add(abs);
  let createdResolv = false;
  const cleanup = () => {
    unmountAll(abs);
    if (createdResolv) fs.rmSync(path.join(abs, 'etc/resolv.conf'), { force: true });
    createdResolv = false;
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const onSignal = (sig) => {
    try { cleanup(); } catch { /* best effort on the way out */ }
    detach();
    if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
  };
  const onExit = () => { try { cleanup(); } catch { /* exiting anyway */ } };
  const detach = () => {
    for (const s of signals) process.removeListener(s, onSignal);
    process.removeListener('exit', onExit);
  };
  for (const s of signals) process.on(s, onSignal);
  process.on('exit', onExit);
  const finish = () => { active.delete(abs); detach(); cleanup(); };
  let result;
  try {
    for (const [type, source, target] of MOUNTS) {
      const at = path.join(abs, target);
      // A symlink here (a root's /run, say) could point out of the root.
      if (fs.existsSync(at) && fs.lstatSync(at).isSymbolicLink()) throw new VmError(`${at} is a symbolic link: not mounting over it`);
      fs.mkdirSync(at, { recursive: true });
      run('mount', type === 'bind' ? ['--bind', source, at] : ['-t', type, source, at]);
    }
    if (dns && fs.existsSync('/etc/resolv.conf')) {
      const at = path.join(abs, 'etc/resolv.conf');
      if (fs.existsSync(at) && fs.lstatSync(at).isSymbolicLink()) fs.rmSync(at);
      if (!fs.existsSync(at)) {
        fs.writeFileSync(at, '');
        createdResolv = true;
      }
      run('mount', ['--bind', '/etc/resolv.conf', at]);
      run('mount', ['-o', 'remount,bind,ro', at], { allowFail: true });
    }
    result = fn();
  } catch (e) {
    finish();
    throw e;
  }
  if (result && typeof result.then === 'function') {
    return result.then((v) => { finish(); return v; }, (e) => { finish(); throw e; });
  }
  finish();
  return result;
}

/**
 * The argv that runs argv (an array, or a shell string) chrooted into dir with
 * a clean environment (BASE_ENV plus env, nothing of the host's) at cwd
 * (default /). Use it inside withMounts.
 */
function chrootArgv(dir, argv, { env = {}, cwd = '/' } = {}) {
  const cmd = typeof argv === 'string' ? ['/bin/sh', '-c', argv] : argv;
  const vars = Object.entries({ ...BASE_ENV, ...env }).map(([k, v]) => `${k}=${v}`);
  return ['chroot', path.resolve(dir), '/usr/bin/env', '-i', ...vars,
    '/bin/sh', '-c', 'cd "$0" && exec "$@"', cwd, ...cmd];
}

/** Runs argv chrooted into dir (synchronously, mounts around it); returns exec.run's { status, stdout, stderr }. */
function chrootRun(dir, argv, { env, cwd, inherit = false, allowFail = false, dns = true } = {}) {
  const [cmd, ...args] = chrootArgv(dir, argv, { env, cwd });
  return withMounts(dir, () => run(cmd, args, { inherit, allowFail }), { dns });
}

module.exports = {
  readJson,
  ensureBaseRoot, makeRoot, carryTrust, withMounts, chrootArgv, chrootRun, unmountAll, removeTree,
  rootsDir, MIRROR, KEYRING, BASE_ENV,
};
