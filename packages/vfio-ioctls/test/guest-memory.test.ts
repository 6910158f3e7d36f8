/**
 * Guest memory for VMMs (issue #12 part 2) against the fake kernel: memfd
 * and hugetlbfs memory shared by fd, subranges mapped at chosen IOVAs on
 * both backends, unmap by IOVA range with the kernel's rules, the
 * live-update vaddr flow on the legacy container, and nothing left behind
 * after a refusal.
 */
import * as b from 'vfio-bindings';
import { Container, Device, DmaBuffer, Group, Iommufd, type Ioas } from '../src';
import { addressOf } from '../src/unsafe';
import type { FakeKernelOptions } from '../src/testing';
import { EDU, EDU2, expectNothingLeft, GROUP, kernel, thrown, thrownVfio } from './helpers';

const MiB = 1024 * 1024;
const HUGE = 2 * MiB;

function attached(options?: FakeKernelOptions) {
  const k = kernel(undefined, options);
  const container = Container.open(k.env);
  const group = Group.open(GROUP, k.env);
  group.attach(container);
  return { ...k, container, group };
}

function withIoas(options?: FakeKernelOptions) {
  const k = kernel(undefined, { deviceCdevs: true, ...options });
  const iommufd = Iommufd.open(k.env);
  const ioas = iommufd.allocIoas();
  const device = Device.open(EDU, { ...k.env, ioas });
  return { ...k, iommufd, ioas, device };
}

