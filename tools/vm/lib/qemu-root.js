'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { run, which } = require('./exec');
const { VmError } = require('./errors');
const { makeRoot, chrootRun, removeTree, readJson, rootsDir, MIRROR } = require('./debian-root');

// A QEMU newer than the host's, from Debian 13 (trixie, or trixie-backports
// for 11.1), installed once with apt-get into a Debian 13 root of its own
// (<roots cache>/qemu-<version>/root) and run on the host, not chrooted: the
// test bed hands QEMU host paths (-kernel, -initrd, 9p shares of the host's
// /), so QEMU must see the host's files. It runs through the root's own
// dynamic loader with the root's libraries only (Debian 12's glibc 2.36 is
// too old for it; --inhibit-cache keeps the host's ld.so.cache out), the
// root's firmware through -L, the root's modules through QEMU_MODULE_DIR,
// and a qemu-bundle link (see linkBundle) that makes QEMU's compiled-in
// folders the root's too, so none of the host's QEMU 7.2 files is read
// (checked with strace: outside the root it opens only /, /dev, /proc, /sys
// and /etc/localtime).

const SECURITY = 'http://deb.debian.org/debian-security';
const SUITE = 'trixie';
const SOURCES = [
  `deb ${MIRROR} trixie-updates main`,
  `deb ${SECURITY} trixie-security main`,
  `deb ${MIRROR} trixie-backports main`,
].join('\n') + '\n';
// qemu-system-x86 and the firmware it loads: seabios (bios-256k.bin) and
// ipxe-qemu (the NIC option ROMs, efi-e1000e.rom and the like, which the
// suite exposes as ROM regions). Recommends are skipped (GUI, audio, tools).
const PACKAGES = ['qemu-system-x86', 'qemu-system-data', 'seabios', 'ipxe-qemu'];
const RECIPE = 2;

// 1:11.1.3+ds-1~bpo13+1 -> 11.1.3
const upstream = (pkgVersion) => pkgVersion.replace(/^\d+:/, '').split(/[+~-]/)[0];

/** The root's library folders, from its ld.so.conf.d (as the root's ldconfig would search them). */
function libraryPath(root) {
  const dirs = [];
  const confDir = path.join(root, 'etc/ld.so.conf.d');
  for (const f of fs.existsSync(confDir) ? fs.readdirSync(confDir).sort() : []) {
    if (!f.endsWith('.conf')) continue;
    for (const line of fs.readFileSync(path.join(confDir, f), 'utf8').split('\n')) {
      const d = line.replace(/#.*/, '').trim();
      if (d.startsWith('/')) dirs.push(d);
    }
  }
  // The defaults ld.so adds (on merged-/usr Debian, /lib is /usr/lib).
  dirs.push('/usr/lib/x86_64-linux-gnu', '/usr/lib');
  // Once each (/lib is a link to usr/lib), and only folders that resolve
  // inside the root: an absolute link there would lead to the host's.
  const realRoot = fs.realpathSync(root);
  const seen = new Set();
  const out = [];
  for (const d of dirs) {
    const at = path.join(root, d);
    if (!fs.existsSync(at)) continue;
    const real = fs.realpathSync(at);
    if (!real.startsWith(realRoot + '/') || seen.has(real)) continue;
    seen.add(real);
    out.push(path.join(root, path.relative(realRoot, real)));
  }
  return out;
}

// What a caller runs, for a QEMU in the root at root.
function shape(dir, info) {
  const root = path.join(dir, 'root');
  const dataDir = path.join(root, 'usr/share/qemu');
  const command = [
    path.join(root, 'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'),
    // Not the host's /etc/ld.so.cache: only the root's folders.
    '--inhibit-cache',
    '--library-path', libraryPath(root).join(':'),
    '--argv0', 'qemu-system-x86_64',
    path.join(root, 'usr/bin/qemu-system-x86_64'),
    // Firmware and option ROMs, the root's: Debian's QEMU 11 looks in
    // /usr/share/qemu (kvmvapic.bin, linuxboot_dma.bin, the ipxe-qemu ROMs
    // efi-e1000e.rom and the like) and /usr/share/seabios (bios-256k.bin);
    // -L puts the root's copies of both before those compiled-in folders,
    // which on this host hold QEMU 7.2's files.
    '-L', dataDir,
    '-L', path.join(root, 'usr/share/seabios'),
  ];
  return {
    version: info.version,
    packageVersion: info.packageVersion,
    command,
    // The host's QEMU modules (7.2's, in the compiled-in folder) must not be
    // tried: the root's modules folder instead.
    env: { QEMU_MODULE_DIR: path.join(root, 'usr/lib/x86_64-linux-gnu/qemu') },
    dataDir,
    root,
  };
}

function hostQemu() {
  const bin = which('qemu-system-x86_64');
  if (!bin) throw new VmError('qemu-system-x86_64 is not installed on the host (run "node tools/vm/bin/vm.js setup")');
  const out = run(bin, ['--version']).stdout;
  const m = /version (\S+)(?: \(Debian ([^)]+)\))?/.exec(out);
  return {
    version: m ? m[1] : 'unknown',
    packageVersion: m?.[2] ?? null,
    command: [bin],
    env: {},
    dataDir: '/usr/share/qemu',
    root: '/',
  };
}

// Firmware a q35 guest of the test bed loads (strace of a boot): SeaBIOS,
// the -kernel loader and the TCG vAPIC ROM from qemu-system-data, e1000e's
// option ROM from ipxe-qemu (igb has no option ROM in 11.1).
const FIRMWARE = ['seabios/bios-256k.bin', 'qemu/kvmvapic.bin', 'qemu/linuxboot_dma.bin', 'qemu/efi-e1000e.rom'];

