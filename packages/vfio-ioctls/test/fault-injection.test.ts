/**
 * Fault injection: a full open -> map -> MMIO -> IRQ -> close scenario is run
 * once to record its syscalls, then once per recorded step k with step k
 * failing. Whatever fails, the scenario's ordinary cleanup (`using`) must
 * leave no fd, mmap, DMA buffer, IOMMU mapping or poller behind. The one
 * thing a program must do beyond `using`: retry a free or munmap that itself
 * failed (the handle keeps owning that memory, so nothing is lost).
 */
import * as b from 'vfio-bindings';
import { Container, Device, DmaBuffer, Group, type RegionMapping, type VfioOptions } from '../src';
import type { FakeCall, FakeDeviceSpec, FakeKernel } from '../src/testing';
import { EDU, EDU2, GROUP, kernel } from './helpers';

const MSI = b.VFIO_PCI_MSI_IRQ_INDEX;
const DEVICES: FakeDeviceSpec[] = [
  { address: EDU, group: GROUP, reset: true },
  { address: EDU2, group: GROUP },
];

interface Handles {
  buffer?: DmaBuffer;
  small?: DmaBuffer;
  mmio?: RegionMapping;
}

/** What a careful program does; `using` runs the cleanup in reverse order. */
async function scenario(env: VfioOptions, handles: Handles): Promise<void> {
  // Declared first, so it is released last, after the device (and with it
  // the container) has dropped the mapping that pins it.
  using buffer = DmaBuffer.alloc(0x2000, env);
  handles.buffer = buffer;
  using small = DmaBuffer.alloc(0x1000, env);
  handles.small = small;
  using device = Device.open(EDU, env);
  using second = Device.open(EDU2, env); // shares the group and container
  using mapping = device.iommu!.map(buffer);
  buffer.bytes.fill(0xa5);
  using fixed = second.iommu!.map(small, { iova: 0x10_0000, write: false });
  void fixed;
  const bar = device.region(0)!;
  using mmio = bar.map();
  mmio.write32(0x04, 0x12345678);
  if (mmio.read32(0x04) !== 0x12345678) throw new Error('MMIO readback');
  bar.writeUint32(0x08, 1);
  device.config!.writeUint16(4, device.config!.readUint16(4) | 0x4); // bus master
  device.reset();
  using irqs = device.enableIrq(MSI);
  irqs.trigger();
  const event = await irqs.next();
  if (event.vector !== 0) throw new Error('wrong vector');
  void mapping;
  void second;
}

/** Every error code in an error and its suppressed/aggregated causes. */
function codes(error: unknown): string[] {
  if (error === null || typeof error !== 'object') return [];
  const e = error as { code?: string; error?: unknown; suppressed?: unknown; errors?: unknown[] };
  return [
    ...(e.code ? [e.code] : []),
    ...codes(e.error),
    ...codes(e.suppressed),
    ...(Array.isArray(e.errors) ? e.errors.flatMap(codes) : []),
  ];
}

function leftovers(fake: FakeKernel) {
  return {
    fds: fake.openFds(),
    mmaps: fake.liveMmaps(),
    buffers: fake.liveDmaBuffers(),
    mappings: fake.dmaMappings(),
    pollers: fake.livePollers(),
  };
}

const CLEAN = { fds: [], mmaps: 0, buffers: 0, mappings: [], pollers: 0 };

/** The fault that fails exactly call k of a recorded run. */
function faultFor(calls: FakeCall[], k: number) {
  const target = calls[k]!;
  const same = (c: FakeCall) => c.syscall === target.syscall && (target.request === undefined || c.request === target.request);
  return { syscall: target.syscall, request: target.request, errno: 'EIO', skip: calls.slice(0, k).filter(same).length };
}

/**
 * Records `scenario` once, then fails each of its steps in turn; after the
 * scenario's own cleanup the fake must hold nothing.
 */
