'use strict';
// The addon behind vfio-ioctls' default Backend. The package's index does
// not export `nativeBackend` (yet); until it does, it is taken from the
// built dist/core/native.js by path, and the results say so (`source`).
const path = require('node:path');

let cached;

function nativeBackend() {
  if (cached !== undefined) return cached?.backend;
  cached = null;
  let backend = require('vfio-ioctls').nativeBackend;
  let source = 'vfio-ioctls (public export)';
  if (!backend) {
    const root = path.dirname(require.resolve('vfio-ioctls/package.json'));
    try {
      backend = require(path.join(root, 'dist', 'core', 'native.js')).nativeBackend;
      source = 'vfio-ioctls/dist/core/native.js (not exported by the package index)';
    } catch {
      return undefined;
    }
  }
  try {
    backend.pageSize(); // loads the addon; throws ERR_VFIO_NO_ADDON when it is not built
  } catch {
    return undefined;
  }
  cached = { backend, source };
  return backend;
}

const addonSource = () => cached?.source ?? null;

module.exports = { nativeBackend, addonSource };
