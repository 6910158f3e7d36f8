'use strict';
const fs = require('node:fs');
const path = require('node:path');

// tools/vm/lib -> repository root. The cache lives in the repository (not in
// $HOME) so every checkout gets its own and .gitignore's .cache/ covers it.
// A .cache that is a link to a folder shared by several checkouts (CI keeps
// one outside its fresh clones) is named by its real path: what state.json
// records then holds for every checkout, and inside the guest, where another
// checkout's folder under /tmp is not visible.
const repoRoot = path.resolve(__dirname, '..', '..', '..');
const dotCache = path.join(repoRoot, '.cache');
const cacheBase = fs.existsSync(dotCache) ? fs.realpathSync(dotCache) : dotCache;
const cacheDir = process.env.VFIO_VM_CACHE || path.join(cacheBase, 'vm');

module.exports = {
  repoRoot,
  cacheDir,
  downloadsDir: path.join(cacheDir, 'downloads'),
  kernelsDir: path.join(cacheDir, 'kernels'),
  initramfsDir: path.join(cacheDir, 'initramfs'),
  runsDir: path.join(cacheDir, 'runs'),
  statePath: path.join(cacheDir, 'state.json'),
  lastConsolePath: path.join(cacheDir, 'last-console.log'),
  guestInitPath: path.join(__dirname, '..', 'guest', 'init'),
};
