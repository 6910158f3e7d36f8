import * as b from 'vfio-bindings';
import { Container, Device, DmaBuffer, DmaMapping, Group } from '../src';
import { EDU, GROUP, expectNothingLeft, kernel } from './helpers';

function attached(options?: Parameters<typeof kernel>[1]) {
  const k = kernel(undefined, options);
  const container = Container.open(k.env);
  const group = Group.open(GROUP, k.env);
  group.attach(container);
  return { ...k, container, group };
}

describe('DmaBuffer', () => {
  test('alloc gives zeroed page-rounded memory owned by the library', () => {
    const { fake, env } = kernel();
    const buffer = DmaBuffer.alloc(100, env);
    expect(buffer.size).toBe(4096);
    expect(buffer.bytes).toHaveLength(4096);
    expect(buffer.bytes.every((x) => x === 0)).toBe(true);
    buffer.view.setUint32(8, 0xcafe, true);
    expect(buffer.bytes[8]).toBe(0xfe);
    expect(fake.liveDmaBuffers()).toBe(1);
    expect(buffer.mapped).toBe(false);
    buffer.close();
    buffer.close();
    expect(buffer.closed).toBe(true);
    expect(fake.liveDmaBuffers()).toBe(0);
    expect(() => buffer.bytes).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(() => buffer.view).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
  });

  test('views taken before close are detached by it', () => {
    const { env } = kernel();
    const buffer = DmaBuffer.alloc(4096, env);
    const bytes = buffer.bytes;
    buffer.close();
    expect(bytes.length).toBe(0);
  });

  test('size is validated before allocating', () => {
    const { fake, env } = kernel();
    expect(() => DmaBuffer.alloc(0, env)).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('size') }));
    expect(() => DmaBuffer.alloc(1.5, env)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    expect(() => DmaBuffer.alloc(4096n as never, env)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    expect(fake.calls.filter((c) => c.syscall === 'allocDma')).toEqual([]);
  });

  test('allocation failure is a VfioError', () => {
    const { fake, env } = kernel();
    fake.failNext({ syscall: 'allocDma', errno: 'ENOMEM' });
    expect(() => DmaBuffer.alloc(4096, env)).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ENOMEM' }));
  });

  test('Symbol.dispose frees', () => {
    const { fake, env } = kernel();
    {
      using buffer = DmaBuffer.alloc(8192, env);
      expect(buffer.size).toBe(8192);
    }
    expect(fake.liveDmaBuffers()).toBe(0);
  });

  test('a failed free leaves the buffer open for another close()', () => {
    const { fake, env } = kernel();
    const buffer = DmaBuffer.alloc(4096, env);
    fake.failNext({ syscall: 'freeDma', errno: 'EINVAL' });
    expect(() => buffer.close()).toThrow(expect.objectContaining({ name: 'VfioError', code: 'EINVAL' }));
    expect(buffer.closed).toBe(false);
    expect(buffer.bytes).toHaveLength(4096);
    buffer.close();
    expect(fake.liveDmaBuffers()).toBe(0);
  });
});

