#!/usr/bin/env node
'use strict';
// Fetches the pinned linux-libc-dev (headers.json) with apt-get download and
// unpacks it under <repo>/.cache/linux-headers/<version>/. Idempotent: an
// unpacked version is never fetched again. apt runs with a private sources
// list and private state so the machine's own apt setup is left untouched.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { repoRoot, cacheRoot, pinned, headerDirFor } = require('./paths');

function aptOptions(aptDir) {
  return [
    '-o', `Dir::Etc::SourceList=${path.join(aptDir, 'sources.list')}`,
    '-o', 'Dir::Etc::SourceParts=-',
    '-o', `Dir::State::Lists=${path.join(aptDir, 'lists')}`,
    '-o', `Dir::Cache=${path.join(aptDir, 'cache')}`,
    // The private lists are ours alone: no need for the system lock, and the
    // _apt sandbox user could not write into the repository's cache.
    '-o', 'Debug::NoLocking=1',
    '-o', 'APT::Sandbox::User=root',
    '-q',
  ];
}

function fetchHeaders(version = pinned().version) {
  const target = headerDirFor(version);
  if (fs.existsSync(path.join(target, 'linux', 'iommufd.h'))) return target;

  const pin = pinned();
  const aptDir = path.join(cacheRoot, 'apt');
  for (const d of ['lists/partial', 'cache/archives/partial', 'debs']) {
    fs.mkdirSync(path.join(aptDir, d), { recursive: true });
  }
  fs.writeFileSync(path.join(aptDir, 'sources.list'), pin.sources.join('\n') + '\n');
  const opts = aptOptions(aptDir);
  const run = (args, cwd) => execFileSync('apt-get', [...opts, ...args], { cwd, stdio: ['ignore', 'inherit', 'inherit'] });

  run(['update']);
  const debs = path.join(aptDir, 'debs');
  try {
    run(['download', `${pin.package}=${version}`], debs);
  } catch (e) {
    const policy = execFileSync('apt-cache', [...opts, 'policy', pin.package], { encoding: 'utf8' });
    throw new Error(
      `${pin.package} ${version} is not on the mirrors any more. Available:\n${policy}\n` +
        'Pin a new version in tools/gen-bindings/headers.json, then run `pnpm gen` and commit the result.',
    );
  }
  const deb = fs.readdirSync(debs).find((f) => f.startsWith(`${pin.package}_${version.replace(/:/g, '%3a')}_`));
  if (!deb) throw new Error(`apt-get download left no .deb for ${version} in ${debs}`);

  // Unpack next to the target and rename, so an interrupted run never leaves
  // a half-unpacked tree that looks complete.
  const versionDir = path.dirname(target);
  const tmp = `${versionDir}.tmp-${process.pid}`;
  const unpack = path.join(tmp, 'root');
  fs.mkdirSync(unpack, { recursive: true });
  execFileSync('dpkg-deb', ['-x', path.join(debs, deb), unpack]);
  fs.renameSync(path.join(unpack, 'usr', 'include'), path.join(tmp, 'include'));
  fs.rmSync(unpack, { recursive: true, force: true });
  fs.rmSync(versionDir, { recursive: true, force: true });
  fs.renameSync(tmp, versionDir);
  return target;
}

module.exports = { fetchHeaders };

if (require.main === module) {
  const arg = process.argv.indexOf('--version');
  const dir = fetchHeaders(arg > 0 ? process.argv[arg + 1] : undefined);
  process.stdout.write(`${path.relative(repoRoot, dir)}\n`);
}
