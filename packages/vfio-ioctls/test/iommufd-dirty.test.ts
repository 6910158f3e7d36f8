/**
 * iommufd dirty tracking through a HWPT allocated by hand (Ioas.allocHwpt,
 * Hwpt: attach, start/stopDirtyTracking, dirtyPages) against the fake
 * kernel: an IOMMU that tracks dirty pages (`iommuDirtyTracking: true`) and
 * one that does not, as QEMU's intel-iommu (the real kernel:
 * test/guest/iommufd-dirty.test.ts).
 */
import * as b from 'vfio-bindings';
import { Device, DmaBuffer, Hwpt, Iommufd, VfioError, type RegionMapping } from '../src';
import { emulateEdu, EDU_DMA_BUFFER, EDU_REG, type FakeKernelOptions } from '../src/testing';
import { EDU, EDU2, GROUP, expectNothingLeft, kernel, thrown } from './helpers';

const PAGE = 0x1000n;
const BASE = 0x10_0000n;

/** Two edu devices (own groups), cdevs, an iommufd with one IOAS, the first device attached to it with bus mastering on. */
function setUp(options: FakeKernelOptions = {}) {
  const k = kernel([{ address: EDU, group: GROUP }, { address: EDU2, group: GROUP + 1 }], { deviceCdevs: true, ...options });
  const edu = emulateEdu(k.devices[0]);
  const env = { ...k.env, iommufdPath: k.fake.iommuPath };
  const iommufd = Iommufd.open(env);
  const ioas = iommufd.allocIoas();
  const device = Device.open(EDU, { ...env, ioas });
  device.config!.writeUint16(4, device.config!.readUint16(4) | 0x4);
  const mmio = device.region(0)!.map();
  return { fake: k.fake, env, edu, iommufd, ioas, device, mmio };
}

/** edu's DMA engine: `count` bytes between its own buffer and `iova`, towards RAM when `toRam`. */
function eduDma(mmio: RegionMapping, iova: bigint, count: number, toRam: boolean): void {
  mmio.write64(EDU_REG.DMA_SRC, toRam ? EDU_DMA_BUFFER : iova);
  mmio.write64(EDU_REG.DMA_DST, toRam ? iova : EDU_DMA_BUFFER);
  mmio.write64(EDU_REG.DMA_COUNT, BigInt(count));
  mmio.write64(EDU_REG.DMA_CMD, toRam ? 3n : 1n);
}


function requests(fake: ReturnType<typeof setUp>['fake'], from: number, request: number): number {
  return fake.calls.slice(from).filter((c) => c.syscall === 'ioctl' && c.request! >>> 0 === request >>> 0).length;
}

