'use strict';
const { spawnSync } = require('node:child_process');
const { VmError } = require('./errors');

// Synchronous helpers: setup is a straight sequence of host tools, and a
// failure anywhere should stop it with the tool's own stderr in the message.
function run(cmd, args, { cwd, input, allowFail = false, inherit = false, binary = false } = {}) {
  const res = spawnSync(cmd, args, {
    cwd,
    input,
    encoding: inherit || binary ? undefined : 'utf8',
    stdio: inherit ? 'inherit' : ['pipe', 'pipe', 'pipe'],
    maxBuffer: 256 * 1024 * 1024,
  });
  if (res.error) {
    if (allowFail) return { status: -1, stdout: '', stderr: String(res.error.message) };
    throw new VmError(`cannot run ${cmd}: ${res.error.message}`, { cause: res.error });
  }
  if (res.status !== 0 && !allowFail) {
    const err = String(res.stderr || '').trim().split('\n').slice(-10).join('\n');
    throw new VmError(`${cmd} ${args.join(' ')} failed (exit ${res.status})${err ? `:\n${err}` : ''}`);
  }
  return { status: res.status, stdout: res.stdout || '', stderr: res.stderr || '' };
}

function which(cmd) {
  const res = spawnSync('sh', ['-c', `command -v "$1"`, 'sh', cmd], { encoding: 'utf8' });
  return res.status === 0 ? res.stdout.trim() : null;
}

module.exports = { run, which };
