#!/usr/bin/env node
'use strict';
// Fetches the pinned linux-libc-dev (headers.json) and unpacks its usr/include
// under <repo>/.cache/linux-headers/<version>/include. Idempotent: an unpacked
// version is never fetched again. The download goes through the repository's
// one private apt (tools/vm/lib/debian-apt.js: its own sources for bookworm,
// trixie and their backports, its own lists and cache under
// .cache/debian-apt), so the machine's own apt setup is left untouched.
const fs = require('node:fs');
const path = require('node:path');
const apt = require('../../vm/lib/debian-apt');
const { repoRoot, pinned, headerDirFor } = require('./paths');

const stderrLog = (msg) => process.stderr.write(`fetch-headers: ${msg}\n`);

function fetchHeaders(version = pinned().version, { log = stderrLog } = {}) {
  const target = headerDirFor(version);
  if (fs.existsSync(path.join(target, 'linux', 'vfio.h'))) return target;

  const pkg = pinned().package;
  let deb;
  try {
    deb = apt.download(pkg, version, { log });
  } catch (e) {
    throw new Error(
      `${pkg} ${version} cannot be downloaded (${e.message})\n` +
        'If the mirrors dropped it, pin a version they offer in tools/gen-bindings/headers.json, ' +
        'then run `pnpm gen` and commit the result.',
      { cause: e },
    );
  }

  // Unpack next to the target and rename, so an interrupted run never leaves
  // a half-unpacked tree that looks complete.
  const versionDir = path.dirname(target);
  const tmp = `${versionDir}.tmp-${process.pid}`;
  const root = path.join(tmp, 'root');
  fs.rmSync(tmp, { recursive: true, force: true });
  try {
    log(`unpacking ${path.basename(deb)}`);
    try {
      apt.unpack(deb, root);
    } catch (e) {
      throw new Error(`cannot unpack ${deb} (a truncated download? delete it and run again): ${e.message}`, { cause: e });
    }
    const include = path.join(root, 'usr', 'include');
    if (!fs.existsSync(path.join(include, 'linux', 'vfio.h'))) throw new Error(`${deb} holds no usr/include/linux/vfio.h`);
    fs.renameSync(include, path.join(tmp, 'include'));
    fs.rmSync(root, { recursive: true, force: true });
    fs.rmSync(versionDir, { recursive: true, force: true });
    fs.renameSync(tmp, versionDir);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return target;
}

module.exports = { fetchHeaders };

if (require.main === module) {
  const arg = process.argv.indexOf('--version');
  const dir = fetchHeaders(arg > 0 ? process.argv[arg + 1] : undefined);
  process.stdout.write(`${path.relative(repoRoot, dir)}\n`);
}
