import { spawnSync } from 'node:child_process';
import { packageRoot } from './helpers';

/**
 * Runs `body` (plain JS) in a fresh node process, with `addon` already loaded
 * from this package (build/ or prebuilds/, as native.ts would) and `root` set.
 */
export function runChild(body: string, nodeArgs: string[] = [], timeoutMs = 20000) {
  const script = `
    'use strict';
    const root = ${JSON.stringify(packageRoot)};
    const addon = require(require.resolve('node-gyp-build', { paths: [root] }))(root);
    ${body}
  `;
  const result = spawnSync(process.execPath, [...nodeArgs, '-e', script], {
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  return { status: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}
