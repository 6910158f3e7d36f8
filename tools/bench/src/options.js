'use strict';
// Command-line flags of `pnpm --filter bench run bench`.
const { BACKENDS, checkOnly } = require('./guest/ops');

const USAGE = `usage: node tools/bench/src/cli.js [options]
  --host-only         only the host parts (codecs, addon FIONREAD); no guest boot
  --guest-only        only the guest parts
  --rounds N          baseline/library round pairs (default 5)
  --samples N         samples per side per round (default 10)
  --kernel NAME       guest kernel (tools/vm kernels; default vfio-7.3, the one
                      with both backends: iommufd rows are skipped elsewhere)
  --backends LIST     IOMMU backends of the ioctl and DMA rows (default
                      container,iommufd)
  --soak-backends LIST  backends of the soak runs (default container,iommufd:
                      3 container runs, ~1 h under TCG, and 1 iommufd run)
  --soak-cycles N     cycles of each soak (default 10000)
  --only LIST         only the guest rows whose id starts with one of these
                      words (e.g. mig,dirty: issue 13's migration and dirty
                      bitmap rows); host rows are not filtered (--guest-only)
  --no-soak           skip the leak/soak runs
  --profile           profile the guest's library rounds (node:inspector) and
                      list the top functions by self time
  --soak-only         in the guest, only the leak/soak runs
  --out FILE          results JSON (default: tools/bench/results/latest.json for a
                      full run, .cache/bench/partial.json otherwise)
  --no-readme         do not rewrite the results section of tools/bench/README.md
  --c-pkey            the guest's C programs of the device and nested-guest
                      rows (vfio_bench, kvm_irq_bench) first allocate one
                      protection key, as Node 20's V8 does, so both sides run
                      with the same PKRU (README: the irqfd analysis)`;

function parseOptions(argv) {
  const o = {
    host: true, guest: true, kernel: 'vfio-7.3', backends: BACKENDS, soakBackends: BACKENDS,
    rounds: 5, samples: 10, warmup: 2, soakCycles: 10000, soak: true, ops: true, profile: false, out: undefined, readme: true,
  };
  const list = (i, name) => {
    const v = (argv[i + 1] ?? '').split(',');
    if (!v.every((x) => BACKENDS.includes(x))) throw new Error(`${name} takes a comma-separated list of ${BACKENDS.join(', ')}\n${USAGE}`);
    return v;
  };
  const num = (i, name) => {
    const v = Number(argv[i + 1]);
    if (!Number.isInteger(v) || v < 1) throw new Error(`${name} needs a positive integer\n${USAGE}`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') continue; // pnpm forwards it from `pnpm run bench -- ...`
    else if (a === '--host-only') o.guest = false;
    else if (a === '--guest-only') o.host = false;
    else if (a === '--rounds') o.rounds = num(i++, a);
    else if (a === '--samples') o.samples = num(i++, a);
    else if (a === '--kernel') o.kernel = argv[++i];
    else if (a === '--backends') o.backends = list(i++, a);
    else if (a === '--soak-backends') o.soakBackends = list(i++, a);
    else if (a === '--soak-cycles') o.soakCycles = num(i++, a);
    else if (a === '--only') {
      o.only = (argv[++i] ?? '').split(',');
      checkOnly(o.only);
    } else if (a === '--no-soak') o.soak = false;
    else if (a === '--profile') o.profile = true;
    else if (a === '--soak-only') o.ops = false;
    else if (a === '--no-readme') o.readme = false;
    else if (a === '--c-pkey') o.cPkey = true;
    else if (a === '--out') o.out = argv[++i];
    else if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown option ${a}\n${USAGE}`);
  }
  o.full = o.host && o.guest && o.soak && o.ops && !o.profile && !o.only && !o.cPkey;
  return o;
}

module.exports = { parseOptions };