describe('Container.map', () => {
  test('maps at an allocated IOVA with read/write permissions', () => {
    const { fake, container } = attached();
    const buffer = DmaBuffer.alloc(0x3000, { backend: fake });
    const mapping = container.map(buffer);
    expect(mapping).toBeInstanceOf(DmaMapping);
    expect(mapping).toMatchObject({ iova: 0x1000n, size: 0x3000n, read: true, write: true, mapped: true, end: 0x3fffn, buffer });
    expect(fake.dmaMappings(container.fd)).toEqual([{ iova: 0x1000n, size: 0x3000n, vaddr: expect.any(BigInt), read: true, write: true }]);
    expect(buffer.mapped).toBe(true);
    const second = container.map(DmaBuffer.alloc(0x1000, { backend: fake }), { write: false });
    expect(second).toMatchObject({ iova: 0x4000n, read: true, write: false });
    expect(container.mappings()).toEqual([mapping, second]);
    container.close();
  });

  test('the device sees the buffer through the IOMMU', () => {
    const { fake, env } = kernel();
    using device = Device.open(EDU, env);
    const buffer = DmaBuffer.alloc(4096, env);
    const mapping = device.iommu!.map(buffer);
    buffer.bytes.set([1, 2, 3], 0);
    const fakeDevice = (fake as unknown as { device(a: string): { dmaRead(iova: bigint, n: number): Uint8Array; dmaWrite(iova: bigint, d: Uint8Array): void } }).device(EDU);
    expect([...fakeDevice.dmaRead(mapping.iova, 3)]).toEqual([1, 2, 3]);
    fakeDevice.dmaWrite(mapping.iova + 8n, Uint8Array.of(9));
    expect(buffer.bytes[8]).toBe(9);
    mapping.unmap();
    buffer.close();
  });

  test('maps at a caller-chosen IOVA', () => {
    const { fake, container } = attached();
    const mapping = container.map(DmaBuffer.alloc(0x2000, { backend: fake }), { iova: 0x10_0000 });
    expect(mapping.iova).toBe(0x10_0000n);
    const big = container.map(DmaBuffer.alloc(0x1000, { backend: fake }), { iova: 0xfef0_0000n, read: false });
    expect(big).toMatchObject({ iova: 0xfef0_0000n, read: false, write: true });
    container.close();
  });

  test('honours maxIova when allocating, and checks it for a chosen IOVA', () => {
    const { fake, container } = attached();
    container.map(DmaBuffer.alloc(0x1000, { backend: fake }), { iova: 0x1000 });
    const buffer = DmaBuffer.alloc(0x1000, { backend: fake });
    expect(container.map(buffer, { maxIova: 0x2fff }).iova).toBe(0x2000n);
    const more = DmaBuffer.alloc(0x1000, { backend: fake });
    expect(() => container.map(more, { maxIova: 0x2fff })).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ERR_VFIO_NO_IOVA_SPACE' }));
    expect(() => container.map(more, { iova: 0x3000, maxIova: 0x3ffe })).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('maxIova') }));
    container.close();
    more.close();
  });

  test('alignment, range and overlap errors are caught before the kernel', () => {
    const { fake, container } = attached();
    const buffer = DmaBuffer.alloc(0x2000, { backend: fake });
    container.map(DmaBuffer.alloc(0x2000, { backend: fake }), { iova: 0x8000 });
    const before = fake.calls.filter((c) => c.request === b.VFIO_IOMMU_MAP_DMA).length;
    expect(() => container.map(buffer, { iova: 0x1234 })).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_VFIO_MISALIGNED', message: expect.stringContaining('options.iova') }));
    expect(() => container.map(buffer, { iova: 0xfedf_f000n })).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message: expect.stringContaining('IOVA ranges') }));
    expect(() => container.map(buffer, { iova: 0x80_0000_0000n })).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => container.map(buffer, { iova: 0x9000 })).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_VFIO_DMA_OVERLAP', message: expect.stringContaining('0x8000-0x9fff') }));
    expect(() => container.map(buffer, { iova: 0x7000 })).toThrow(expect.objectContaining({ code: 'ERR_VFIO_DMA_OVERLAP' }));
    expect(() => container.map(buffer, { iova: -1 })).toThrow(expect.objectContaining({ name: 'RangeError' }));
    expect(() => container.map(buffer, { iova: 1.5 })).toThrow(expect.objectContaining({ name: 'TypeError' }));
    expect(() => container.map(buffer, { read: false, write: false })).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('options') }));
    expect(() => container.map(buffer, { read: 'yes' as never })).toThrow(expect.objectContaining({ name: 'TypeError', message: expect.stringContaining('options.read') }));
    expect(() => container.map(new Uint8Array(4096) as never)).toThrow(expect.objectContaining({ name: 'TypeError', message: expect.stringContaining('buffer') }));
    expect(() => container.map(buffer, 5 as never)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    expect(fake.calls.filter((c) => c.request === b.VFIO_IOMMU_MAP_DMA).length).toBe(before);
    container.close();
    buffer.close();
  });

  test('an IOMMU with larger pages needs whole, aligned IOMMU pages', () => {
    const { fake, container } = attached({ iommuPageSizes: 0x10000n });
    const before = fake.calls.filter((c) => c.request === b.VFIO_IOMMU_MAP_DMA).length;
    const buffer = DmaBuffer.alloc(0x1000, { backend: fake });
    expect(() => container.map(buffer)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_VFIO_MISALIGNED', message: expect.stringContaining('buffer.size') }));
    const whole = DmaBuffer.alloc(0x10000, { backend: fake });
    const address = fake.addressOf(whole.bytes.buffer as ArrayBuffer);
    if (address % 0x10000n === 0n) {
      expect(container.map(whole).iova).toBe(0x10000n);
    } else {
      expect(() => container.map(whole)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_VFIO_MISALIGNED', message: expect.stringContaining('IOMMU page size') }));
      expect(fake.calls.filter((c) => c.request === b.VFIO_IOMMU_MAP_DMA).length).toBe(before);
    }
    container.close();
    buffer.close();
    whole.close();
  });

  test('needs an IOMMU, an open buffer and the same backend', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    const buffer = DmaBuffer.alloc(4096, env);
    expect(() => container.map(buffer)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_NOT_ATTACHED', operation: 'VFIO_IOMMU_MAP_DMA' }));
    const other = kernel();
    const foreign = DmaBuffer.alloc(4096, other.env);
    expect(() => container.map(foreign)).toThrow(expect.objectContaining({ name: 'TypeError', message: expect.stringContaining('same backend') }));
    buffer.close();
    expect(() => container.map(buffer)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    foreign.close();
    void fake;
  });

  test('kernel refusals are VfioErrors with the operation and hint (ENOMEM: memlock)', () => {
    const { fake, container } = attached();
    const buffer = DmaBuffer.alloc(4096, { backend: fake });
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_IOMMU_MAP_DMA, errno: 'ENOMEM' });
    expect(() => container.map(buffer)).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ENOMEM', operation: 'VFIO_IOMMU_MAP_DMA', path: container.path, hint: expect.stringContaining('RLIMIT_MEMLOCK') }));
    expect(buffer.mapped).toBe(false);
    expect(container.mappings()).toEqual([]);
    expect(container.map(buffer).iova).toBe(0x1000n); // the failed IOVA was not kept
    container.close();
    buffer.close();
  });

  test('the dma_avail limit comes back from the kernel as ENOSPC with a hint', () => {
    const { fake, container } = attached({ dmaAvail: 1 });
    container.map(DmaBuffer.alloc(4096, { backend: fake }));
    const buffer = DmaBuffer.alloc(4096, { backend: fake });
    expect(() => container.map(buffer)).toThrow(expect.objectContaining({ code: 'ENOSPC', hint: expect.stringContaining('dma_entry_limit') }));
    container.close();
    buffer.close();
  });
});