function faultSuite(name: string, devices: FakeDeviceSpec[], scenario: (env: VfioOptions, handles: Handles) => Promise<void>, mustUse: string[]): void {
  describe(`fault injection: ${name}`, () => {
    let recorded: FakeCall[] = [];

    beforeAll(async () => {
      const { fake, env } = kernel(devices);
      await scenario(env, {});
      recorded = [...fake.calls];
    });

    test('the fault-free run is clean and long enough to mean something', async () => {
      const { fake, env } = kernel(devices);
      await scenario(env, {});
      expect(leftovers(fake)).toEqual(CLEAN);
      expect(recorded.length).toBeGreaterThan(40);
      const kinds = new Set(recorded.map((c) => c.syscall));
      for (const syscall of mustUse) expect(kinds).toContain(syscall);
    });

    test('failing any one step k leaves nothing behind', async () => {
      const failures: string[] = [];
      for (let k = 0; k < recorded.length; k++) {
        const { fake, env } = kernel(devices);
        const fault = faultFor(recorded, k);
        fake.failNext(fault);
        const handles: Handles = {};
        let outcome: unknown = 'resolved';
        try {
          await scenario(env, handles);
        } catch (error) {
          outcome = error;
        }
        // A failed free or munmap leaves the memory owned by its handle, for
        // the program to retry (nothing is lost); retry as a program would.
        if (handles.mmio?.mapped) handles.mmio.unmap();
        for (const buffer of [handles.buffer, handles.small]) {
          if (buffer && !buffer.closed && !buffer.mapped) buffer.close();
        }
        const step = `step ${k} (${fault.syscall}${fault.request === undefined ? '' : ` 0x${(fault.request >>> 0).toString(16)}`}, skip ${fault.skip})`;
        if (fake.pendingFaults() !== 0) failures.push(`${step}: the fault never fired`);
        else if (!codes(outcome).includes('EIO')) failures.push(`${step}: the failure was not reported (${String(outcome)})`);
        const left = JSON.stringify(leftovers(fake), (_, v) => (typeof v === 'bigint' ? v.toString() : v));
        if (left !== JSON.stringify(CLEAN)) failures.push(`${step}: left ${left}`);
        fake.dispose();
      }
      expect(failures).toEqual([]);
    });
  });
}

faultSuite('Device.open, DMA, MMIO, config, reset, MSI', DEVICES, scenario, [
  'open', 'ioctl', 'close', 'mmap', 'munmap', 'eventfd', 'watchEventfds', 'allocDma', 'freeDma', 'pread', 'pwrite', 'eventfdRead',
]);

const MSIX = b.VFIO_PCI_MSIX_IRQ_INDEX;
const RWM = b.VFIO_REGION_INFO_FLAG_READ | b.VFIO_REGION_INFO_FLAG_WRITE | b.VFIO_REGION_INFO_FLAG_MMAP;
const EXPLICIT_DEVICES: FakeDeviceSpec[] = [
  {
    address: EDU, group: GROUP, hotResetDependents: [EDU, EDU2],
    regions: [{ index: 0, size: 0x10000, flags: RWM, sparseAreas: [{ offset: 0, size: 0x2000 }, { offset: 0x8000, size: 0x8000 }] }, { index: 7, size: 256 }],
    irqs: [{ index: MSIX, count: 8 }],
  },
  { address: EDU2, group: GROUP },
];

/** The explicit path: container and group by hand, two devices, MSI-X ranges, unmapAll, cascade close. */
async function explicitScenario(env: VfioOptions, handles: Handles): Promise<void> {
  using buffer = DmaBuffer.alloc(0x4000, env);
  handles.buffer = buffer;
  using container = Container.open(env);
  using group = Group.open(GROUP, env);
  group.attach(container);
  const device = group.openDevice(EDU);
  group.openDevice(EDU2);
  container.iommuInfo();
  container.map(buffer, { iova: 0x20_0000 });
  container.map(buffer); // the same buffer twice, at an allocated IOVA
  const info = device.hotResetInfo();
  if (info.devices.length !== 2) throw new Error('hot reset info');
  device.hotReset();
  const mmio = device.region(0)!.map();
  handles.mmio = mmio;
  mmio.write32(0x8004, 5);
  const low = device.enableIrq(MSIX, { start: 4, count: 4 });
  const high = device.enableIrq(MSIX, { start: 0, count: 2 });
  low.trigger(5);
  if ((await low.next()).vector !== 5) throw new Error('wrong vector');
  high.disable();
  container.unmapAll();
  // Left for close() to undo: the mmap, the other vectors, both devices, the attach.
}

faultSuite('explicit Container and Group, sparse mmap, MSI-X ranges, hot reset', EXPLICIT_DEVICES, explicitScenario, [
  'open', 'ioctl', 'close', 'mmap', 'munmap', 'eventfd', 'watchEventfds', 'allocDma', 'freeDma', 'eventfdRead',
]);
