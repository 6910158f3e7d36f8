import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { packageRoot, removeTempDirs, tempDir } from './helpers';

// The addon's entry points that take sizes, offsets, fds and buffers, fed
// hostile values by fuzz-child.js in a child process: a crash there is a
// signal here, so it fails the test instead of killing the runner. Each
// seed runs twice: with every entry point under an address-space cap
// (ulimit -v, 768 MiB above a bare node's), so that a size allocDma rightly accepts (it populates what
// it maps) fails with ENOMEM rather than filling the machine's memory; and
// without allocDma and without the cap, so that file mappings of 4 GiB and
// more (address space only) reach the code that turns them into buffers.

/** The cap: what a bare node process reserves, plus 768 MiB for the fuzzer's allocations. */
function addressSpaceKib(): number {
  const probe = spawnSync(process.execPath, ['-e', 'console.log(/VmSize:\\s+(\\d+)/.exec(require("fs").readFileSync("/proc/self/status", "utf8"))[1])'], { encoding: 'utf8' });
  return Number(probe.stdout.trim()) + 768 * 1024;
}

afterAll(removeTempDirs);

interface Outcome {
  calls: number;
  returned: number;
  argErrors: number;
  syscallErrors: number;
  bad: string[];
  left: number;
}

function fuzz(seed: number, calls: number, capped: boolean): Outcome {
  const file = path.join(tempDir(), 'fuzz');
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, 17 * 2 ** 30); // sparse: offsets past 2^32 and 2^34 exist
  fs.closeSync(fd);
  const child = path.join(__dirname, 'fuzz-child.js');
  const cap = capped ? `ulimit -v ${addressSpaceKib()} && ` : '';
  const args = [child, packageRoot, String(seed), String(calls), file, ...(capped ? [] : ['no-alloc'])];
  const result = spawnSync('/bin/sh', ['-c', `${cap}exec "$@"`, 'sh', process.execPath, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  expect({ signal: result.signal, status: result.status, stderr: result.stderr }).toEqual({ signal: null, status: 0, stderr: '' });
  return JSON.parse(result.stdout) as Outcome;
}

describe('addon fuzz (hostile sizes, offsets, fds and buffers)', () => {
  it.each([
    [1, true], [1, false], [0x5eed, true], [0x5eed, false], [20261202, true], [20261202, false],
  ])('seed %d (address space capped: %s): no crash, every refusal a coded error, argument errors name the argument', (seed, capped) => {
    const outcome = fuzz(seed, 3000, capped);
    expect(outcome.bad).toEqual([]);
    expect(outcome.left).toBe(0);
    // All three outcomes occur, so the run exercised more than the argument checks.
    expect(outcome.returned).toBeGreaterThan(100);
    expect(outcome.argErrors).toBeGreaterThan(1000);
    expect(outcome.syscallErrors).toBeGreaterThan(50);
    expect(outcome.calls).toBe(outcome.returned + outcome.argErrors + outcome.syscallErrors);
  });
});
