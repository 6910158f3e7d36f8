/**
 * The published packages work on a machine without a compiler: both are
 * packed (pnpm pack, which rewrites `workspace:*`), installed from the
 * tarballs alone into an empty folder (npm --offline, a fresh cache, PATH
 * holding only `node`), and used from a child node process; the `vfio`
 * command runs from the install.
 *
 * Needs the packages built first (`pnpm run build`: dist/ and prebuilds/).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ioctlsRoot = path.resolve(__dirname, '..', '..');
const bindingsRoot = path.resolve(ioctlsRoot, '..', 'vfio-bindings');
const prebuild = path.join(ioctlsRoot, 'prebuilds', `${process.platform}-${process.arch}`, 'vfio-ioctls.node');

let work: string;
let app: string;
let tarballs: Record<string, string>;
let cleanEnv: NodeJS.ProcessEnv;

/** Packs `dir` into `into`; returns the tarball's path. */
function pack(tool: 'pnpm' | 'npm', dir: string, into: string): string {
  const before = new Set(fs.readdirSync(into));
  const args = tool === 'pnpm' ? ['pack', '--pack-destination', into] : ['pack', dir, '--pack-destination', into, '--ignore-scripts'];
  execFileSync(tool, args, { cwd: dir, stdio: 'pipe' });
  const made = fs.readdirSync(into).filter((name) => !before.has(name));
  if (made.length !== 1) throw new Error(`${tool} pack in ${dir} made ${made.join(', ') || 'nothing'}`);
  return path.join(into, made[0]);
}

/** `tar -tvzf`: one {type, size, path} per entry. */
function listTarball(file: string): Array<{ type: string; size: number; path: string }> {
  return execFileSync('tar', ['-tvzf', file], { encoding: 'utf8' }).trim().split('\n').map((line) => {
    const fields = line.trim().split(/\s+/);
    return { type: fields[0][0], size: Number(fields[2]), path: fields.slice(5).join(' ') };
  });
}