describe('iommufd dirty tracking where the IOMMU tracks dirty pages', () => {
  test('exactly the pages the device wrote by DMA show dirty; NO_CLEAR keeps them, a plain report clears them', () => {
    const { fake, env, edu, iommufd, ioas, device, mmio } = setUp({ iommuDirtyTracking: true });
    expect(iommufd.hwInfo(device).dirtyTracking).toBe(true);
    const buffer = DmaBuffer.alloc(Number(4n * PAGE), env);
    const mapping = ioas.map(buffer, { iova: BASE });
    const hwpt = ioas.allocHwpt(device, { dirtyTracking: true });
    expect(hwpt).toBeInstanceOf(Hwpt);
    expect([hwpt.canTrackDirty, hwpt.dirtyTracking, hwpt.ioas]).toEqual([true, false, ioas]);
    const before = fake.iommufdObjects();
    expect(before).toContainEqual({ id: hwpt.id, type: 'hwpt_paging' });
    hwpt.attach(device);
    // The automatic HWPT the device left had no other user: the kernel freed it.
    expect(fake.iommufdObjects().filter((o) => o.type === 'hwpt_paging')).toEqual([{ id: hwpt.id, type: 'hwpt_paging' }]);

    hwpt.startDirtyTracking();
    expect(hwpt.dirtyTracking).toBe(true);
    expect(hwpt.dirtyPages(BASE, 4n * PAGE)).toEqual([]);
    edu.buffer.fill(0xab, 0, 32);
    eduDma(mmio, BASE + 2n * PAGE + 16n, 32, true);
    expect([...buffer.bytes.subarray(Number(2n * PAGE + 16n), Number(2n * PAGE + 48n))]).toEqual(new Array(32).fill(0xab));
    // A device read dirties nothing.
    eduDma(mmio, BASE, 64, false);
    const calls = fake.calls.length;
    expect(hwpt.dirtyPages(BASE, 4n * PAGE, { clear: false })).toEqual([{ iova: BASE + 2n * PAGE, size: PAGE }]);
    expect(hwpt.dirtyPages(BASE + 2n * PAGE, PAGE, { clear: false })).toEqual([{ iova: BASE + 2n * PAGE, size: PAGE }]);
    expect(hwpt.dirtyPages(BASE, 4n * PAGE)).toEqual([{ iova: BASE + 2n * PAGE, size: PAGE }]);
    expect(hwpt.dirtyPages(BASE, 4n * PAGE)).toEqual([]);
    expect(requests(fake, calls, b.IOMMU_HWPT_GET_DIRTY_BITMAP)).toBe(4);
    // A write across a page edge dirties both pages; a range covering only one reports that one.
    eduDma(mmio, BASE + PAGE - 8n, 16, true);
    expect(hwpt.dirtyPages(BASE + PAGE, PAGE, { clear: false })).toEqual([{ iova: BASE + PAGE, size: PAGE }]);
    expect(hwpt.dirtyPages(BASE, 4n * PAGE)).toEqual([{ iova: BASE, size: 2n * PAGE }]);

    // Stopped: what was written before still reports, what is written after does not.
    eduDma(mmio, BASE + 3n * PAGE, 8, true);
    hwpt.stopDirtyTracking();
    expect(hwpt.dirtyTracking).toBe(false);
    eduDma(mmio, BASE, 8, true);
    expect(hwpt.dirtyPages(BASE, 4n * PAGE)).toEqual([{ iova: BASE + 3n * PAGE, size: PAGE }]);
    // Starting again starts from a clean slate.
    eduDma(mmio, BASE, 8, true);
    hwpt.startDirtyTracking();
    expect(hwpt.dirtyPages(BASE, 4n * PAGE)).toEqual([]);
    // An unmapped page loses its bit.
    eduDma(mmio, BASE, 8, true);
    mapping.unmap();
    const again = ioas.map(buffer, { iova: BASE });
    expect(hwpt.dirtyPages(BASE, 4n * PAGE)).toEqual([]);

    again.unmap();
    buffer.close();
    iommufd.close();
    expect([device.closed, ioas.closed, hwpt.closed]).toEqual([true, true, true]);
    expect(fake.iommufdObjects()).toEqual([]);
    expectNothingLeft(fake);
  });

  test('a range over several mappings with a hole: one report per mapping, so pages after the hole are not lost', () => {
    const { fake, env, ioas, device, mmio } = setUp({ iommuDirtyTracking: true });
    const first = DmaBuffer.alloc(Number(2n * PAGE), env);
    const second = DmaBuffer.alloc(Number(2n * PAGE), env);
    const third = DmaBuffer.alloc(Number(PAGE), env);
    ioas.map(first, { iova: BASE });
    ioas.map(second, { iova: BASE + 4n * PAGE });
    // Touching the second: the runs join across the mappings' edge.
    ioas.map(third, { iova: BASE + 6n * PAGE });
    using hwpt = ioas.allocHwpt(device, { dirtyTracking: true });
    hwpt.attach(device);
    hwpt.startDirtyTracking();
    eduDma(mmio, BASE + 5n * PAGE, 8, true);
    eduDma(mmio, BASE + 6n * PAGE, 8, true);
    const calls = fake.calls.length;
    // Linux 7.3 would stop at the hole at BASE + 2 pages and answer nothing for the rest.
    expect(hwpt.dirtyPages(BASE, 8n * PAGE)).toEqual([{ iova: BASE + 5n * PAGE, size: 2n * PAGE }]);
    expect(requests(fake, calls, b.IOMMU_HWPT_GET_DIRTY_BITMAP)).toBe(3);
    // Part of a mapping is asked about as such; a range nothing maps needs no call.
    eduDma(mmio, BASE + PAGE, 8, true);
    expect(hwpt.dirtyPages(BASE + PAGE, PAGE)).toEqual([{ iova: BASE + PAGE, size: PAGE }]);
    const quiet = fake.calls.length;
    expect(hwpt.dirtyPages(BASE + 2n * PAGE, 2n * PAGE)).toEqual([]);
    expect(fake.calls.length).toBe(quiet);
    hwpt.close();
    device.close();
    ioas.iommufd.close();
    for (const buffer of [first, second, third]) buffer.close();
    expect(fake.iommufdObjects()).toEqual([]);
    expectNothingLeft(fake);
  });
});