describe('guest memory: memfd and huge pages', () => {
  test('hugePageSize backs the buffer with a hugetlbfs memfd whose pages come from the pool, and gives them back on close', () => {
    const { fake, env } = kernel(undefined, { hugePages: [{ size: HUGE, count: 4 }] });
    const buffer = DmaBuffer.alloc(2 * HUGE, { ...env, hugePageSize: HUGE });
    expect(buffer.pageSize).toBe(HUGE);
    expect(buffer.size).toBe(2 * HUGE);
    expect(fake.hugePagesFree(HUGE)).toBe(2);
    buffer.bytes[HUGE + 5] = 7;
    expect(buffer.bytes[HUGE + 5]).toBe(7);
    buffer.close();
    expect(fake.hugePagesFree(HUGE)).toBe(4);
    expectNothingLeft(fake);
  });

  test('no huge pages reserved: ENOMEM from mmap with a hint naming the option and the sysfs pool, and nothing left', () => {
    const { fake, env } = kernel();
    const error = thrownVfio(() => DmaBuffer.alloc(HUGE, { ...env, hugePageSize: HUGE }));
    expect(error).toMatchObject({ code: 'ENOMEM', syscall: 'mmap' });
    expect(error.hint).toContain('options.hugePageSize');
    expect(error.hint).toContain('/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages');
    expect(fake.hugePagesFree(HUGE)).toBe(0);
    expectNothingLeft(fake);
  });

  test('a huge page size the kernel has no pool of: ENODEV from memfd_create with a hint', () => {
    const { fake, env } = kernel(undefined, { hugePages: [{ size: HUGE, count: 8 }] });
    const error = thrownVfio(() => DmaBuffer.alloc(1024 * MiB, { ...env, hugePageSize: 1024 * MiB }));
    expect(error).toMatchObject({ code: 'ENODEV', syscall: 'memfd_create' });
    expect(error.hint).toContain('hugepages-1048576kB');
    expectNothingLeft(fake);
  });

  test('size must be whole huge pages; hugePageSize must be a power of two; memfd: false contradicts it', () => {
    const { fake, env } = kernel(undefined, { hugePages: [{ size: HUGE, count: 8 }] });
    expect(thrown(() => DmaBuffer.alloc(HUGE + 4096, { ...env, hugePageSize: HUGE }))).toMatchObject({ name: 'RangeError', code: 'ERR_VFIO_MISALIGNED', message: expect.stringContaining('options.hugePageSize') });
    expect(thrown(() => DmaBuffer.alloc(HUGE, { ...env, hugePageSize: 3 * MiB }))).toMatchObject({ name: 'RangeError', message: expect.stringContaining('options.hugePageSize') });
    expect(thrown(() => DmaBuffer.alloc(HUGE, { ...env, hugePageSize: HUGE, memfd: false }))).toMatchObject({ name: 'RangeError', message: expect.stringContaining('options.memfd') });
    expect(fake.calls.filter((c) => c.syscall === 'memfd')).toEqual([]);
  });

  test('dupMemfd + fromMemfd: a second buffer over the same file, each holding its own fd; the caller closes its own', () => {
    const { fake, env } = kernel();
    const first = DmaBuffer.alloc(3 * 4096, { ...env, memfd: true });
    first.bytes[4096] = 0x42;
    const fd = first.dupMemfd();
    const second = DmaBuffer.fromMemfd(fd, env);
    fake.close(fd);
    expect(second.size).toBe(first.size);
    expect(second.pageSize).toBe(4096);
    expect(second.bytes[4096]).toBe(0x42);
    first.close();
    second.close();
    expectNothingLeft(fake);
  });

  test('fromMemfd refuses what could fault later: a file that is not a memfd, an unsealed memfd, an empty one; the dup is closed again', () => {
    const { fake, env } = kernel();
    const anonymous = DmaBuffer.alloc(4096, env);
    expect(thrown(() => anonymous.dupMemfd())).toMatchObject({ name: 'TypeError' });
    const unsealed = fake.createMemfd(8192);
    expect(thrown(() => DmaBuffer.fromMemfd(unsealed.fd, env))).toMatchObject({ name: 'TypeError', message: expect.stringContaining('F_SEAL_SHRINK') });
    const container = Container.open(env);
    expect(thrown(() => DmaBuffer.fromMemfd(container.fd, env))).toMatchObject({ name: 'TypeError', message: expect.stringContaining('memfd') });
    const empty = fake.memfd('empty', 0);
    expect(thrown(() => DmaBuffer.fromMemfd(empty, env))).toMatchObject({ name: 'RangeError', message: expect.stringContaining('empty') });
    expect(thrown(() => DmaBuffer.fromMemfd(-1, env))).toMatchObject({ name: 'RangeError' });
    for (const fd of [unsealed.fd, empty]) fake.close(fd);
    container.close();
    anonymous.close();
    expectNothingLeft(fake);
  });

  test('fromMemfd of a hugetlbfs memfd knows its page size', () => {
    const { fake, env } = kernel(undefined, { hugePages: [{ size: HUGE, count: 2 }] });
    const first = DmaBuffer.alloc(HUGE, { ...env, hugePageSize: HUGE });
    const fd = first.dupMemfd();
    const second = DmaBuffer.fromMemfd(fd, env);
    expect(second.pageSize).toBe(HUGE);
    fake.close(fd);
    first.close();
    // The file's pages stay taken while the second mapping holds it.
    expect(fake.hugePagesFree(HUGE)).toBe(1);
    second.close();
    expect(fake.hugePagesFree(HUGE)).toBe(2);
    expectNothingLeft(fake);
  });

  test('a failed mmap in fromMemfd closes the dup (fault injection)', () => {
    const { fake, env } = kernel();
    const first = DmaBuffer.alloc(4096, { ...env, memfd: true });
    const fd = first.dupMemfd();
    fake.failNext({ syscall: 'mmap', errno: 'ENOMEM' });
    expect(thrownVfio(() => DmaBuffer.fromMemfd(fd, env))).toMatchObject({ code: 'ENOMEM', syscall: 'mmap' });
    fake.failNext({ syscall: 'memfdDup', errno: 'EMFILE' });
    expect(thrownVfio(() => DmaBuffer.fromMemfd(fd, env))).toMatchObject({ code: 'EMFILE', syscall: 'fcntl' });
    fake.close(fd);
    first.close();
    expectNothingLeft(fake);
  });

  test('the user address (for a KVM memory slot) comes only from the unsafe subpath, not from the buffer', () => {
    const { env } = kernel();
    using buffer = DmaBuffer.alloc(2 * 4096, { ...env, memfd: true });
    expect(typeof addressOf(buffer)).toBe('bigint');
    expect(Object.keys(buffer)).not.toContain('address');
    expect('address' in buffer).toBe(false);
  });
});

