'use strict';
// The addon as vfio-ioctls exports it (the Backend the safe API uses by
// default). Undefined when the package does not export it or the addon is
// not built, so the rest of the host bench still runs.

function nativeBackend() {
  let lib;
  try {
    lib = require('vfio-ioctls');
  } catch {
    return undefined;
  }
  const backend = lib.nativeBackend;
  if (!backend) return undefined;
  try {
    backend.pageSize(); // loads the addon; throws ERR_VFIO_NO_ADDON when missing
  } catch {
    return undefined;
  }
  return backend;
}

module.exports = { nativeBackend };
