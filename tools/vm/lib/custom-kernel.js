'use strict';
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { run } = require('./exec');
const { VmError } = require('./errors');
const apt = require('./debian-apt');
const { cacheDir } = require('./paths');

// A guest kernel built from Debian's own kernel source with a config fragment
// (tools/vm/kernels/<name>.config) on top of `make tinyconfig`: Debian's
// kernels lack iommufd, the VFIO device cdev, no-IOMMU mode and the mtty
// sample. Everything is built in, so the result is one bzImage and no modules.
// The first build takes about 10 minutes on 2 idle cores (621 s in a clean
// root), more when they are shared; the result is cached by a key over the
// fragment(s), the source version and RECIPE (below).
//
// A variant names its base on the fragment's first line ("# base: vfio-7.3"):
// the base's fragment is merged first, the variant's lines on top. A variant
// is built in its base's build folder, so kbuild recompiles only what the
// flipped options touch (a minute or two instead of ten); the outputs are
// cached apart, each under its own name and key.

// Debian packages the build needs on the host (the harness installs them).
const BUILD_PACKAGES = ['make', 'gcc', 'libc6-dev', 'flex', 'bison', 'bc', 'libelf-dev', 'libssl-dev', 'xz-utils'];
const FRAGMENTS_DIR = path.join(__dirname, '..', 'kernels');
const PROGRESS_EVERY_MS = 30 * 1000;
// Part of the cache key: bump it when the way a kernel is built changes (not
// for comments), so cached kernels of the old recipe are built again.
const RECIPE = 1;

function missingBuildPackages() {
  return BUILD_PACKAGES.filter((p) => {
    const res = run('dpkg-query', ['-W', '-f=${Status}', p], { allowFail: true });
    return !(res.status === 0 && /install ok installed/.test(res.stdout));
  });
}

// "vfio-7.3" -> source package linux-source-7.3, release suffix "-vfio".
function describe(name) {
  const m = /^(.+)-(\d+\.\d+)$/.exec(name);
  if (!m) throw new VmError(`custom kernel name "${name}" should be <flavour>-<major.minor>, e.g. vfio-7.3`);
  return { pkg: `linux-source-${m[2]}`, series: m[2], localversion: `-${m[1]}`, fragments: fragmentChain(name, m[2], FRAGMENTS_DIR) };
}

// The fragments of kernel `name`, base first: [{ name, path, text }]. A
// fragment whose first line is "# base: <kernel>" builds on that kernel's.
function fragmentChain(name, series, dir, seen = []) {
  if (seen.includes(name)) throw new VmError(`config fragments name each other as base: ${[...seen, name].join(' -> ')}`);
  const file = path.join(dir, `${name}.config`);
  if (!fs.existsSync(file)) {
    throw new VmError(seen.length ? `${seen[seen.length - 1]}.config names base ${name}, which has no fragment ${file}` : `no config fragment for kernel ${name}: ${file}`);
  }
  const text = fs.readFileSync(file, 'utf8');
  const base = /^# base: (\S+)\s*$/.exec(text.split('\n')[0])?.[1];
  if (base === undefined) return [{ name, path: file, text }];
  if (!base.endsWith(`-${series}`)) throw new VmError(`${file} builds on ${base}, not a kernel of the same source (${series})`);
  return [...fragmentChain(base, series, dir, [...seen, name]), { name, path: file, text }];
}

// The newest source the private apt lists offer; offline, the newest one
// already unpacked here (so a cached kernel needs no network).
function sourceVersion(pkg, log) {
  try {
    const v = apt.versions(pkg, { log })[0];
    if (v) return v;
  } catch (e) {
    log(`cannot look up ${pkg} (${e.message.split('\n')[0]}); trying the sources unpacked here`);
  }
  const srcRoot = path.join(cacheDir, 'kernel-src');
  const local = fs.existsSync(srcRoot)
    ? fs.readdirSync(srcRoot).filter((v) => fs.existsSync(path.join(srcRoot, v, `.${pkg}.done`))).sort()
    : [];
  if (local.length) return local.pop();
  throw new VmError(`Debian offers no ${pkg} (private apt lists) and none is unpacked in ${srcRoot}`);
}

