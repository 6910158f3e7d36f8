#!/usr/bin/env node
// The fresh-machine check: the README's two commands, run exactly as written
// by a newcomer on a clean Debian 13 machine. A minimal Debian root is made
// with debootstrap (tools/vm/lib/debian-root.js: nothing of this machine's
// in it: no Node.js, no pnpm, no QEMU, no caches, no node_modules), a fresh
// clone of the commit is put in it, and inside it, as root,
//   bash tools/scripts/bootstrap.sh demo
//   bash tools/scripts/bootstrap.sh test
// run one after the other. The only things carried in are what any machine
// on this network has: the extra certificate authorities this network needs
// (and the variables pointing at them) and DNS for the length of the run.
//
// Results: .cache/test-results/fresh-machine.tap (one test per command,
// counted by summarize-tests.js), the inner run's own summary lines on the
// console, and .cache/fresh-machine/report.json (times, disk use).
//
// usage: node tools/scripts/fresh-machine-check.js [--commit REF] [--with-changes] [--only demo|test] [-- COMMAND...]
//   -- COMMAND...   the commands to run (default: the README's two); each must appear in README.md as written
//   --with-changes  apply the working tree's uncommitted changes to tracked files on top of the clone
//                   (to see the check fail when a set-up step is removed, without committing that)
//   VFIO_FRESH_TIMEOUT  seconds each command may take (default 3000)
'use strict';
const { spawn, spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const roots = require('../vm/lib/debian-root');

const repo = path.resolve(__dirname, '../..');
const workDir = path.join(repo, '.cache', 'fresh-machine');
const rootDir = path.join(workDir, 'root');
const cloneInRoot = '/root/vfio';
const results = path.join(repo, '.cache', 'test-results');
const log = (m) => console.log(`fresh-machine: ${m}`);

/** The README's two commands, checked here by default. */
const README_COMMANDS = ['bash tools/scripts/bootstrap.sh demo', 'bash tools/scripts/bootstrap.sh test'];

function parseArgs(argv) {
  const opts = { commit: 'HEAD', withChanges: false, only: null, commands: README_COMMANDS };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--') {
      opts.commands = argv.slice(i + 1);
      break;
    }
    if (argv[i] === '--commit') opts.commit = argv[++i];
    else if (argv[i] === '--with-changes') opts.withChanges = true;
    else if (argv[i] === '--only') opts.only = argv[++i];
    else throw new Error(`unknown option ${argv[i]}`);
  }
  if (opts.only && !['demo', 'test'].includes(opts.only)) throw new Error('--only takes demo or test');
  // A caller (.ci/run) names the commands it runs; each must be the README's, word for word.
  const readme = fs.readFileSync(path.join(repo, 'README.md'), 'utf8');
  const notInReadme = opts.commands.filter((c) => !readme.includes(c));
  if (opts.commands.length === 0 || notInReadme.length > 0) {
    throw new Error(`the commands to check must be the README's, as written: ${notInReadme.map((c) => `\`${c}\``).join(', ') || 'none given'}`);
  }
  return opts;
}

const git = (...args) => execFileSync('git', args, { cwd: repo, encoding: 'utf8' }).trim();

/** Clones the commit into the root, as a newcomer's `git clone` would leave it. */
function placeClone(commit, withChanges) {
  const sha = git('rev-parse', '--verify', `${commit}^{commit}`);
  const dest = path.join(rootDir, cloneInRoot);
  execFileSync('git', ['clone', '--quiet', '--no-hardlinks', repo, dest]);
  execFileSync('git', ['-C', dest, 'checkout', '--quiet', '--detach', sha]);
  if (withChanges) {
    const diff = execFileSync('git', ['diff', '--binary', 'HEAD'], { cwd: repo });
    if (diff.length) execFileSync('git', ['-C', dest, 'apply', '--whitespace=nowarn'], { input: diff });
    log(`applied ${diff.length} bytes of uncommitted changes`);
  }
  return sha;
}

/** Runs one README command in the root; its output streams here and into a log. */
function runInRoot(command, env, timeoutS) {
  const logPath = path.join(workDir, `${command.split(' ').pop()}.log`);
  const out = fs.openSync(logPath, 'w');
  const argv = roots.chrootArgv(rootDir, ['bash', '-c', command], { env, cwd: cloneInRoot });
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn('timeout', ['-s', 'KILL', String(timeoutS), ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    const onData = (stream) => (chunk) => {
      fs.writeSync(out, chunk);
      stream.write(chunk);
    };
    child.stdout.on('data', onData(process.stdout));
    child.stderr.on('data', onData(process.stderr));
    child.on('close', (code, signal) => {
      fs.closeSync(out);
      resolve({ command, code: code ?? 128, signal, seconds: (Date.now() - started) / 1000, log: logPath });
    });
  });
}

/** The inner run's per-file summary lines (what `bootstrap.sh test` counted inside the root). */
function innerSummary() {
  const dir = path.join(rootDir, cloneInRoot, '.cache/test-results');
  if (!fs.existsSync(dir)) return { lines: ['(no test results inside the root)'], total: null };
  const r = spawnSync(process.execPath, [path.join(repo, 'tools/scripts/summarize-tests.js'), dir], { encoding: 'utf8' });
  const lines = r.stdout.trim().split('\n');
  return { lines, total: lines[lines.length - 1] };
}

const du = (dir) => Number(execFileSync('du', ['-sxm', dir], { encoding: 'utf8' }).split('\t')[0]);

function writeTap(outcomes, inner) {
  const lines = ['TAP version 13'];
  outcomes.forEach((o, i) => {
    const ok = o.code === 0;
    lines.push(`${ok ? 'ok' : 'not ok'} ${i + 1} - fresh Debian 13 root: \`${o.command}\` exits 0 (exit ${o.code}, ${o.seconds.toFixed(0)} s)`);
    if (o.command.endsWith('test') && inner.total) lines.push(`# inside: ${inner.total}`);
    if (!ok) lines.push(`# log: ${o.log}`);
  });
  const pass = outcomes.filter((o) => o.code === 0).length;
  lines.push(`1..${outcomes.length}`, `# tests ${outcomes.length}`, `# pass ${pass}`, `# fail ${outcomes.length - pass}`);
  fs.mkdirSync(results, { recursive: true });
  fs.writeFileSync(path.join(results, 'fresh-machine.tap'), lines.join('\n') + '\n');
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const timeoutS = Number(process.env.VFIO_FRESH_TIMEOUT || 3000);
  fs.mkdirSync(workDir, { recursive: true });
  const t0 = Date.now();
  log(`a clean Debian 13 root in ${path.relative(repo, rootDir)}`);
  roots.makeRoot({ suite: 'trixie', dir: rootDir, log });
  const env = roots.carryTrust(rootDir);
  const sha = placeClone(opts.commit, opts.withChanges);
  log(`clone of ${sha.slice(0, 12)} at ${cloneInRoot}; root ready in ${((Date.now() - t0) / 1000).toFixed(0)} s, ${du(rootDir)} MiB`);

  const commands = opts.commands.filter((c) => !opts.only || c.endsWith(opts.only));
  const outcomes = [];
  await roots.withMounts(rootDir, async () => {
    for (const command of commands) {
      log(`running \`${command}\` in the root`);
      const o = await runInRoot(command, env, timeoutS);
      log(`\`${command}\` exited ${o.code}${o.signal ? ` (${o.signal})` : ''} after ${o.seconds.toFixed(0)} s`);
      outcomes.push(o);
    }
  });
  const inner = innerSummary();
  const report = {
    commit: sha,
    withChanges: opts.withChanges,
    at: new Date().toISOString(),
    commands: outcomes.map(({ command, code, seconds }) => ({ command, code, seconds: Math.round(seconds) })),
    rootMiB: du(rootDir),
    cacheMiB: fs.existsSync(path.join(rootDir, cloneInRoot, '.cache')) ? du(path.join(rootDir, cloneInRoot, '.cache')) : 0,
    inner: inner.lines,
    totalSeconds: Math.round((Date.now() - t0) / 1000),
  };
  fs.writeFileSync(path.join(workDir, 'report.json'), JSON.stringify(report, null, 2) + '\n');
  writeTap(outcomes, inner);
  log('inside the root:');
  for (const l of inner.lines) log(`  ${l}`);
  for (const o of outcomes) log(`${o.code === 0 ? 'PASS' : 'FAIL'} \`${o.command}\` (${o.seconds.toFixed(0)} s)`);
  log(`root ${report.rootMiB} MiB after the run (of which the clone's .cache ${report.cacheMiB} MiB); ${report.totalSeconds} s in all`);
  return outcomes.every((o) => o.code === 0) ? 0 : 1;
}

main().then((code) => process.exit(code), (err) => {
  console.error(`fresh-machine: ${err.message}`);
  writeTap([{ command: 'set-up of the clean root', code: 1, seconds: 0, log: err.message }], { total: null });
  process.exit(1);
});