describe('iommufd dirty tracking where the IOMMU cannot (QEMU intel-iommu)', () => {
  test('allocHwpt with dirtyTracking is EOPNOTSUPP with a hint and leaves nothing; a plain HWPT carries DMA', () => {
    const { fake, env, edu, iommufd, ioas, device, mmio } = setUp();
    const info = iommufd.hwInfo(device);
    expect(info.dirtyTracking).toBe(false);
    expect(info.capabilities & BigInt(b.IOMMU_HW_CAP_DIRTY_TRACKING)).toBe(0n);
    const objects = fake.iommufdObjects();
    const error = thrown(() => ioas.allocHwpt(device, { dirtyTracking: true }));
    expect(error).toBeInstanceOf(VfioError);
    expect(error).toMatchObject({ code: 'ENOTSUP', errno: -95, syscall: 'ioctl', operation: 'IOMMU_HWPT_ALLOC' });
    expect(error.hint).toMatch(/cannot track dirty pages.*intel-iommu/);
    expect(fake.iommufdObjects()).toEqual(objects);

    const buffer = DmaBuffer.alloc(Number(2n * PAGE), env);
    const mapping = ioas.map(buffer);
    const hwpt = ioas.allocHwpt(device);
    expect(hwpt.canTrackDirty).toBe(false);
    hwpt.attach(device);
    expect(fake.iommufdObjects().filter((o) => o.type === 'hwpt_paging')).toEqual([{ id: hwpt.id, type: 'hwpt_paging' }]);
    buffer.bytes.fill(0x5a, 0, 64);
    eduDma(mmio, mapping.iova, 64, false);
    expect([...edu.buffer.subarray(0, 64)]).toEqual(new Array(64).fill(0x5a));
    eduDma(mmio, mapping.iova + PAGE, 64, true);
    expect([...buffer.bytes.subarray(Number(PAGE), Number(PAGE) + 64)]).toEqual(new Array(64).fill(0x5a));
    // Its domain has no dirty tracking: the kernel says so, and the error why.
    const start = thrown(() => hwpt.startDirtyTracking());
    expect(start).toMatchObject({ code: 'ENOTSUP', operation: 'IOMMU_HWPT_SET_DIRTY_TRACKING' });
    expect(start.hint).toMatch(/allocated without dirty tracking/);
    expect(hwpt.dirtyTracking).toBe(false);
    expect(thrown(() => hwpt.dirtyPages(mapping.iova, mapping.size))).toMatchObject({ code: 'ENOTSUP', operation: 'IOMMU_HWPT_GET_DIRTY_BITMAP' });

    mapping.unmap();
    buffer.close();
    ioas.close();
    expect([device.closed, hwpt.closed]).toEqual([true, true]);
    iommufd.close();
    expect(fake.iommufdObjects()).toEqual([]);
    expectNothingLeft(fake);
  });
});

