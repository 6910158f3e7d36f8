'use strict';
const path = require('node:path');

// tools/vm/lib -> repository root. The cache lives in the repository (not in
// $HOME) so every checkout gets its own and .gitignore's .cache/ covers it.
const repoRoot = path.resolve(__dirname, '..', '..', '..');
const cacheDir = process.env.VFIO_VM_CACHE || path.join(repoRoot, '.cache', 'vm');

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
