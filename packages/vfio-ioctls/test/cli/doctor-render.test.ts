/** `vfio doctor`'s text and JSON output, its schema, and the --memory size parser. */
import { DOCTOR_CHECK_IDS, doctorDocument, doctorSchema, parseSize, renderDoctorText, runDoctor, type DoctorStyle } from '../../src/cli/doctor';
import { validate } from '../../src/cli/schemas/json-schema';
import { EDU, machine } from './doctor-fixtures/machine';

const tags: DoctorStyle = (format, text) => `<${format}>${text}</${format}>`;

describe('text', () => {
  test('PASS / WARN / FAIL, ids aligned, the fix under its finding, the counts last; colours through the style given', () => {
    const m = machine({ iommufd: false, memlock: '65536' });
    const report = runDoctor({ ...m.options, memory: 1n << 20n });
    const text = renderDoctorText(report);
    const lines = text.split('\n');
    const width = Math.max(...report.findings.map((f) => f.id.length));
    expect(lines[0]).toBe(`PASS  ${'iommu.enabled'.padEnd(width)}  IOMMU on: dmar0 (Intel VT-d, ACPI DMAR)`);
    const memlock = lines.findIndex((l) => l.startsWith('FAIL  memory.memlock'));
    expect(lines[memlock]).toBe(`FAIL  ${'memory.memlock'.padEnd(width)}  RLIMIT_MEMLOCK is 64 KiB, but mapping 1 MiB for DMA pins 1 MiB (root is exempt on the legacy container only, not on iommufd)`);
    expect(lines[memlock + 1]).toBe(`${' '.repeat(width + 8)}fix: raise it to at least 1024 KiB: ulimit -l 1024 (or LimitMEMLOCK= in a systemd unit, memlock in /etc/security/limits.conf)`);
    expect(lines.filter((l) => /^(PASS|WARN|FAIL) /.test(l))).toHaveLength(report.findings.length);
    expect(lines.filter((l) => l.trimStart().startsWith('fix: '))).toHaveLength(report.findings.filter((f) => f.fix).length);
    expect(text.endsWith(`\n\n${report.counts.pass} passed, ${report.counts.warn} warnings, 1 failed\n`)).toBe(true);

    const styled = renderDoctorText(report, tags).split('\n');
    expect(styled[0]).toMatch(/^<green>PASS<\/green>  iommu.enabled/);
    expect(styled[memlock]).toMatch(/^<red>FAIL<\/red>  memory.memlock/);
    expect(styled[memlock + 1]).toMatch(/^ +<cyan>fix:<\/cyan> raise it/);
    expect(styled.find((l) => l.startsWith('<yellow>WARN</yellow>  iommufd.available'))).toBeDefined();
    expect(styled[styled.length - 2]).toMatch(/^<bold>\d+ passed, \d+ warnings, 1 failed<\/bold>$/);
  });

  test('with a device, the last line names it', () => {
    const m = machine();
    const text = renderDoctorText(runDoctor({ ...m.options, address: EDU }));
    expect(text).toMatch(new RegExp(`\\n${EDU}: \\d+ passed, 2 warnings, 0 failed\\n$`));
  });
});

describe('JSON', () => {
  test('the document is plain JSON: address, ok, counts, findings', () => {
    const m = machine({ vendor: 'none' });
    const doc = doctorDocument(runDoctor({ ...m.options, address: EDU, memory: 4096n }));
    expect(JSON.parse(JSON.stringify(doc))).toEqual(doc);
    expect(doc).toMatchObject({ address: EDU, ok: false, counts: { fail: expect.any(Number) } });
    expect(doc.findings.find((f) => f.id === 'iommu.enabled')).toEqual({
      id: 'iommu.enabled', status: 'fail', summary: expect.any(String), fix: expect.any(String), details: { units: [], acpiTable: null },
    });
    expect(doc.findings.find((f) => f.id === 'memory.memlock')!.details).toEqual({ limitBytes: null, memoryBytes: 4096 });
    const machineOnly = doctorDocument(runDoctor(m.options));
    expect(machineOnly.address).toBeNull();
  });

  test('the document conforms to the schema in every state tried; the schema rejects broken ones', () => {
    const healthy = machine({ hugepages2M: [512, 512] });
    const documents = [
      doctorDocument(runDoctor(healthy.options)),
      doctorDocument(runDoctor({ ...healthy.options, address: EDU, memory: 1n << 20n })),
      doctorDocument(runDoctor({ ...healthy.options, address: '0000:00:1f.0' })),
      doctorDocument(runDoctor({ ...machine({ vendor: 'none', noiommu: true }).options, address: EDU, uid: 1000 })),
      doctorDocument(runDoctor({ ...machine({ intremap: false, memlock: '4096', iommufd: false }).options, address: EDU, memory: 1n << 30n })),
    ];
    expect(documents.map((d) => d.ok)).toEqual([true, true, false, false, false]);
    for (const document of documents) expect(validate(doctorSchema, JSON.parse(JSON.stringify(document)))).toEqual([]);

    const [good] = documents as unknown as Record<string, unknown>[];
    expect(validate(doctorSchema, { ...good, findings: [{ id: 'iommu.typo', status: 'pass', summary: 'x' }] })).toEqual([
      `$.findings[0].id: "iommu.typo" is not one of ${DOCTOR_CHECK_IDS.map((id) => JSON.stringify(id)).join(', ')}`,
    ]);
    expect(validate(doctorSchema, { ...good, findings: [{ id: 'iommu.enabled', status: 'ok', summary: '' }] })).toEqual([
      '$.findings[0].status: "ok" is not one of "pass", "warn", "fail"',
      '$.findings[0].summary: shorter than 1 characters',
    ]);
    expect(validate(doctorSchema, { ...good, address: '00:03.0' })).not.toEqual([]);
    expect(validate(doctorSchema, { ...good, counts: { pass: 1, warn: 0 } })).toEqual(["$.counts: missing required property 'fail'"]);
  });

  test('every check id, in report order', () => {
    expect(DOCTOR_CHECK_IDS).toEqual([
      'iommu.enabled', 'iommu.intremap', 'iommu.domain',
      'modules.vfio', 'modules.vfio_pci', 'modules.vfio_iommu_type1', 'vfio.noiommu', 'iommufd.available', 'vfio.cdev',
      'access.container', 'access.iommufd', 'access.devices', 'access.rawio',
      'memory.memlock', 'memory.hugepages',
      'device.present', 'device.driver', 'device.group', 'device.nodes', 'device.reset', 'device.sriov', 'device.open', 'device.hot-reset',
    ]);
  });
});

describe('sizes', () => {
  test('parseSize: bytes and binary units, case and iB/B suffixes as people write them', () => {
    expect(parseSize('4096')).toBe(4096n);
    expect(parseSize('512M')).toBe(512n << 20n);
    expect(parseSize('2GiB')).toBe(2n << 30n);
    expect(parseSize('1g')).toBe(1n << 30n);
    expect(parseSize(' 64 KB ')).toBe(64n << 10n);
    expect(parseSize('15E')).toBe(15n << 60n);
  });

  test('parseSize: anything else is a RangeError naming the option', () => {
    for (const bad of ['', '1.5G', '-1', 'G', '12X', '1 G B']) {
      expect(() => parseSize(bad, '--memory')).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringMatching(/^--memory must be a size/) }));
    }
    expect(() => parseSize('16E', '--memory')).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('below 16 EiB') }));
    expect(() => parseSize(5 as never)).toThrow(expect.objectContaining({ name: 'TypeError' }));
  });
});