describe.each(['container', 'iommufd'] as const)('guest memory mapped on the %s backend', (backend) => {
  function setup(options?: FakeKernelOptions) {
    if (backend === 'container') {
      const k = kernel(undefined, options);
      const container = Container.open(k.env);
      const device = Device.open(EDU, { ...k.env, container });
      return { fake: k.fake, env: k.env, ctx: container as Container | Ioas, device, close: () => container.close() };
    }
    const i = withIoas(options);
    return { fake: i.fake, env: i.env, ctx: i.ioas as Container | Ioas, device: i.device, close: () => i.iommufd.close() };
  }

  test('a subrange at a chosen IOVA: the device reads and writes exactly that part of the memory', () => {
    const { fake, env, ctx, close } = setup();
    const memory = DmaBuffer.alloc(16 * 4096, { ...env, memfd: true });
    memory.bytes[5 * 4096] = 0x11;
    const mapping = ctx.map(memory, { offset: 4 * 4096, size: 8 * 4096, iova: 0x10_0000n });
    expect(mapping).toMatchObject({ iova: 0x10_0000n, size: 0x8000n, offset: 0x4000 });
    const edu = fake.device(EDU)!;
    expect([...edu.dmaRead(0x10_1000n, 1)]).toEqual([0x11]);
    edu.dmaWrite(0x10_7fffn, Uint8Array.of(0x77));
    expect(memory.bytes[4 * 4096 + 0x7fff]).toBe(0x77);
    // Outside the mapped part there is nothing for the device.
    expect(() => edu.dmaRead(0x10_8000n, 1)).toThrow();
    expect(() => memory.close()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_BUFFER_MAPPED' }));
    mapping.unmap();
    memory.close();
    close();
    expectNothingLeft(fake);
  });

  test('a bad offset or size is refused before the kernel, naming it', () => {
    const { fake, env, ctx, close } = setup();
    const memory = DmaBuffer.alloc(4 * 4096, { ...env, memfd: true });
    const before = fake.calls.length;
    expect(thrown(() => ctx.map(memory, { offset: 100 }))).toMatchObject({ code: 'ERR_VFIO_MISALIGNED', message: expect.stringContaining('options.offset') });
    expect(thrown(() => ctx.map(memory, { size: 100 }))).toMatchObject({ code: 'ERR_VFIO_MISALIGNED', message: expect.stringContaining('options.size') });
    expect(thrown(() => ctx.map(memory, { offset: 2 * 4096, size: 3 * 4096 }))).toMatchObject({ name: 'RangeError', message: expect.stringContaining('not inside the buffer') });
    expect(thrown(() => ctx.map(memory, { offset: 4 * 4096 }))).toMatchObject({ name: 'RangeError', message: expect.stringContaining('not inside the buffer') });
    expect(thrown(() => ctx.map(memory, { size: 0 }))).toMatchObject({ name: 'RangeError', message: expect.stringContaining('options.size') });
    const maps = new Set([b.VFIO_IOMMU_MAP_DMA >>> 0, b.IOMMU_IOAS_MAP >>> 0]);
    expect(fake.calls.slice(before).filter((c) => c.syscall === 'ioctl' && maps.has(c.request! >>> 0))).toEqual([]);
    expect(memory.mapped).toBe(false);
    memory.close();
    close();
    expectNothingLeft(fake);
  });

  test('unmapRange removes whole mappings in one call, refuses a range that cuts one, and unmapAll empties the rest', () => {
    const { fake, env, ctx, close } = setup();
    const memory = DmaBuffer.alloc(8 * 4096, { ...env, memfd: true });
    const low = ctx.map(memory, { offset: 0, size: 2 * 4096, iova: 0x20_0000n });
    const mid = ctx.map(memory, { offset: 2 * 4096, size: 2 * 4096, iova: 0x20_2000n });
    const high = ctx.map(memory, { offset: 4 * 4096, size: 4 * 4096, iova: 0x40_0000n });
    expect(thrown(() => ctx.unmapRange(0x20_1000n, 0x2000n))).toMatchObject({ code: 'ERR_VFIO_DMA_PARTIAL' });
    expect(low.mapped && mid.mapped).toBe(true);
    expect(ctx.unmapRange(0x20_0000n, 0x4000n)).toEqual([low, mid]);
    expect([low.mapped, mid.mapped, high.mapped]).toEqual([false, false, true]);
    expect(ctx.unmapRange(0x20_0000n, 0x4000n)).toEqual([]);
    expect(memory.mapped).toBe(true);
    ctx.unmapAll();
    expect(high.mapped).toBe(false);
    expect(memory.mapped).toBe(false);
    memory.close();
    close();
    expectNothingLeft(fake);
  });

  test('huge page memory maps at a huge-page-aligned IOVA and the device reaches its second page', () => {
    const { fake, env, ctx, close } = setup({ hugePages: [{ size: HUGE, count: 2 }] });
    const memory = DmaBuffer.alloc(2 * HUGE, { ...env, hugePageSize: HUGE });
    const mapping = ctx.map(memory, { iova: 0x4000_0000n });
    fake.device(EDU)!.dmaWrite(0x4000_0000n + BigInt(HUGE) + 3n, Uint8Array.of(0x5e));
    expect(memory.bytes[HUGE + 3]).toBe(0x5e);
    mapping.unmap();
    memory.close();
    close();
    expect(fake.hugePagesFree(HUGE)).toBe(2);
    expectNothingLeft(fake);
  });
});

describe('IOMMU_IOAS_MAP_FILE of a subrange', () => {
  test('maps the file from `offset` (start): the device sees that part of the file', () => {
    const { fake, env, ioas, iommufd } = withIoas();
    const memory = DmaBuffer.alloc(8 * 4096, { ...env, memfd: true });
    memory.bytes[6 * 4096 + 1] = 0x66;
    const before = fake.calls.length;
    const mapping = ioas.mapFile(memory, { offset: 6 * 4096, size: 2 * 4096, iova: 0x80_0000n });
    const requests = fake.calls.slice(before).filter((c) => c.syscall === 'ioctl').map((c) => c.request! >>> 0);
    expect(requests).toContain(b.IOMMU_IOAS_MAP_FILE >>> 0);
    expect(requests).not.toContain(b.IOMMU_IOAS_MAP >>> 0);
    expect(mapping).toMatchObject({ offset: 6 * 4096, size: 0x2000n });
    expect([...fake.device(EDU)!.dmaRead(0x80_0001n, 1)]).toEqual([0x66]);
    mapping.unmap();
    memory.close();
    iommufd.close();
    expectNothingLeft(fake);
  });
});

describe('IOMMU_IOAS_COPY of a part', () => {
  test('the copy maps the same part of the buffer (offset and size of its source)', () => {
    const { fake, env, ioas, iommufd } = withIoas();
    const memory = DmaBuffer.alloc(8 * 4096, { ...env, memfd: true });
    const part = ioas.map(memory, { offset: 2 * 4096, size: 3 * 4096, iova: 0x90_0000n });
    const other = iommufd.allocIoas();
    const copy = other.copyFrom(part, { iova: 0xa0_0000n });
    expect(copy).toMatchObject({ offset: 2 * 4096, size: 0x3000n, iova: 0xa0_0000n });
    expect(fake.ioasMappings(iommufd.fd, other.id)).toEqual([expect.objectContaining({ iova: 0xa0_0000n, length: 0x3000n })]);
    iommufd.close();
    memory.close();
    expectNothingLeft(fake);
  });
});

describe('live update of DMA vaddrs (VFIO_UPDATE_VADDR) on the legacy container', () => {
  test('invalidate, map the same memfd again, give the new vaddr: the device keeps its IOVA and the old buffer can close', () => {
    const { fake, env, container, group } = attached();
    const old = DmaBuffer.alloc(4 * 4096, { ...env, memfd: true });
    const mapping = container.map(old, { offset: 4096, size: 2 * 4096, iova: 0x100_0000n });
    container.invalidateVaddr();
    // Invalidated twice is the kernel's EINVAL (nothing changes).
    expect(thrownVfio(() => container.invalidateVaddr())).toMatchObject({ code: 'EINVAL', operation: 'VFIO_IOMMU_UNMAP_DMA' });
    const fd = old.dupMemfd();
    const fresh = DmaBuffer.fromMemfd(fd, env);
    fake.close(fd);
    const moved = container.updateVaddr(mapping, fresh, 4096);
    expect(mapping.mapped).toBe(false);
    expect(moved).toMatchObject({ iova: 0x100_0000n, size: 0x2000n, offset: 4096, read: true, write: true });
    expect(fake.dmaMappings()).toEqual([expect.objectContaining({ iova: 0x100_0000n, vaddr: addressOf(fresh) + 4096n })]);
    expect(container.mappings()).toEqual([moved]);
    old.close();
    expect(() => fresh.close()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_BUFFER_MAPPED' }));
    moved.unmap();
    fresh.close();
    container.close();
    group.close();
    expectNothingLeft(fake);
  });

  test('a new vaddr for a mapping whose vaddr is valid is the kernel EINVAL with a hint; the mapping is kept', () => {
    const { fake, env, container, group } = attached();
    const memory = DmaBuffer.alloc(4096, { ...env, memfd: true });
    const other = DmaBuffer.alloc(4096, { ...env, memfd: true });
    const mapping = container.map(memory);
    const error = thrownVfio(() => container.updateVaddr(mapping, other));
    expect(error).toMatchObject({ code: 'EINVAL', operation: 'VFIO_IOMMU_MAP_DMA' });
    expect(error.hint).toContain('invalidateVaddr');
    expect(mapping.mapped).toBe(true);
    expect(other.mapped).toBe(false);
    expect(thrown(() => container.updateVaddr(mapping, other, 4096))).toMatchObject({ name: 'RangeError' });
    expect(thrown(() => container.updateVaddr({} as never, other))).toMatchObject({ name: 'TypeError' });
    mapping.unmap();
    memory.close();
    other.close();
    container.close();
    group.close();
    expectNothingLeft(fake);
  });

  test('while a vaddr is invalid the kernel refuses another group (EBUSY); once updated it attaches', () => {
    const { fake, env } = kernel([{ address: EDU, group: GROUP }, { address: EDU2, group: GROUP + 1 }]);
    const container = Container.open(env);
    const group = Group.open(GROUP, env);
    group.attach(container);
    const memory = DmaBuffer.alloc(4096, { ...env, memfd: true });
    const mapping = container.map(memory);
    container.invalidateVaddr();
    const second = Group.open(GROUP + 1, env);
    expect(thrownVfio(() => second.attach(container))).toMatchObject({ code: 'EBUSY' });
    expect(container.groups()).toEqual([group]);
    container.updateVaddr(mapping, memory);
    second.attach(container);
    container.close();
    for (const g of [group, second]) g.close();
    memory.close();
    expectNothingLeft(fake);
  });

  test('without VFIO_UPDATE_VADDR (iommufd compat, mdevs): ERR_VFIO_UNSUPPORTED naming the extension, before any change', () => {
    const { fake, env, container, group } = attached({ updateVaddr: false });
    const memory = DmaBuffer.alloc(4096, { ...env, memfd: true });
    const mapping = container.map(memory);
    const error = thrownVfio(() => container.invalidateVaddr());
    expect(error).toMatchObject({ code: 'ERR_VFIO_UNSUPPORTED', message: expect.stringContaining('VFIO_UPDATE_VADDR') });
    expect(error.hint).toContain('mapFile');
    expect(thrownVfio(() => container.updateVaddr(mapping, memory))).toMatchObject({ code: 'ERR_VFIO_UNSUPPORTED' });
    mapping.unmap();
    memory.close();
    container.close();
    group.close();
    expectNothingLeft(fake);
  });

  test('unmapRange on a container before a group is attached is ERR_VFIO_NOT_ATTACHED', () => {
    const { fake, env } = kernel();
    const container = Container.open(env);
    expect(thrownVfio(() => container.unmapRange(0, 4096))).toMatchObject({ code: 'ERR_VFIO_NOT_ATTACHED' });
    expect(thrownVfio(() => container.invalidateVaddr())).toMatchObject({ code: 'ERR_VFIO_NOT_ATTACHED' });
    container.close();
    expectNothingLeft(fake);
  });
});
