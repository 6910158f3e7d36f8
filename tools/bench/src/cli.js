#!/usr/bin/env node
'use strict';
// `pnpm --filter bench run bench`: the host parts, then one guest boot for
// the guest parts, then the table on the console, the JSON file and the
// README section. See README.md.
const fs = require('node:fs');
const path = require('node:path');
const { parseOptions } = require('./options');
const cprog = require('./c-programs');
const { runHost } = require('./host');
const { runGuestParts } = require('./guest-boot');
const { describeHere, sourceState } = require('./machine');
const { consoleTable, missed, soakLines } = require('./report');
const { renderReadmeSection } = require('./readme-section');
const { updateReadme } = require('./readme');
const { RESULTS_JSON, CACHE_DIR, REPO_ROOT } = require('./paths');
const { addonSource } = require('./addon');

const log = (m) => process.stderr.write(`bench: ${m}\n`);

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  const started = new Date();
  log('compiling the C reference programs (gcc -O2)');
  cprog.buildAll();
  if (opts.guest && opts.soak) opts.mallocStats = cprog.buildNodeModule('malloc_stats', log);
  if (opts.guest && opts.ops) opts.pkruProbe = cprog.buildNodeModule('pkru_probe', log);

  const results = {
    schema: 1,
    date: started.toISOString(),
    command: `node tools/bench/src/cli.js ${process.argv.slice(2).join(' ')}`.trim(),
    options: { rounds: opts.rounds, samples: opts.samples, warmup: opts.warmup, soakCycles: opts.soak ? opts.soakCycles : 0 },
    source: sourceState(REPO_ROOT),
    host: describeHere(),
    guest: null,
    measurements: [],
    derived: [],
    soak: null,
  };
  if (opts.host) results.measurements.push(...(await runHost({ ...opts, log })));
  if (opts.guest) {
    log('booting the edu guest for the guest parts');
    const g = await runGuestParts(opts, log);
    results.guest = { ...g.machine, ...g.boot };
    results.measurements.push(...g.measurements);
    results.derived.push(...g.derived);
    results.soak = g.soak;
    if (g.profile) results.guestProfile = g.profile;
  }
  results.addonSource = addonSource();
  results.seconds = (Date.now() - started.getTime()) / 1000;
  results.missed = missed(results);

  const out = opts.out ?? (opts.full ? RESULTS_JSON : path.join(CACHE_DIR, 'partial.json'));
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(results, null, 1) + '\n');

  console.log(consoleTable(results));
  if (results.soak) console.log(`\nsoak (leaks):\n${soakLines(results.soak).join('\n')}`);
  if (results.guestProfile) console.log(`\nguest profile, self time:\n${results.guestProfile.map((p) => `  ${p.selfPercent}%  ${p.fn}`).join('\n')}`);
  if (results.missed.length) console.log(`\ntargets missed (analysis: tools/bench/README.md):\n  ${results.missed.join('\n  ')}`);
  console.log(`\nresults: ${out} (${results.seconds.toFixed(0)} s${results.guest ? `, guest ${results.guest.accelerator.toUpperCase()}` : ''})`);
  if (opts.full && opts.readme && out === RESULTS_JSON) {
    updateReadme(renderReadmeSection(results));
    log('README results section updated');
  }
}

main().catch((e) => {
  process.stderr.write(`bench: ${e.stack || e}\n`);
  process.exit(1);
});