// .deb -> usr/src/linux-source-X.Y.tar.xz -> kernel-src/<version>/linux-source-X.Y.
// The stamp is written last, so an interrupted extraction starts over.
function ensureSource(pkg, version, series, log) {
  const dir = path.join(cacheDir, 'kernel-src', version);
  const tree = path.join(dir, `linux-source-${series}`);
  const stamp = path.join(dir, `.${pkg}.done`);
  if (fs.existsSync(stamp)) return tree;
  const deb = apt.download(pkg, version, { log });
  const debDir = path.join(dir, 'deb');
  fs.rmSync(tree, { recursive: true, force: true });
  fs.rmSync(debDir, { recursive: true, force: true });
  log(`unpacking ${path.basename(deb)}`);
  apt.unpack(deb, debDir);
  const tarball = path.join(debDir, 'usr', 'src', `linux-source-${series}.tar.xz`);
  if (!fs.existsSync(tarball)) throw new VmError(`${path.basename(deb)} has no usr/src/linux-source-${series}.tar.xz`);
  run('tar', ['-xf', tarball, '-C', dir]);
  if (!fs.existsSync(path.join(tree, 'Makefile'))) throw new VmError(`the tarball of ${pkg} has no linux-source-${series}/Makefile`);
  fs.rmSync(debDir, { recursive: true, force: true }); // 170 MB the tree no longer needs
  fs.writeFileSync(stamp, `${path.basename(deb)}\n`);
  return tree;
}

// "CONFIG_X=y" and "# CONFIG_X is not set" lines as a Map of X -> value ("n"
// for not set). Comment lines of the fragment are skipped.
function parseConfig(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    let m = /^CONFIG_(\w+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1], m[2]);
    else if ((m = /^# CONFIG_(\w+) is not set$/.exec(line.trim()))) out.set(m[1], 'n');
  }
  return out;
}

// What the fragments ask for, merged in order (a later line wins), as
// merge_config.sh merges them into the .config.
function wantedConfig(fragments) {
  const wanted = new Map();
  for (const f of fragments) for (const [sym, value] of parseConfig(f.text)) wanted.set(sym, value);
  return wanted;
}

// Kconfig drops what it cannot satisfy without a word (an unmet dependency, a
// renamed symbol): every line the fragments ask for (merged) must be in the
// final .config as written, or the kernel lacks something the guest suite
// counts on.
function checkConfig(wanted, configText, fragmentPaths) {
  const have = parseConfig(configText);
  const wrong = [];
  for (const [sym, want] of wanted) {
    const got = have.get(sym) ?? 'n';
    if (got !== want) wrong.push(`CONFIG_${sym}: asked ${want}, got ${got}`);
  }
  if (wrong.length) {
    throw new VmError(`the kernel config does not have what ${fragmentPaths.join(' + ')} asks for (missing dependency or unknown symbol):\n  ${wrong.join('\n  ')}`);
  }
}