describe('HWPT lifetimes', () => {
  test('Hwpt.close moves its devices back to the IOAS (DMA still works), then destroys it', () => {
    const { fake, env, iommufd, ioas, device, mmio } = setUp();
    const buffer = DmaBuffer.alloc(Number(PAGE), env);
    const mapping = ioas.map(buffer);
    const hwpt = ioas.allocHwpt(device);
    hwpt.attach(device);
    // The kernel's order: destroying a HWPT a device is on is EBUSY, hence the move first.
    const calls = fake.calls.length;
    hwpt.close();
    expect(requests(fake, calls, b.VFIO_DEVICE_ATTACH_IOMMUFD_PT)).toBe(1);
    expect(requests(fake, calls, b.IOMMU_DESTROY)).toBe(1);
    expect(hwpt.closed).toBe(true);
    const hwpts = fake.iommufdObjects().filter((o) => o.type === 'hwpt_paging');
    expect(hwpts).toHaveLength(1);
    expect(hwpts[0]!.id).not.toBe(hwpt.id);
    eduDma(mmio, mapping.iova, 16, true);
    hwpt.close();
    expect(() => hwpt.attach(device)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(() => hwpt.startDirtyTracking()).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    expect(() => hwpt.dirtyPages(mapping.iova, PAGE)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    // A HWPT nobody attached to closes by itself; so does one whose device closed.
    ioas.allocHwpt(device).close();
    const spare = ioas.allocHwpt(device);
    spare.attach(device);
    device.close();
    spare.close();
    expect(fake.iommufdObjects().map((o) => o.type)).toEqual(['ioas']);
    mapping.unmap();
    buffer.close();
    iommufd.close();
    expect(fake.iommufdObjects()).toEqual([]);
    expectNothingLeft(fake);
  });

  test('closing the IOAS closes its devices, then its HWPTs, then destroys it; closing the iommufd releases them', () => {
    const { fake, ioas, iommufd, device, env } = setUp({ iommuDirtyTracking: true });
    const second = Device.open(EDU2, { ...env, ioas });
    const onIt = ioas.allocHwpt(device, { dirtyTracking: true });
    onIt.attach(device);
    onIt.attach(second);
    const unused = ioas.allocHwpt(second);
    ioas.close();
    expect([device.closed, second.closed, onIt.closed, unused.closed, ioas.closed]).toEqual([true, true, true, true, true]);
    expect(fake.iommufdObjects()).toEqual([]);
    iommufd.close();

    const other = setUp({ iommuDirtyTracking: true });
    const hwpt = other.ioas.allocHwpt(other.device, { dirtyTracking: true });
    hwpt.attach(other.device);
    hwpt.startDirtyTracking();
    other.iommufd.close();
    expect([other.device.closed, other.ioas.closed, hwpt.closed]).toEqual([true, true, true]);
    expect(other.fake.iommufdObjects()).toEqual([]);
    expectNothingLeft(other.fake);
    expectNothingLeft(fake);
  });
});

describe('bad input is refused before the kernel', () => {
  test('allocHwpt, attach and dirtyPages name the argument; nothing is called', () => {
    const { fake, env, ioas, iommufd, device } = setUp({ iommuDirtyTracking: true });
    const buffer = DmaBuffer.alloc(Number(2n * PAGE), env);
    const mapping = ioas.map(buffer, { iova: BASE });
    const hwpt = ioas.allocHwpt(device, { dirtyTracking: true });
    const otherIoas = iommufd.allocIoas();
    const stranger = Device.open(EDU2, { ...env, ioas: otherIoas });
    expect(hwpt.dirtyPages(BASE, 2n * PAGE)).toEqual([]); // the IOVA alignment is known from here on
    const calls = fake.calls.length;
    const argError = (fn: () => unknown, name: string, code: string, argument: string) => {
      const error = thrown(fn);
      expect([error.name, error.code]).toEqual([name, code]);
      expect(String(error.message)).toContain(argument);
    };
    argError(() => ioas.allocHwpt({}), 'TypeError', 'ERR_INVALID_ARG_TYPE', 'device');
    argError(() => ioas.allocHwpt(stranger), 'TypeError', 'ERR_INVALID_ARG_TYPE', 'device');
    argError(() => ioas.allocHwpt(device, { dirtyTracking: 1 as never }), 'TypeError', 'ERR_INVALID_ARG_TYPE', 'options.dirtyTracking');
    argError(() => ioas.allocHwpt(device, { dirty: true } as never), 'TypeError', 'ERR_INVALID_ARG_VALUE', 'options.dirty');
    argError(() => hwpt.attach(stranger), 'TypeError', 'ERR_INVALID_ARG_TYPE', 'device');
    argError(() => hwpt.attach(buffer), 'TypeError', 'ERR_INVALID_ARG_TYPE', 'device');
    argError(() => hwpt.dirtyPages(BASE + 1n, PAGE), 'RangeError', 'ERR_VFIO_MISALIGNED', 'iova');
    argError(() => hwpt.dirtyPages(BASE, PAGE + 1n), 'RangeError', 'ERR_VFIO_MISALIGNED', 'size');
    argError(() => hwpt.dirtyPages(BASE, 0), 'RangeError', 'ERR_VFIO_MISALIGNED', 'size');
    argError(() => hwpt.dirtyPages(0xffff_ffff_ffff_f000n, 2n * PAGE), 'RangeError', 'ERR_OUT_OF_RANGE', 'size');
    argError(() => hwpt.dirtyPages(-1, PAGE), 'RangeError', 'ERR_OUT_OF_RANGE', 'iova');
    argError(() => hwpt.dirtyPages('0' as never, PAGE), 'TypeError', 'ERR_INVALID_ARG_TYPE', 'iova');
    argError(() => hwpt.dirtyPages(BASE, PAGE, { clear: 'no' as never }), 'TypeError', 'ERR_INVALID_ARG_TYPE', 'options.clear');
    argError(() => hwpt.dirtyPages(BASE, PAGE, { noClear: true } as never), 'TypeError', 'ERR_INVALID_ARG_VALUE', 'options.noClear');
    expect(fake.calls.length).toBe(calls);
    // A closed device is no longer a member; a closed IOAS allocates nothing.
    stranger.close();
    argError(() => otherIoas.allocHwpt(stranger), 'TypeError', 'ERR_INVALID_ARG_TYPE', 'device');
    otherIoas.close();
    expect(() => otherIoas.allocHwpt(device)).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    mapping.unmap();
    buffer.close();
    iommufd.close();
    expect(fake.iommufdObjects()).toEqual([]);
    expectNothingLeft(fake);
  });
});
