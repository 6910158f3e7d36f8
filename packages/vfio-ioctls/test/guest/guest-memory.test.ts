// @guest-needs iommu suite
/**
 * Guest memory as a VMM uses it (issue #12 part 2) against the real kernel:
 * memfd memory with a part of it mapped at a chosen IOVA (the guest
 * physical address pattern) and edu DMAing exactly there, unmap by IOVA
 * range, the live-update vaddr flow on VFIO's own container (type1), and
 * 2 MiB huge pages reserved through sysfs for the test (restored after). On
 * kernels with iommufd the same runs on both backends, with
 * IOMMU_IOAS_MAP_FILE of a part of the file too.
 */
import assert from 'node:assert/strict';
import { closeSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { Container, Device, DmaBuffer, Ioas, type IommuChoice } from 'vfio-ioctls';
import { device, EDU, eduRoundTrip, GUEST_CAPS, PCI_COMMAND, PCI_COMMAND_MASTER, throwsArg, throwsVfio, trackResources } from './helpers';

const { keep, assertNoLeaks } = trackResources();

const HUGE = 2 * 1024 * 1024;
const POOL = '/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages';
const GIGA_POOL = '/sys/kernel/mm/hugepages/hugepages-1048576kB';
const BACKENDS: IommuChoice[] = GUEST_CAPS.includes('iommufd') ? ['container', 'iommufd'] : ['container'];

const reservedAtStart = Number(readFileSync(POOL, 'utf8'));
after(() => writeFileSync(POOL, `${reservedAtStart}\n`));

function openEdu(iommu: IommuChoice) {
  const dev = keep(Device.open(device('edu').address, { iommu }));
  const config = dev.config!;
  config.writeUint16(PCI_COMMAND, config.readUint16(PCI_COMMAND) | PCI_COMMAND_MASTER);
  return { dev, mmio: dev.region(0)!.map(), ctx: dev.iommu as Container | Ioas };
}

for (const iommu of BACKENDS) {
  test(`${iommu}: a part of memfd memory at a chosen IOVA; edu DMAs into exactly that part`, async () => {
    const { mmio, ctx } = openEdu(iommu);
    assert.equal(ctx.kind, iommu);
    const memory = keep(DmaBuffer.alloc(64 * 1024, { memfd: true }));
    memory.bytes.fill(0xee);
    const mapping = keep(ctx.map(memory, { offset: 16 * 1024, size: 16 * 1024, iova: 0x123_0000n }));
    assert.equal(mapping.offset, 16 * 1024);
    assert.equal(mapping.size, 0x4000n);
    await eduRoundTrip(mmio, 0x123_0000n, memory.bytes.subarray(16 * 1024, 32 * 1024));
    // Nothing outside the part moved.
    assert.ok(memory.bytes.subarray(0, 16 * 1024).every((x) => x === 0xee));
    assert.ok(memory.bytes.subarray(32 * 1024).every((x) => x === 0xee));
    throwsVfio(() => memory.close(), { code: 'ERR_VFIO_BUFFER_MAPPED' });
    throwsArg(() => ctx.map(memory, { offset: 100 }), 'RangeError', 'ERR_VFIO_MISALIGNED');
  });

  test(`${iommu}: unmapRange takes whole mappings in one call and refuses to cut one; unmapAll the rest`, () => {
    const { ctx } = openEdu(iommu);
    const memory = keep(DmaBuffer.alloc(32 * 1024, { memfd: true }));
    const a = ctx.map(memory, { offset: 0, size: 8192, iova: 0x200_0000n });
    const b = ctx.map(memory, { offset: 8192, size: 8192, iova: 0x200_2000n });
    const c = ctx.map(memory, { offset: 16384, size: 16384, iova: 0x300_0000n });
    throwsArg(() => ctx.unmapRange(0x200_1000n, 0x2000n), 'RangeError', 'ERR_VFIO_DMA_PARTIAL');
    assert.deepEqual(ctx.unmapRange(0x200_0000n, 0x4000n), [a, b]);
    assert.deepEqual([a.mapped, b.mapped, c.mapped], [false, false, true]);
    ctx.unmapAll();
    assert.equal(c.mapped, false);
    memory.close();
  });

  test(`${iommu}: 2 MiB huge pages: ENOMEM with a hint while none are reserved, then DMA into the second huge page`, async () => {
    writeFileSync(POOL, '0\n');
    const refused = throwsVfio(() => DmaBuffer.alloc(2 * HUGE, { hugePageSize: HUGE }), { code: 'ENOMEM', syscall: 'mmap' });
    assert.match(refused.hint ?? '', /options\.hugePageSize.*nr_hugepages/);
    writeFileSync(POOL, '4\n');
    assert.equal(Number(readFileSync(POOL, 'utf8')), 4, 'the guest could reserve 4 huge pages');
    const { mmio, ctx } = openEdu(iommu);
    const memory = keep(DmaBuffer.alloc(2 * HUGE, { hugePageSize: HUGE }));
    assert.equal(memory.pageSize, HUGE);
    const mapping = keep(ctx.map(memory, { offset: HUGE, size: HUGE, iova: 0x400_0000n }));
    await eduRoundTrip(mmio, mapping.iova + 0x1000n, memory.bytes.subarray(HUGE + 0x1000));
    mapping.unmap();
    memory.close();
    writeFileSync(POOL, `${reservedAtStart}\n`);
  });
}

test('1 GiB huge pages: ENODEV naming the option where the kernel has none (7.3 under TCG), ENOMEM while none are reserved', () => {
  const error = throwsVfio(() => DmaBuffer.alloc(1024 * 1024 * 1024, { hugePageSize: 1024 * 1024 * 1024 }), {});
  if (existsSync(GIGA_POOL)) assert.equal(error.code, 'ENOMEM');
  else assert.deepEqual([error.code, error.syscall], ['ENODEV', 'memfd_create']);
  assert.match(error.hint ?? '', /options\.hugePageSize/);
});

test('container (type1): the live-update flow: invalidate every vaddr, map the memfd again, give the new vaddr; edu keeps DMAing at the IOVA', async () => {
  const { mmio, ctx } = openEdu('container');
  const container = ctx as Container;
  const old = keep(DmaBuffer.alloc(16 * 1024, { memfd: true }));
  const mapping = container.map(old, { offset: 4096, size: 8192, iova: 0x500_0000n });
  container.invalidateVaddr();
  throwsVfio(() => container.invalidateVaddr(), { code: 'EINVAL' });
  const fd = old.dupMemfd();
  const fresh = keep(DmaBuffer.fromMemfd(fd));
  closeSync(fd);
  const moved = keep(container.updateVaddr(mapping, fresh, 4096));
  assert.equal(mapping.mapped, false);
  assert.equal(moved.iova, 0x500_0000n);
  old.close();
  // The same pages: DMA through the IOVA shows up in the new mapping of the file.
  await eduRoundTrip(mmio, 0x500_0000n, fresh.bytes.subarray(4096, 4096 + 8192));
  moved.unmap();
  fresh.close();
});

if (GUEST_CAPS.includes('iommufd')) {
  test('iommufd: IOMMU_IOAS_MAP_FILE of a part of the file (start = offset): edu DMAs into that part', async () => {
    const { mmio, ctx } = openEdu('iommufd');
    const ioas = ctx as Ioas;
    const memory = keep(DmaBuffer.alloc(32 * 1024, { memfd: true }));
    const mapping = keep(ioas.mapFile(memory, { offset: 8192, size: 16384, iova: 0x600_0000n }));
    await eduRoundTrip(mmio, mapping.iova, memory.bytes.subarray(8192, 8192 + 16384));
    mapping.unmap();
    memory.close();
  });
}

test('no fd or pinned page left', () => {
  assertNoLeaks();
});