function sleepSync(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function tail(file, lines) {
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

// The last "  CC      drivers/vfio/vfio_main.o" style line of the log.
function lastStep(logPath) {
  let fd;
  try {
    fd = fs.openSync(logPath, 'r');
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.alloc(Math.min(size, 8192));
    fs.readSync(fd, buf, 0, buf.length, size - buf.length);
    const steps = buf.toString('utf8').split('\n').filter((l) => /^\s+[A-Z][A-Z0-9_-]*\s+\S/.test(l));
    return steps.length ? steps.pop().trim().replace(/\s+/g, ' ') : 'starting';
  } catch {
    return 'starting';
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

// setup is synchronous, yet a 10-minute build must not be silent: make runs
// in the background (its whole output to the log), and this loop sleeps and
// prints one progress line every 30 s until the shell has exited (a zombie:
// without the event loop nobody reaps it) and left make's status in a file.
// make stays in our process group, so Ctrl-C stops it too.
function makeWithProgress(srcDir, args, logPath, label, log) {
  const rcPath = `${logPath}.rc`;
  fs.rmSync(rcPath, { force: true });
  const child = spawn('sh', ['-c', 'make "$@" >"$KLOG" 2>&1; echo $? >"$KLOG.rc"', 'sh', ...args], {
    cwd: srcDir,
    stdio: 'ignore',
    env: { ...process.env, KLOG: logPath },
  });
  if (!child.pid) throw new VmError('cannot start sh for the kernel build');
  const exited = () => {
    try {
      return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8'));
    } catch {
      return true;
    }
  };
  const start = Date.now();
  let next = start + PROGRESS_EVERY_MS;
  while (!exited()) {
    sleepSync(500);
    if (Date.now() >= next) {
      const s = Math.round((Date.now() - start) / 1000);
      log(`${label}: ${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s, ${lastStep(logPath)}`);
      next += PROGRESS_EVERY_MS;
    }
  }
  const rc = fs.existsSync(rcPath) ? fs.readFileSync(rcPath, 'utf8').trim() : 'unknown';
  if (rc !== '0') {
    throw new VmError(`make ${args.join(' ')} failed (exit ${rc}); full log: ${logPath}\n${tail(logPath, 30)}`);
  }
  return (Date.now() - start) / 1000;
}

// The cache key: each fragment's text (base first), the source version and
// RECIPE. A kernel without a base hashes exactly what it always did, so its
// cached build stays valid; a variant's key changes with its base's text.
function cacheKey(fragments, version) {
  const hash = crypto.createHash('sha256');
  for (const f of fragments) hash.update(f.text).update('\0');
  return hash.update(version).update('\0').update(String(RECIPE)).digest('hex').slice(0, 16);
}

// A base and its variants share one build folder: one build at a time in
// it, across processes. The lock file holds its owner's pid; a lock whose
// owner is gone (killed mid-build) is taken over.
function withBuildLock(buildDir, name, log, fn) {
  const lock = path.join(buildDir, '.build-lock');
  let next = Date.now();
  for (;;) {
    try {
      fs.writeFileSync(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
    }
    const owner = Number(fs.readFileSync(lock, 'utf8')) || null;
    if (owner !== null && !alive(owner)) {
      fs.rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() >= next) {
      log(`kernel ${name}: waiting for the build of pid ${owner ?? '?'} in ${buildDir}`);
      next = Date.now() + PROGRESS_EVERY_MS;
    }
    sleepSync(1000);
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/**
 * Builds (once) and returns the custom guest kernel `name`:
 * { name, version, vmlinuz, config, modules: false, key }.
 */
function ensureCustomKernel({ name = 'vfio-7.3', log = () => {} } = {}) {
  const { pkg, series, localversion, fragments } = describe(name);
  const version = sourceVersion(pkg, log);
  const key = cacheKey(fragments, version);
  const outDir = path.join(cacheDir, 'kernels', `${name}-${key}`);
  const stamp = path.join(outDir, '.done');
  const result = () => ({
    name,
    version: JSON.parse(fs.readFileSync(stamp, 'utf8')).version,
    vmlinuz: path.join(outDir, 'bzImage'),
    config: path.join(outDir, 'config'),
    modules: false,
    key,
  });
  if (fs.existsSync(stamp)) return result();

  const missing = missingBuildPackages();
  if (missing.length) {
    throw new VmError(`building kernel ${name} needs the Debian packages ${missing.join(' ')} (apt-get install ${missing.join(' ')})`);
  }
  const src = ensureSource(pkg, version, series, log);

  // One build dir per source version and base kernel, whatever the key or
  // variant: kbuild tracks config and command-line changes per file, so a
  // changed fragment, or a variant after its base (and back), rebuilds
  // incrementally. (Its path must stay put: kbuild records absolute paths,
  // and a renamed build dir rebuilds everything.)
  const buildDir = path.join(cacheDir, 'kernel-build', version, fragments[0].name);
  fs.mkdirSync(buildDir, { recursive: true });
  withBuildLock(buildDir, name, log, () => {
    if (fs.existsSync(stamp)) return; // built by the process we waited for
    const names = fragments.map((f) => path.basename(f.path)).join(' + ');
    log(`kernel ${name}: configuring ${pkg} ${version} (tinyconfig + ${names}) in ${buildDir}`);
    const make = (...args) => run('make', ['-C', src, `O=${buildDir}`, ...args]);
    make('tinyconfig');
    run(path.join(src, 'scripts', 'kconfig', 'merge_config.sh'), ['-m', '-O', buildDir, path.join(buildDir, '.config'), ...fragments.map((f) => f.path)], { cwd: src });
    make('olddefconfig');
    checkConfig(wantedConfig(fragments), fs.readFileSync(path.join(buildDir, '.config'), 'utf8'), fragments.map((f) => f.path));

    const jobs = os.availableParallelism ? os.availableParallelism() : os.cpus().length;
    const logPath = path.join(buildDir, 'build.log');
    log(`kernel ${name}: make -j${jobs} bzImage (about 10 minutes on 2 idle cores the first time, a minute or two after a small config change or another variant of ${fragments[0].name}; log: ${logPath})`);
    const seconds = makeWithProgress(src, [`O=${buildDir}`, `LOCALVERSION=${localversion}`, `-j${jobs}`, 'bzImage'], logPath, `kernel ${name}`, log);
    const release = fs.readFileSync(path.join(buildDir, 'include', 'config', 'kernel.release'), 'utf8').trim();

    // Copy out, stamp last: a half-written cache entry never looks valid.
    fs.rmSync(outDir, { recursive: true, force: true });
    fs.mkdirSync(outDir, { recursive: true });
    fs.copyFileSync(path.join(buildDir, 'arch', 'x86', 'boot', 'bzImage'), path.join(outDir, 'bzImage'));
    fs.copyFileSync(path.join(buildDir, '.config'), path.join(outDir, 'config'));
    fs.writeFileSync(stamp, JSON.stringify({ version: release, source: `${pkg} ${version}`, key, buildSeconds: Math.round(seconds) }) + '\n');
    log(`kernel ${name}: ${release} built in ${Math.round(seconds)} s`);
  });
  return result();
}

module.exports = { ensureCustomKernel, BUILD_PACKAGES, checkConfig, parseConfig, wantedConfig, fragmentChain, cacheKey, FRAGMENTS_DIR };