// QEMU finds its compiled-in folders (modules /usr/lib/x86_64-linux-gnu/qemu,
// firmware /usr/share/qemu and /usr/share/seabios) relative to its
// executable's folder when that folder holds a "qemu-bundle" (QEMU's
// relocatable-install hook, util/cutils.c get_relocated_path). Started
// through ld.so, its executable (/proc/self/exe) is the root's ld.so, in
// ROOT/usr/lib/x86_64-linux-gnu; a qemu-bundle there that points at ROOT
// turns every compiled-in path into the root's. Without it a module the root
// lacks (ui-opengl.so, say, which -device help loads) is taken from the
// host's QEMU 7.2 folder and QEMU aborts: "Only modules from the same build
// can be loaded".
function linkBundle(root) {
  const link = path.join(root, 'usr/lib/x86_64-linux-gnu/qemu-bundle');
  if (!fs.existsSync(link)) fs.symlinkSync('../../..', link);
}

/**
 * { version, packageVersion, command, env, dataDir, root } for QEMU
 * version ('11.1', '10.0': the newest Debian 13 package of that upstream
 * series, trixie or trixie-backports; 'host': the host's own
 * qemu-system-x86_64). command is the argv prefix that starts
 * qemu-system-x86_64 on the host; run it with env added to the environment.
 * The root is made once (debootstrap + apt-get, a few minutes) and cached;
 * later calls read its qemu.json and touch no network.
 */
function ensureQemu({ version = '11.1', log = () => {} } = {}) {
  if (version === 'host') return hostQemu();
  if (!/^\d+\.\d+$/.test(version)) throw new VmError(`QEMU version "${version}": give a series like 11.1, or host`);
  const dir = path.join(rootsDir, `qemu-${version}`);
  const metaPath = path.join(dir, 'qemu.json');
  const meta = readJson(metaPath);
  if (meta?.recipe === RECIPE && fs.existsSync(path.join(dir, 'root/usr/bin/qemu-system-x86_64'))) return shape(dir, meta);

  const started = Date.now();
  fs.mkdirSync(dir, { recursive: true });
  const work = path.join(dir, `root.${process.pid}.tmp`);
  try {
    makeRoot({ suite: SUITE, dir: work, log });
    fs.writeFileSync(path.join(work, 'etc/apt/sources.list.d/vfio-qemu.list'), SOURCES);
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    log(`apt-get update in the ${SUITE} root`);
    chrootRun(work, ['apt-get', '-q', 'update'], { env });
    // The newest package of the series, and the suite that has it.
    const madison = chrootRun(work, ['apt-cache', 'madison', 'qemu-system-x86'], { env }).stdout;
    const offers = madison.split('\n').map((l) => l.split('|').map((s) => s.trim())).filter((f) => f.length >= 3)
      .map(([, v, src]) => ({ v, release: /\s(\S+?)\/main/.exec(src)?.[1] }));
    const pick = offers.find((o) => upstream(o.v) === version || upstream(o.v).startsWith(`${version}.`));
    if (!pick?.release) {
      throw new VmError(`no qemu-system-x86 ${version}.x in Debian ${SUITE} or its backports (offered: ${offers.map((o) => o.v).join(', ') || 'none'})`);
    }
    log(`installing qemu-system-x86 ${pick.v} from ${pick.release}`);
    const installStarted = Date.now();
    chrootRun(work, [
      'apt-get', 'install', '-y', '-q', '--no-install-recommends',
      // Nothing here survives a crash anyway: skip dpkg's fsyncs.
      '-o', 'DPkg::Options::=--force-unsafe-io',
      '-t', pick.release, `qemu-system-x86=${pick.v}`, ...PACKAGES.slice(1),
    ], { env });
    const installSeconds = (Date.now() - installStarted) / 1000;
    chrootRun(work, ['apt-get', 'clean'], { env });
    fs.rmSync(path.join(work, 'var/lib/apt/lists'), { recursive: true, force: true });
    fs.mkdirSync(path.join(work, 'var/lib/apt/lists/partial'), { recursive: true });
    const installed = run('dpkg-query', [`--admindir=${path.join(work, 'var/lib/dpkg')}`, '-W', '-f=${Version}', 'qemu-system-x86']).stdout.trim();
    linkBundle(work);
    const missing = FIRMWARE.filter((f) => !fs.existsSync(path.join(work, 'usr/share', f)));
    if (missing.length) throw new VmError(`the QEMU root lacks firmware: ${missing.join(', ')}`);
    const info = {
      recipe: RECIPE,
      version: upstream(installed),
      packageVersion: installed,
      release: pick.release,
      installSeconds,
      seconds: (Date.now() - started) / 1000,
      rootKiB: Number(run('du', ['-sxk', work]).stdout.split(/\s/)[0]),
      madeAt: new Date().toISOString(),
    };
    removeTree(path.join(dir, 'root'));
    fs.renameSync(work, path.join(dir, 'root'));
    // It starts on this host, the way callers will start it.
    const q = shape(dir, info);
    const said = spawnSync(q.command[0], [...q.command.slice(1), '--version'], { env: { ...process.env, ...q.env }, encoding: 'utf8' });
    if (!String(said.stdout).includes(`version ${info.version}`)) {
      throw new VmError(`the QEMU in ${dir} does not start: ${String(said.stderr || said.error || said.stdout).trim()}`);
    }
    fs.writeFileSync(metaPath, JSON.stringify(info, null, 2) + '\n');
    log(`QEMU ${info.version} ready in ${dir} (${info.seconds.toFixed(0)} s, ${(info.rootKiB / 1024).toFixed(0)} MiB)`);
    return q;
  } finally {
    removeTree(work);
  }
}

module.exports = { ensureQemu, libraryPath, upstream };
