#!/usr/bin/env node
// Runs a build command (prebuildify, node-gyp) with npm_config_nodedir set to
// the Node.js headers installed on this machine. Without it node-gyp
// downloads the headers from nodejs.org, which a machine that reaches only
// package registries cannot do; and the variable cannot simply be exported
// by the caller, since turbo's strict environment drops it on the way.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const hasHeaders = (dir) => Boolean(dir) && fs.existsSync(path.join(dir, 'include', 'node', 'node_api.h'));

/** The first directory holding include/node/node_api.h: the caller's choice, this node's prefix, /usr. */
function nodeHeadersDir() {
  const candidates = [process.env.npm_config_nodedir, path.resolve(path.dirname(process.execPath), '..'), '/usr'];
  return candidates.find(hasHeaders);
}

const [command, ...args] = process.argv.slice(2);
if (!command) {
  console.error('usage: with-node-headers.js COMMAND [ARGS...]');
  process.exit(2);
}
const nodedir = nodeHeadersDir();
if (!nodedir) {
  console.error(
    `with-node-headers: no Node.js headers (include/node/node_api.h) for ${process.execPath} ${process.version}.\n` +
      '  Debian\'s nodejs: apt-get install libnode-dev. Another Node.js: set npm_config_nodedir to its install prefix.',
  );
  process.exit(1);
}
const res = spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, npm_config_nodedir: nodedir } });
if (res.error) {
  console.error(`with-node-headers: cannot run ${command}: ${res.error.message}`);
  process.exit(1);
}
process.exit(res.status ?? 1);