/** Runs node with the stripped environment in the app folder. */
function runNode(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, args, { cwd: app, env: cleanEnv, encoding: 'utf8', timeout: 120000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

beforeAll(() => {
  const missing = [prebuild, path.join(ioctlsRoot, 'dist', 'core', 'native.js'), path.join(bindingsRoot, 'package.json')]
    .filter((file) => !fs.existsSync(file));
  if (missing.length > 0) {
    throw new Error(`build the packages first (pnpm run build); missing: ${missing.join(', ')}`);
  }

  work = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-pack-'));
  const into = path.join(work, 'tarballs');
  fs.mkdirSync(into);
  // Our two packages, and the registry packages they depend on, packed from
  // the copies pnpm installed: the install then needs no registry at all.
  const dependency = (name: string) => path.dirname(require.resolve(`${name}/package.json`, { paths: [ioctlsRoot] }));
  tarballs = {
    'vfio-bindings': pack('pnpm', bindingsRoot, into),
    'vfio-ioctls': pack('pnpm', ioctlsRoot, into),
    'node-addon-api': pack('npm', dependency('node-addon-api'), into),
    'node-gyp-build': pack('npm', dependency('node-gyp-build'), into),
  };

  // PATH holds node and sh (npm runs scripts with it) and nothing else: no
  // cc, g++, make or python, so an install that tried to compile would fail.
  const bin = path.join(work, 'bin');
  fs.mkdirSync(bin);
  fs.symlinkSync(process.execPath, path.join(bin, 'node'));
  fs.symlinkSync('/bin/sh', path.join(bin, 'sh'));
  const home = path.join(work, 'home');
  fs.mkdirSync(home);
  cleanEnv = { PATH: bin, HOME: home, npm_config_cache: path.join(work, 'npm-cache'), npm_config_update_notifier: 'false' };

  app = path.join(work, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
}, 180000);

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('the packed packages', () => {
  it('vfio-ioctls holds the prebuilt addon as a real file, the sources for a rebuild, and no build/', () => {
    const entries = listTarball(tarballs['vfio-ioctls']);
    const byPath = new Map(entries.map((entry) => [entry.path.replace(/^package\//, ''), entry]));
    const addon = byPath.get(`prebuilds/${process.platform}-${process.arch}/vfio-ioctls.node`);
    // A hard link into build/ would be stored as an empty link entry.
    expect(addon).toMatchObject({ type: '-', size: fs.statSync(prebuild).size });
    expect(addon?.size).toBeGreaterThan(10000);
    for (const file of ['binding.gyp', 'native/addon.cc', 'native/poller.cc', 'dist/core/native.js', 'package.json']) {
      expect({ file, packed: byPath.has(file) }).toEqual({ file, packed: true });
    }
    expect(entries.filter((entry) => /^package\/(build|test|src)\//.test(entry.path))).toEqual([]);
  });

  it('vfio-ioctls ships the vfio command as its bin, under both names, with a node shebang', () => {
    const manifest = JSON.parse(execFileSync('tar', ['-xzOf', tarballs['vfio-ioctls'], 'package/package.json'], { encoding: 'utf8' }));
    expect(manifest.bin).toEqual({ vfio: 'dist/cli/main.js', 'vfio-ioctls': 'dist/cli/main.js' });
    const main = execFileSync('tar', ['-xzOf', tarballs['vfio-ioctls'], 'package/dist/cli/main.js'], { encoding: 'utf8' });
    expect(main.split('\n')[0]).toBe('#!/usr/bin/env node');
  });

  it('vfio-ioctls depends on the published version of vfio-bindings, not workspace:*', () => {
    const manifest = JSON.parse(execFileSync('tar', ['-xzOf', tarballs['vfio-ioctls'], 'package/package.json'], { encoding: 'utf8' }));
    const bindingsVersion = JSON.parse(fs.readFileSync(path.join(bindingsRoot, 'package.json'), 'utf8')).version;
    expect(manifest.dependencies['vfio-bindings']).toBe(bindingsVersion);
    expect(manifest.scripts.install).toBe('node-gyp-build');
  });

  it('install offline from the tarballs alone, with no compiler on PATH', () => {
    const npmCli = fs.realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
    const result = runNode([npmCli, 'install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts',
      ...Object.values(tarballs)]);
    expect({ status: result.status, stderr: result.status === 0 ? '' : result.stderr }).toEqual({ status: 0, stderr: '' });
    const installed = path.join(app, 'node_modules', 'vfio-ioctls');
    expect(fs.existsSync(path.join(installed, 'prebuilds'))).toBe(true);
    // node-gyp-build's install script found the prebuild and compiled nothing.
    expect(fs.existsSync(path.join(installed, 'build'))).toBe(false);
  });

  it('the prebuilt addon loads in a fresh node process and an eventfd round trip works', () => {
    const script = `
      const path = require('node:path');
      const root = path.dirname(require.resolve('vfio-ioctls/package.json'));
      const loaded = require('node-gyp-build').resolve(root);
      // dist/core/native.js is internal (not in "exports"), so by path.
      const { nativeBackend, EFD_SEMAPHORE } = require(path.join(root, 'dist', 'core', 'native.js'));
      const fd = nativeBackend.eventfd(0, 0);
      nativeBackend.eventfdWrite(fd, 41n);
      nativeBackend.eventfdWrite(fd, 1n);
      const count = nativeBackend.eventfdRead(fd);
      let again;
      try { nativeBackend.eventfdRead(fd); } catch (error) { again = error.name + ' ' + error.code; }
      nativeBackend.close(fd);
      console.log(JSON.stringify({ loaded: path.relative(root, loaded), count: String(count), again, EFD_SEMAPHORE }));
    `;
    const result = runNode(['-e', script]);
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({
      loaded: path.join('prebuilds', `${process.platform}-${process.arch}`, 'vfio-ioctls.node'),
      count: '42',
      again: 'VfioError EAGAIN',
      EFD_SEMAPHORE: 1,
    });
  });

  it('the installed vfio command runs: vfio --help, vfio --version, npx vfio-ioctls --help', () => {
    const version = JSON.parse(fs.readFileSync(path.join(ioctlsRoot, 'package.json'), 'utf8')).version;
    // The bin link npm made, run as a shell would: through its shebang, with `node` found on PATH.
    const bin = (name: string, args: string[]) => spawnSync(path.join(app, 'node_modules', '.bin', name), args, { cwd: app, env: cleanEnv, encoding: 'utf8', timeout: 120000 });
    const help = bin('vfio', ['--help']);
    expect({ status: help.status, stderr: help.stderr }).toEqual({ status: 0, stderr: '' });
    expect(help.stdout).toMatch(/^usage: vfio <command>/);
    for (const command of ['list', 'info', 'bind', 'unbind']) expect(help.stdout).toMatch(new RegExp(`^ {2}${command} `, 'm'));
    expect(bin('vfio', ['--version'])).toMatchObject({ status: 0, stdout: `vfio-ioctls ${version}\n`, stderr: '' });
    expect(bin('vfio', ['bogus'])).toMatchObject({ status: 2, stdout: '', stderr: "vfio: unknown command 'bogus' (see 'vfio help')\n" });
    // npx (npm exec) finds the package's bin named after the package.
    const npmCli = fs.realpathSync(execFileSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
    const npx = runNode([npmCli, 'exec', '--offline', '--no', '--', 'vfio-ioctls', '--help']);
    expect({ status: npx.status, stderr: npx.stderr }).toEqual({ status: 0, stderr: '' });
    expect(npx.stdout).toMatch(/^usage: vfio <command>/);
  });

  it('vfio-ioctls/unsafe resolves from the install and runs on the prebuilt addon; the main entry has none of it', () => {
    const result = runNode(['-e', `
      const unsafe = require('vfio-ioctls/unsafe');
      const ioctls = require('vfio-ioctls');
      const fd = unsafe.eventfd(1);
      unsafe.eventfdWrite(fd, 2n);
      const count = unsafe.eventfdRead(fd);
      unsafe.close(fd);
      const buffer = ioctls.DmaBuffer.alloc(4096);
      const aligned = unsafe.addressOf(buffer) % 4096n === 0n;
      buffer.close();
      console.log(JSON.stringify({ count: String(count), aligned, inMain: ['ioctl', 'mmap', 'addressOf'].filter((name) => name in ioctls) }));
    `]);
    expect(result).toMatchObject({ status: 0, stderr: '' });
    expect(JSON.parse(result.stdout)).toEqual({ count: '3', aligned: true, inMain: [] });
  });

  it('both package entry points load', () => {
    const result = runNode(['-e', `
      const bindings = require('vfio-bindings');
      const ioctls = require('vfio-ioctls');
      console.log(typeof bindings + ' ' + typeof ioctls);
    `]);
    expect(result).toMatchObject({ status: 0, stdout: 'object object\n', stderr: '' });
  });
});
