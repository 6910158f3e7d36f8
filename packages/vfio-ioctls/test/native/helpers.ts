import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The package root, where node-gyp-build finds build/ or prebuilds/. */
export const packageRoot = path.resolve(__dirname, '..', '..');

const dirs: string[] = [];

/** A fresh temp directory, removed by `removeTempDirs`. */
export function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-native-'));
  dirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** A temp file holding `content` (or `size` zero bytes). */
export function tempFile(content: Uint8Array | number): string {
  const file = path.join(tempDir(), 'data');
  fs.writeFileSync(file, typeof content === 'number' ? Buffer.alloc(content) : content);
  return file;
}

/** The open flags of one of our fds, from /proc/self/fdinfo (octal there). */
export function fdFlags(fd: number): number {
  const info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const match = /^flags:\s+([0-7]+)$/m.exec(info);
  if (!match) throw new Error(`no flags line in fdinfo of ${fd}`);
  return parseInt(match[1], 8);
}

/** Whether `fd` is open in this process. */
export function isOpen(fd: number): boolean {
  return fs.existsSync(`/proc/self/fd/${fd}`);
}

/** Resolves once `predicate` holds, turning the event loop meanwhile. */
export async function until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Lets the loop run a few turns, so that a pending poll callback would have fired. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 10));
}

/** Runs `fn` and returns what it threw (fails if it did not throw). */
export function thrown(fn: () => unknown): Record<string, unknown> & Error {
  try {
    fn();
  } catch (error) {
    return error as Record<string, unknown> & Error;
  }
  throw new Error('expected the call to throw');
}