describe('DmaMapping.unmap and Container.unmapAll', () => {
  test('unmap removes the mapping and frees the IOVA and the buffer', () => {
    const { fake, container } = attached();
    const buffer = DmaBuffer.alloc(4096, { backend: fake });
    const mapping = container.map(buffer);
    expect(() => buffer.close()).toThrow(expect.objectContaining({ name: 'VfioError', code: 'ERR_VFIO_BUFFER_MAPPED' }));
    expect(fake.liveDmaBuffers()).toBe(1);
    mapping.unmap();
    mapping.unmap();
    expect(mapping.mapped).toBe(false);
    expect(fake.dmaMappings()).toEqual([]);
    expect(container.map(buffer).iova).toBe(mapping.iova);
    container.unmapAll();
    buffer.close();
    container.close();
    expect(fake.liveDmaBuffers()).toBe(0);
  });

  test('the same buffer may be mapped twice; it is released by the last unmap', () => {
    const { fake, container } = attached();
    const buffer = DmaBuffer.alloc(4096, { backend: fake });
    const a = container.map(buffer);
    const b2 = container.map(buffer);
    expect(a.iova).not.toBe(b2.iova);
    a.unmap();
    expect(buffer.mapped).toBe(true);
    b2.close();
    expect(buffer.mapped).toBe(false);
    buffer.close();
    container.close();
  });

  test('a failed unmap keeps the mapping (and the buffer pinned)', () => {
    const { fake, container } = attached();
    const buffer = DmaBuffer.alloc(4096, { backend: fake });
    const mapping = container.map(buffer);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_IOMMU_UNMAP_DMA, errno: 'EIO' });
    expect(() => mapping.unmap()).toThrow(expect.objectContaining({ code: 'EIO', operation: 'VFIO_IOMMU_UNMAP_DMA' }));
    expect(mapping.mapped).toBe(true);
    expect(buffer.mapped).toBe(true);
    {
      using m = mapping;
      void m;
    }
    expect(mapping.mapped).toBe(false);
    buffer.close();
    container.close();
  });

  test('unmapAll unmaps everything in one call and releases the buffers', () => {
    const { fake, container, group } = attached();
    const buffers = [DmaBuffer.alloc(4096, { backend: fake }), DmaBuffer.alloc(8192, { backend: fake })];
    const mappings = buffers.map((buffer) => container.map(buffer));
    const from = fake.calls.length;
    container.unmapAll();
    expect(fake.calls.slice(from).filter((c) => c.request === b.VFIO_IOMMU_UNMAP_DMA)).toHaveLength(1);
    expect(mappings.every((m) => !m.mapped)).toBe(true);
    expect(fake.dmaMappings()).toEqual([]);
    container.unmapAll(); // nothing mapped: no syscall
    for (const buffer of buffers) buffer.close();
    container.close();
    group.close();
    expectNothingLeft(fake);
  });

  test('unmapAll falls back to one unmap per mapping without VFIO_UNMAP_ALL', () => {
    const { fake, container } = attached();
    const backend = fake;
    const ext = backend.ioctl.bind(backend);
    const spy = jest.spyOn(backend, 'ioctl').mockImplementation((fd, request, arg) =>
      request === b.VFIO_CHECK_EXTENSION && arg === b.VFIO_UNMAP_ALL ? 0 : ext(fd, request, arg));
    const buffers = [DmaBuffer.alloc(4096, { backend: fake }), DmaBuffer.alloc(4096, { backend: fake })];
    buffers.forEach((buffer) => container.map(buffer));
    const from = fake.calls.length;
    container.unmapAll();
    expect(fake.calls.slice(from).filter((c) => c.request === b.VFIO_IOMMU_UNMAP_DMA)).toHaveLength(2);
    spy.mockRestore();
    for (const buffer of buffers) buffer.close();
    container.close();
  });

  test('closing the container releases every mapping and buffer pin', () => {
    const { fake, container, group } = attached();
    const buffer = DmaBuffer.alloc(4096, { backend: fake });
    const mapping = container.map(buffer);
    container.close();
    expect(mapping.mapped).toBe(false);
    expect(buffer.mapped).toBe(false);
    expect(() => mapping.unmap()).not.toThrow();
    buffer.close();
    group.close();
    expectNothingLeft(fake);
  });

  test('detaching the last group drops the mappings with the IOMMU', () => {
    const { fake, container, group } = attached();
    const buffer = DmaBuffer.alloc(4096, { backend: fake });
    const mapping = container.map(buffer);
    group.detach();
    expect(mapping.mapped).toBe(false);
    expect(container.mappings()).toEqual([]);
    buffer.close();
    group.close();
    container.close();
    expectNothingLeft(fake);
  });

  test('a failed unmapAll keeps every mapping', () => {
    const { fake, container, group } = attached();
    const buffer = DmaBuffer.alloc(4096, { backend: fake });
    const mapping = container.map(buffer);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_IOMMU_UNMAP_DMA, errno: 'EIO' });
    expect(() => container.unmapAll()).toThrow(expect.objectContaining({ code: 'EIO', operation: 'VFIO_IOMMU_UNMAP_DMA' }));
    expect(mapping.mapped).toBe(true);
    container.unmapAll();
    expect(mapping.mapped).toBe(false);
    buffer.close();
    container.close();
    group.close();
    expectNothingLeft(fake);
  });
});
