/**
 * The per-call paths that reuse argument buffers and check offsets in one
 * expression: every answer must still be the kernel's, and every bad
 * argument must still get the error the full checks give.
 */
import * as b from 'vfio-bindings';
import { Container, Device, DmaBuffer, Group, Iommufd, IovaAllocator } from '../src';
import { EDU, GROUP, kernel } from './helpers';

const RWM = b.VFIO_REGION_INFO_FLAG_READ | b.VFIO_REGION_INFO_FLAG_WRITE | b.VFIO_REGION_INFO_FLAG_MMAP;

describe('irqInfo with a reused argument buffer', () => {
  test('each query answers for its own index, whatever the previous answer was', () => {
    const { env } = kernel();
    using device = Device.open(EDU, env);
    const infos = [];
    for (let i = 0; i < device.info.numIrqs; i++) infos.push(device.irqInfo(i));
    for (let i = device.info.numIrqs - 1; i >= 0; i--) expect(device.irqInfo(i)).toEqual(infos[i]);
    expect(infos.map((info) => info.index)).toEqual([...infos.keys()]);
    expect(infos[b.VFIO_PCI_MSI_IRQ_INDEX]!.count).toBeGreaterThan(0);
  });

  test('a failed query is annotated and the next one works', () => {
    const { fake, env } = kernel();
    using device = Device.open(EDU, env);
    const before = device.irqInfo(b.VFIO_PCI_MSI_IRQ_INDEX);
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_DEVICE_GET_IRQ_INFO, errno: 'EFAULT' });
    expect(() => device.irqInfo(0)).toThrow(expect.objectContaining({ code: 'EFAULT', syscall: 'ioctl', operation: 'VFIO_DEVICE_GET_IRQ_INFO', device: EDU }));
    expect(device.irqInfo(b.VFIO_PCI_MSI_IRQ_INDEX)).toEqual(before);
  });
});

describe('map/unmap with reused arguments', () => {
  test('the kernel sees each mapping as given, and unmap of one leaves the others', () => {
    const { fake, env } = kernel();
    using container = Container.open(env);
    using group = Group.open(GROUP, env);
    group.attach(container);
    const buffers = [DmaBuffer.alloc(4096, env), DmaBuffer.alloc(8192, env), DmaBuffer.alloc(4096, env)];
    const a = container.map(buffers[0]!, { iova: 0x10_0000, write: false });
    const c = container.map(buffers[1]!, { iova: 0x30_0000 });
    const d = container.map(buffers[2]!);
    expect(fake.dmaMappings().map((m) => [m.iova, m.size])).toEqual(
      expect.arrayContaining([[0x10_0000n, 0x1000n], [0x30_0000n, 0x2000n], [d.iova, 0x1000n]]),
    );
    c.unmap();
    expect(fake.dmaMappings().map((m) => m.iova).sort()).toEqual([a.iova, d.iova].sort());
    expect(() => container.map(buffers[1]!, { iova: 0x10_0000 })).toThrow(expect.objectContaining({ code: 'ERR_VFIO_DMA_OVERLAP' }));
    fake.failNext({ syscall: 'ioctl', request: b.VFIO_IOMMU_MAP_DMA, errno: 'ENOMEM' });
    expect(() => container.map(buffers[1]!, { iova: 0x30_0000 })).toThrow(expect.objectContaining({ code: 'ENOMEM', operation: 'VFIO_IOMMU_MAP_DMA' }));
    expect(buffers[1]!.mapped).toBe(false);
    container.map(buffers[1]!, { iova: 0x30_0000 }).unmap();
    a.unmap();
    d.unmap();
    expect(fake.dmaMappings()).toEqual([]);
    for (const buffer of buffers) buffer.close();
  });
});

