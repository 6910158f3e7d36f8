'use strict';
// Quick checks of the pure parts (no guest is booted): `pnpm test` here stays
// fast on machines without the test bed. The real proof is `vm.js run`.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { commandLine, parseEnv, shQuote, hostTmpTops } = require('../lib/job');
const { qemuArgs } = require('../lib/qemu');
const { jobOutput } = require('../lib/run');
const { PROFILES } = require('../lib/profiles');
const { MATRIX, KERNELS, BACKENDS, getBoot, entryName } = require('../lib/kernels');
const { fragmentChain, wantedConfig, cacheKey, checkConfig, FRAGMENTS_DIR } = require('../lib/custom-kernel');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const tests = {
  'a single argument is a shell command line'() {
    assert.equal(commandLine(['ls -l; echo $X']), 'ls -l; echo $X');
  },
  'several arguments are quoted word by word'() {
    assert.equal(commandLine(['node', '-e', "console.log('a b')"]), `'node' '-e' 'console.log('\\''a b'\\'')'`);
  },
  'shQuote survives the shell'() {
    const { execFileSync } = require('node:child_process');
    const nasty = `it's "$HOME" \`x\` \\ done`;
    assert.equal(execFileSync('sh', ['-c', `printf %s ${shQuote(nasty)}`], { encoding: 'utf8' }), nasty);
  },
  'env: NAME=VALUE sets, bare NAME passes through, bad names throw'() {
    process.env.VM_SELFCHECK = 'yes';
    assert.deepEqual(parseEnv(['A=1=2', 'VM_SELFCHECK', 'UNSET_VM_VAR']), { A: '1=2', VM_SELFCHECK: 'yes' });
    assert.deepEqual(parseEnv({ B: 3 }), { B: '3' });
    assert.throws(() => parseEnv(['1X=2']), /bad environment variable name/);
  },
  'profiles: unique roles and unique root-bus slots per profile'() {
    for (const [name, p] of Object.entries(PROFILES)) {
      const roles = p.devices.map((d) => d.role);
      assert.equal(new Set(roles).size, roles.length, `${name}: duplicate role`);
      const paths = p.devices.map((d) => d.slotPath);
      assert.equal(new Set(paths).size, paths.length, `${name}: duplicate slot path`);
      for (const d of p.devices) assert.match(d.slotPath, /^[0-9a-f]{2}\.[0-7](\/[0-9a-f]{2}\.[0-7])*$/);
    }
  },
  'qemu: TCG without KVM, split irqchip with KVM, shares and devices present'() {
    const boot = getBoot('debian-6.1', 'iommu');
    const base = { kernel: '/k', initrd: '/i', runDir: '/r,x', profile: { devices: PROFILES.suite.devices }, boot };
    const tcg = qemuArgs({ ...base, kvm: false });
    assert.equal(tcg[tcg.indexOf('-accel') + 1], 'tcg,thread=single');
    assert.equal(tcg[tcg.indexOf('-machine') + 1], 'q35');
    assert.ok(tcg.includes('intel-iommu,intremap=on'));
    assert.ok(tcg.includes('-nodefaults'));
    assert.ok(tcg.some((a) => a.includes('path=/r,,x,')), 'commas in paths are escaped');
    assert.ok(!tcg.some((a) => a.includes('mount_tag=results')));
    const kvm = qemuArgs({ ...base, kvm: true, resultsDir: '/res' });
    assert.equal(kvm[kvm.indexOf('-accel') + 1], 'kvm');
    assert.equal(kvm[kvm.indexOf('-machine') + 1], 'q35,kernel-irqchip=split');
    assert.ok(kvm.some((a) => a.includes('mount_tag=results')));
    assert.equal(kvm.filter((a) => a.startsWith('nvme,')).length, 1);
  },
  'qemu: a no-IOMMU boot has no IOMMU device and asks vfio for no-IOMMU mode; extra arguments come last'() {
    const boot = getBoot('vfio-7.3', 'noiommu');
    const args = qemuArgs({ kernel: '/k', initrd: '/i', runDir: '/r', profile: { devices: [] }, boot, extra: ['-device', 'igb'], kvm: false });
    assert.ok(!args.some((a) => a.startsWith('intel-iommu')));
    assert.match(args[args.indexOf('-append') + 1], /vfio\.enable_unsafe_noiommu_mode=1/);
    assert.doesNotMatch(args[args.indexOf('-append') + 1], /intel_iommu=on/);
    assert.deepEqual(args.slice(-2), ['-device', 'igb']);
  },
  'kernels: every matrix entry is a kernel and a boot it has; capabilities follow the boot'() {
    for (const e of MATRIX) assert.ok(getBoot(e.kernel, e.boot), entryName(e));
    assert.deepEqual(MATRIX.map(entryName), ['debian-6.1', 'debian-7.3', 'vfio-7.3', 'vfio-7.3/noiommu', 'vfio-7.3+sriov', 'vfio-7.3/nointremap', 'vfio-7.3+bigbar', 'compat-7.3']);
    for (const e of MATRIX) assert.ok(PROFILES[e.profile], `${entryName(e)}: profile ${e.profile}`);
    for (const e of MATRIX.filter((m) => m.backends)) {
      assert.ok(e.backends.length > 0 && e.backends.every((x) => BACKENDS.includes(x)), `${entryName(e)}: backends ${e.backends}`);
    }
    assert.throws(() => getBoot('debian-6.1', 'noiommu'), /has no "noiommu" boot/);
    assert.throws(() => getBoot('debian-9.9'), /unknown kernel/);
    assert.deepEqual(getBoot('vfio-7.3', 'noiommu').caps, ['cdev', 'iommufd', 'kvm', 'mtty', 'noiommu']);
    assert.deepEqual(getBoot('vfio-7.3', 'iommu').caps, [...KERNELS['vfio-7.3'].caps].sort());
    assert.ok(!getBoot('debian-7.3', 'nointremap').caps.includes('iommu'));
  },
  'kernels: a custom kernel comes after the kernel its fragment builds on, and compat-7.3 has both container capabilities'() {
    const names = Object.keys(KERNELS);
    for (const [name, k] of Object.entries(KERNELS).filter(([, x]) => x.source.custom)) {
      const chain = fragmentChain(k.source.custom, name.split('-').pop(), FRAGMENTS_DIR);
      for (const base of chain.slice(0, -1)) assert.ok(names.indexOf(base.name) < names.indexOf(name), `${base.name} before ${name}`);
    }
    assert.deepEqual(getBoot('compat-7.3', 'iommu').caps, ['cdev', 'compat', 'iommu', 'iommufd', 'kvm', 'mtty']);
  },
  'custom kernels: compat-7.3 is vfio-7.3 merged with its overrides'() {
    const chain = fragmentChain('compat-7.3', '7.3', FRAGMENTS_DIR);
    assert.deepEqual(chain.map((f) => f.name), ['vfio-7.3', 'compat-7.3']);
    const base = wantedConfig(chain.slice(0, 1));
    const merged = wantedConfig(chain);
    assert.equal(base.get('VFIO_CONTAINER'), 'y');
    assert.equal(base.get('IOMMUFD_VFIO_CONTAINER'), 'n');
    assert.equal(merged.get('VFIO_CONTAINER'), 'n');
    assert.equal(merged.get('VFIO_IOMMU_TYPE1'), 'n');
    assert.equal(merged.get('IOMMUFD_VFIO_CONTAINER'), 'y');
    // Everything else is the base's.
    const changed = [...merged].filter(([sym, v]) => base.get(sym) !== v).map(([sym]) => sym).sort();
    assert.deepEqual(changed, ['IOMMUFD_VFIO_CONTAINER', 'VFIO_CONTAINER', 'VFIO_IOMMU_TYPE1']);
    assert.equal(merged.size, base.size);
    // checkConfig holds a .config to the merged wishes, not to one fragment's.
    const config = [...merged].map(([sym, v]) => (v === 'n' ? `# CONFIG_${sym} is not set` : `CONFIG_${sym}=${v}`)).join('\n');
    checkConfig(merged, config, ['x']);
    assert.throws(() => checkConfig(merged, config.replace('CONFIG_IOMMUFD_VFIO_CONTAINER=y', ''), ['a', 'b']),
      /a \+ b asks for[^]*CONFIG_IOMMUFD_VFIO_CONTAINER: asked y, got n/);
  },
  'custom kernels: the cache key covers every fragment of the chain; a lone fragment keys as it always did'() {
    const [base, variant] = fragmentChain('compat-7.3', '7.3', FRAGMENTS_DIR);
    // vfio-7.3's key before variants existed: its text, the source version, RECIPE 1.
    const old = crypto.createHash('sha256').update(base.text).update('\0').update('v1').update('\0').update('1').digest('hex').slice(0, 16);
    assert.equal(cacheKey([base], 'v1'), old);
    const key = cacheKey([base, variant], 'v1');
    assert.notEqual(key, old);
    assert.notEqual(cacheKey([{ ...base, text: `${base.text}#\n` }, variant], 'v1'), key);
    assert.notEqual(cacheKey([base, { ...variant, text: `${variant.text}#\n` }], 'v1'), key);
    assert.notEqual(cacheKey([base, variant], 'v2'), key);
  },
  'custom kernels: a base that is missing, of another series, or circular is refused'() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vm-fragments-'));
    try {
      const write = (name, text) => fs.writeFileSync(path.join(dir, `${name}.config`), text);
      write('a-7.3', '# base: gone-7.3\nCONFIG_X=y\n');
      assert.throws(() => fragmentChain('a-7.3', '7.3', dir), /a-7\.3\.config names base gone-7\.3, which has no fragment/);
      write('b-7.3', '# base: c-6.1\n');
      assert.throws(() => fragmentChain('b-7.3', '7.3', dir), /builds on c-6\.1, not a kernel of the same source \(7\.3\)/);
      write('d-7.3', '# base: e-7.3\n');
      write('e-7.3', '# base: d-7.3\n');
      assert.throws(() => fragmentChain('d-7.3', '7.3', dir), /name each other as base: d-7\.3 -> e-7\.3 -> d-7\.3/);
      assert.throws(() => fragmentChain('nope-7.3', '7.3', dir), /no config fragment for kernel nope-7\.3/);
      // "# base:" counts on the first line only.
      write('f-7.3', '# about\n# base: gone-7.3\n');
      assert.deepEqual(fragmentChain('f-7.3', '7.3', dir).map((f) => f.name), ['f-7.3']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
  'folders under the host /tmp are carried into the guest by their top folder'() {
    assert.deepEqual(hostTmpTops(['/tmp/ci/packages/x', '/tmp/ci/.cache/vm/runs/1', '/work/main', undefined, '/tmpfoo/a']), ['/tmp/ci']);
    assert.deepEqual(hostTmpTops(['/tmp', '/tmp/../etc']), []);
    assert.throws(() => hostTmpTops(['/tmp/a b/c']), /white space/);
  },
  'jobOutput keeps only what the job printed'() {
    const console = '[  1.0] boot\r\n@@vm-start@@\r\nhello\r\nworld\r\n@@vm-exit 3@@\r\n[  2.0] reboot\r\n';
    assert.equal(jobOutput(console), 'hello\nworld\n');
    assert.equal(jobOutput('no marker'), '');
  },
};

// Each check is a node:test test, so the runner's own counts reach CI.
for (const [name, fn] of Object.entries(tests)) test(name, fn);
