'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { run } = require('./exec');
const { VmError } = require('./errors');

// A private apt: its own sources list, package lists and download cache
// under <repo>/.cache/debian-apt, so packages of any Debian suite (kernels
// from bookworm and trixie-backports, the kernel source, uapi headers) can be
// downloaded and unpacked with dpkg-deb without touching the machine's own
// apt setup, and without root. Shared by the test bed and tools/gen-bindings.

const MIRROR = 'http://deb.debian.org/debian';
const SECURITY = 'http://deb.debian.org/debian-security';
const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
const SOURCES = [
  `deb [signed-by=${KEYRING}] ${MIRROR} bookworm main`,
  `deb [signed-by=${KEYRING}] ${SECURITY} bookworm-security main`,
  `deb [signed-by=${KEYRING}] ${MIRROR} bookworm-backports main`,
  `deb [signed-by=${KEYRING}] ${MIRROR} trixie main`,
  `deb [signed-by=${KEYRING}] ${SECURITY} trixie-security main`,
  `deb [signed-by=${KEYRING}] ${MIRROR} trixie-backports main`,
];
// Lists older than this are refreshed before a look-up (a download of a
// version the mirror dropped would fail otherwise).
const MAX_LIST_AGE_MS = 12 * 3600 * 1000;

const repoRoot = path.resolve(__dirname, '..', '..', '..');
const aptDir = process.env.VFIO_APT_CACHE || path.join(repoRoot, '.cache', 'debian-apt');

function options() {
  return [
    '-o', `Dir::Etc::SourceList=${path.join(aptDir, 'sources.list')}`,
    '-o', 'Dir::Etc::SourceParts=-',
    '-o', `Dir::State::Lists=${path.join(aptDir, 'lists')}`,
    '-o', `Dir::State::Status=${path.join(aptDir, 'status')}`,
    '-o', `Dir::Cache=${path.join(aptDir, 'cache')}`,
    // The private lists are ours alone: no system lock, and as root apt would
    // drop to the _apt user, which cannot write into the repository's cache.
    '-o', 'Debug::NoLocking=1',
    '-o', 'APT::Sandbox::User=root',
    '-q',
  ];
}

function prepareDirs() {
  for (const d of ['lists/partial', 'cache/archives/partial', 'debs']) fs.mkdirSync(path.join(aptDir, d), { recursive: true });
  const list = SOURCES.join('\n') + '\n';
  const listPath = path.join(aptDir, 'sources.list');
  if (!fs.existsSync(listPath) || fs.readFileSync(listPath, 'utf8') !== list) {
    fs.writeFileSync(listPath, list);
    fs.rmSync(path.join(aptDir, 'updated'), { force: true });
  }
  // apt reads the status file of its (empty) private dpkg database.
  if (!fs.existsSync(path.join(aptDir, 'status'))) fs.writeFileSync(path.join(aptDir, 'status'), '');
}

let updatedThisProcess = false;
/** apt-get update of the private lists when they are missing or stale (or force). */
function update({ log = () => {}, force = false } = {}) {
  prepareDirs();
  const stamp = path.join(aptDir, 'updated');
  const fresh = fs.existsSync(stamp) && Date.now() - fs.statSync(stamp).mtimeMs < MAX_LIST_AGE_MS;
  if (fresh && !force) return;
  if (updatedThisProcess && !force) return;
  log('apt-get update (private lists: bookworm, trixie and their backports)');
  run('apt-get', [...options(), 'update']);
  fs.writeFileSync(stamp, new Date().toISOString() + '\n');
  updatedThisProcess = true;
}

/** Names of the packages whose name matches an anchored regular expression. */
function searchNames(regex, { log } = {}) {
  update({ log });
  const out = run('apt-cache', [...options(), 'search', '--names-only', regex]).stdout;
  return out.split('\n').map((l) => l.split(' - ')[0].trim()).filter(Boolean);
}

/** Every version of a package the private sources offer, newest first. */
function versions(pkg, { log } = {}) {
  update({ log });
  const out = run('apt-cache', [...options(), 'madison', pkg], { allowFail: true }).stdout;
  return [...new Set(out.split('\n').map((l) => l.split('|')[1]?.trim()).filter(Boolean))];
}

/**
 * Downloads pkg (at version, or the newest) into the private cache and
 * returns the .deb's path; a .deb already there is reused.
 */
function download(pkg, version, { log = () => {} } = {}) {
  prepareDirs();
  // Without a version: the newest the lists offer (a .deb of it may be here).
  if (!version) version = versions(pkg, { log })[0];
  const debs = path.join(aptDir, 'debs');
  const prefix = `${pkg}_${version ? version.replace(/:/g, '%3a') + '_' : ''}`;
  const find = () => fs.readdirSync(debs).filter((f) => f.startsWith(prefix) && f.endsWith('.deb')).sort().pop();
  if (version && find()) return path.join(debs, find());
  update({ log });
  log(`downloading ${pkg}${version ? ` ${version}` : ''}`);
  // Into a folder of its own, then renamed: a download that is killed
  // half-way never leaves a truncated .deb that a later call would reuse.
  const partial = fs.mkdtempSync(path.join(debs, '.partial-'));
  try {
    run('apt-get', [...options(), 'download', version ? `${pkg}=${version}` : pkg], { cwd: partial });
    for (const f of fs.readdirSync(partial)) fs.renameSync(path.join(partial, f), path.join(debs, f));
  } catch (e) {
    const offered = versions(pkg).join(', ') || 'none';
    throw new VmError(`cannot download ${pkg}${version ? ` ${version}` : ''} from Debian (offered: ${offered}): ${e.message}`);
  } finally {
    fs.rmSync(partial, { recursive: true, force: true });
  }
  const deb = find();
  if (!deb) throw new VmError(`apt-get download ${pkg} left no .deb in ${debs}`);
  return path.join(debs, deb);
}

/**
 * Unpacks a .deb into dir with dpkg-deb -x. A stamp listing the .debs
 * unpacked there makes a second call free; an interrupted unpack writes no
 * stamp, so the next call unpacks again.
 */
function unpack(deb, dir) {
  const stamp = path.join(dir, '.unpacked');
  const names = fs.existsSync(stamp) ? fs.readFileSync(stamp, 'utf8').split('\n') : [];
  if (names.includes(path.basename(deb))) return dir;
  fs.mkdirSync(dir, { recursive: true });
  run('dpkg-deb', ['-x', deb, dir]);
  fs.writeFileSync(stamp, [...names.filter(Boolean), path.basename(deb)].join('\n') + '\n');
  return dir;
}

module.exports = { update, searchNames, versions, download, unpack, options, aptDir, SOURCES, KEYRING };
