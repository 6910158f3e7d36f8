'use strict';
// Where things live; shared by the fetcher, the generator and the tests.
const fs = require('node:fs');
const path = require('node:path');

const toolRoot = path.resolve(__dirname, '..');
const repoRoot = path.resolve(toolRoot, '..', '..');
const cacheRoot = path.join(repoRoot, '.cache', 'linux-headers');
const outDir = path.join(repoRoot, 'packages', 'vfio-bindings', 'src', 'generated');

function pinned() {
  return JSON.parse(fs.readFileSync(path.join(toolRoot, 'headers.json'), 'utf8'));
}

// The include directory (holding linux/vfio.h) of an unpacked version.
function headerDirFor(version) {
  return path.join(cacheRoot, version.replace(/[^A-Za-z0-9.+~-]/g, '_'), 'include');
}

module.exports = { toolRoot, repoRoot, cacheRoot, outDir, pinned, headerDirFor };