describe('IOAS map/unmap with reused arguments', () => {
  test('the kernel sees each mapping as given (permissions too), unmap of one leaves the others, and unmapAll uses the same buffer', () => {
    const k = kernel(undefined, { deviceCdevs: true });
    const env = { ...k.env, iommufdPath: k.fake.iommuPath };
    using iommufd = Iommufd.open(env);
    const ioas = iommufd.allocIoas();
    using device = Device.open(EDU, { ...env, ioas });
    const buffers = [DmaBuffer.alloc(4096, env), DmaBuffer.alloc(8192, env), DmaBuffer.alloc(4096, env)];
    const a = ioas.map(buffers[0]!, { iova: 0x10_0000, write: false });
    const c = ioas.map(buffers[1]!, { iova: 0x30_0000 });
    const d = ioas.map(buffers[2]!, { read: false });
    const seen = () => k.fake.ioasMappings(iommufd.fd, ioas.id).map((m) => [m.iova, m.length, m.read, m.write]);
    expect(seen()).toEqual(expect.arrayContaining([[0x10_0000n, 0x1000n, true, false], [0x30_0000n, 0x2000n, true, true], [d.iova, 0x1000n, false, true]]));
    c.unmap();
    expect(seen().map(([iova]) => iova)).toEqual(expect.arrayContaining([a.iova, d.iova]));
    expect(seen()).toHaveLength(2);
    k.fake.failNext({ syscall: 'ioctl', request: b.IOMMU_IOAS_MAP, errno: 'ENOMEM' });
    expect(() => ioas.map(buffers[1]!, { iova: 0x30_0000 })).toThrow(expect.objectContaining({ code: 'ENOMEM', operation: 'IOMMU_IOAS_MAP' }));
    expect(buffers[1]!.mapped).toBe(false);
    ioas.map(buffers[1]!, { iova: 0x30_0000 });
    ioas.unmapAll();
    expect(seen()).toEqual([]);
    expect(device.closed).toBe(false);
    for (const buffer of buffers) buffer.close();
  });
});

describe('IovaAllocator search', () => {
  const page = 0x1000n;
  test('overlapping() names the lowest overlapping span among many; release() frees exactly one', () => {
    const allocator = new IovaAllocator([{ start: 0n, end: 0xffff_ffffn }], page);
    for (const start of [0x9000n, 0x1000n, 0x5000n, 0x3000n, 0x7000n]) allocator.reserve(start, 0x1000n);
    expect(allocator.spans().map((s) => s.start)).toEqual([0x1000n, 0x3000n, 0x5000n, 0x7000n, 0x9000n]);
    expect(allocator.overlapping(0x2000n, 0x6000n)).toEqual({ start: 0x3000n, size: 0x1000n });
    expect(allocator.overlapping(0x4000n, 0x1000n)).toBeUndefined();
    expect(allocator.overlapping(0xa000n, 0x1000n)).toBeUndefined();
    expect(allocator.overlapping(0n, 0x1001n)).toEqual({ start: 0x1000n, size: 0x1000n });
    allocator.release(0x5000n);
    allocator.release(0x6000n);
    expect(allocator.spans().map((s) => s.start)).toEqual([0x1000n, 0x3000n, 0x7000n, 0x9000n]);
    expect(allocator.allocate(0x2000n)).toBe(0x4000n);
    expect(allocator.allocate(0x3000n)).toBe(0x4000n);
    expect(allocator.allocate(0x4000n)).toBe(0xa000n);
  });
});

