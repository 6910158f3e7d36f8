'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { run } = require('./exec');
const paths = require('./paths');

// Small C self-checks (tools/vm/check/*.c) compiled on the host, once per
// source version, and run in the guest: the guest chroots into the host's
// root, so the host's binary runs there as is (and the TCG guest would take
// far longer to compile it).

const checkDir = path.join(__dirname, '..', 'check');

/** Path of the compiled check `name` (check/<name>.c), built if needed. */
function buildCheck(name) {
  const src = path.join(checkDir, `${name}.c`);
  const key = crypto.createHash('sha256').update(fs.readFileSync(src)).digest('hex').slice(0, 12);
  const out = path.join(paths.cacheDir, 'bin', `${name}-${key}`);
  if (!fs.existsSync(out)) {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    const tmp = `${out}.${process.pid}.tmp`;
    run('gcc', ['-O2', '-Wall', '-Werror', '-o', tmp, src]);
    fs.renameSync(tmp, out);
  }
  return out;
}

module.exports = { buildCheck };
