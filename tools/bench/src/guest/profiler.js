'use strict';
// CPU profile of the library rounds only (node:inspector), so start-up,
// module loading and the C rounds do not crowd out what the library costs.
const fs = require('node:fs');
const path = require('node:path');
const inspector = require('node:inspector');

function post(session, method, params) {
  return new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
}

/** Runs fn under the profiler and writes DIR/NAME.cpuprofile. */
async function profiled(dir, name, fn) {
  const session = new inspector.Session();
  session.connect();
  await post(session, 'Profiler.enable');
  await post(session, 'Profiler.setSamplingInterval', { interval: 200 });
  await post(session, 'Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await post(session, 'Profiler.stop');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}

module.exports = { profiled };