describe('accessor checks', () => {
  function mapped() {
    const k = kernel([{ address: EDU, group: GROUP, regions: [{ index: 0, size: 0x1000, flags: RWM }] }]);
    const device = Device.open(EDU, k.env);
    return { ...k, device, region: device.region(0)!, fakeDevice: k.devices[0]! };
  }

  test.each([
    ['a string', '8', 'ERR_INVALID_ARG_TYPE'],
    ['a bigint', 8n, 'ERR_INVALID_ARG_TYPE'],
    ['a fraction', 8.5, 'ERR_INVALID_ARG_TYPE'],
    ['NaN', NaN, 'ERR_INVALID_ARG_TYPE'],
    ['negative', -4, 'ERR_OUT_OF_RANGE'],
    ['past the end', 0x1000, 'ERR_OUT_OF_RANGE'],
    ['straddling the end', 0xffe, 'ERR_OUT_OF_RANGE'],
    ['misaligned', 6, 'ERR_VFIO_MISALIGNED'],
  ])('MMIO offset %s is refused (%s)', (_, offset, code) => {
    const { device, region } = mapped();
    using mapping = region.map();
    const window = mapping.windows[0]!;
    expect(() => window.read32(offset as number)).toThrow(expect.objectContaining({ code }));
    expect(() => window.write32(offset as number, 1)).toThrow(expect.objectContaining({ code }));
    device.close();
  });

  test('MMIO values are checked before the offset; a closed window says so', () => {
    const { device, region, fakeDevice } = mapped();
    const mapping = region.map();
    const window = mapping.windows[0]!;
    expect(() => window.write32(0x2000, 2 ** 32)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE', message: expect.stringMatching(/^value/) }));
    expect(() => window.write16(0, 1.5)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    window.write32(0xffc, 0xdeadbeef);
    expect(window.read32(0xffc)).toBe(0xdeadbeef);
    expect(new DataView(fakeDevice.region(0).buffer, fakeDevice.region(0).byteOffset).getUint32(0xffc, true)).toBe(0xdeadbeef);
    mapping.unmap();
    expect(() => window.read32(0)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(() => window.write8(0, 1)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    device.close();
  });

  test('region offsets: same errors in the same order for numbers and bigints', () => {
    const { device, region } = mapped();
    expect(() => region.read(-1, -1)).toThrow(expect.objectContaining({ message: expect.stringMatching(/^offset/) }));
    expect(() => region.read(0, -1)).toThrow(expect.objectContaining({ message: expect.stringMatching(/^length/) }));
    expect(() => region.read(0xffe, 4)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => region.readUint32(2)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MISALIGNED' }));
    expect(() => region.readUint32(2n)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MISALIGNED' }));
    expect(() => region.readUint32(0x1000)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => region.writeUint32(1.5, 0)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    region.writeUint32(0xffcn, 0x12345678);
    expect(region.readUint32(0xffc)).toBe(0x12345678);
    region.writeBigUint64(8, 0x1122334455667788n);
    expect(region.readBigUint64(8n)).toBe(0x1122334455667788n);
    expect(region.readUint16(8)).toBe(0x7788);
    expect(region.readUint8(15)).toBe(0x11);
    device.close();
  });

  test('a register hook that reads the region again does not clobber the outer access', () => {
    const { device, region, fakeDevice } = mapped();
    region.writeUint32(0x10, 0xaaaa5555);
    fakeDevice.onMmioRead(0, (offset) => (offset === 0 ? region.readUint32(0x10) + 1 : undefined));
    expect(region.readUint32(0)).toBe(0xaaaa5556);
    fakeDevice.onMmioRead(0, null);
    fakeDevice.onMmioWrite(0, (offset) => {
      if (offset === 0x20) region.writeUint32(0x24, 7);
      return false;
    });
    region.writeUint32(0x20, 0x01020304);
    fakeDevice.onMmioWrite(0, null);
    expect([region.readUint32(0x20), region.readUint32(0x24)]).toEqual([0x01020304, 7]);
    device.close();
  });
});

describe('empty region transfers', () => {
  test('are checked like any other but make no syscall, even at the very end', () => {
    const { fake, env } = kernel([{ address: EDU, group: GROUP, regions: [{ index: 0, size: 0x1000, flags: RWM }] }]);
    using device = Device.open(EDU, env);
    const region = device.region(0)!;
    const before = fake.calls.length;
    expect(region.read(0x1000, 0)).toEqual(new Uint8Array(0));
    region.write(0x1000, new Uint8Array(0));
    expect(fake.calls.length).toBe(before);
    expect(() => region.read(0x1001, 0)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    expect(() => region.write(0x1001, new Uint8Array(0))).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
  });
});
