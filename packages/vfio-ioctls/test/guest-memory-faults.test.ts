/**
 * Fault injection over the guest memory calls, as fault-injection.test.ts
 * does for the rest: each scenario runs once to record its syscalls, then
 * once per recorded step k with step k failing (EIO). The error must be a
 * VfioError naming the syscall (and the ioctl) that failed, and after the
 * scenario's own cleanup the fake must hold no fd, mmap, IOMMU mapping or
 * pinned buffer, and every huge page must be back in the pool.
 */
import { isDeepStrictEqual } from 'node:util';
import * as b from 'vfio-bindings';
import { Container, Device, DmaBuffer, Group, VfioError, type Ioas, type VfioOptions } from '../src';
import type { FakeCall, FakeKernel, FakeKernelOptions } from '../src/testing';
import { EDU, GROUP, kernel } from './helpers';

const HUGE = 2 * 1024 * 1024;
const POOL = 4;
const OPTIONS: FakeKernelOptions = { hugePages: [{ size: HUGE, count: POOL }], deviceCdevs: true };

const IOCTL_NAMES = new Map<number, string>(
  [
    'VFIO_GET_API_VERSION', 'VFIO_CHECK_EXTENSION', 'VFIO_SET_IOMMU', 'VFIO_GROUP_GET_STATUS', 'VFIO_GROUP_SET_CONTAINER',
    'VFIO_GROUP_UNSET_CONTAINER', 'VFIO_IOMMU_GET_INFO', 'VFIO_IOMMU_MAP_DMA', 'VFIO_IOMMU_UNMAP_DMA',
    'IOMMU_IOAS_ALLOC', 'IOMMU_IOAS_IOVA_RANGES', 'IOMMU_IOAS_MAP_FILE', 'IOMMU_IOAS_UNMAP', 'IOMMU_DESTROY',
    'VFIO_DEVICE_BIND_IOMMUFD', 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', 'VFIO_DEVICE_GET_INFO',
  ].map((name) => [(b as unknown as Record<string, number>)[name] >>> 0, name]),
);
// The syscall a VfioError names for each fake Backend method.
const SYSCALLS: Record<string, string> = { memfd: 'memfd_create', memfdDup: 'fcntl' };

type Scenario = (env: VfioOptions, buffers: DmaBuffer[]) => void;

/**
 * Guest RAM of two huge pages on the legacy container: each page mapped at
 * its own IOVA, the first unmapped by range, every vaddr invalidated and
 * the second given a new one in a second buffer over the same memfd.
 */
const containerScenario: Scenario = (env, buffers) => {
  using ram = DmaBuffer.alloc(2 * HUGE, { ...env, hugePageSize: HUGE });
  buffers.push(ram);
  using container = Container.open(env);
  using group = Group.open(GROUP, env);
  group.attach(container);
  container.map(ram, { offset: 0, size: HUGE, iova: 0x4000_0000n });
  const high = container.map(ram, { offset: HUGE, size: HUGE, iova: 0x4020_0000n });
  container.unmapRange(0x4000_0000n, BigInt(HUGE));
  container.invalidateVaddr();
  const fd = ram.dupMemfd();
  try {
    using fresh = DmaBuffer.fromMemfd(fd, env);
    buffers.push(fresh);
    container.updateVaddr(high, fresh, HUGE).unmap();
  } finally {
    env.backend!.close(fd);
  }
};

/** The same memory mapped by fd into an IOAS, a part of it (IOMMU_IOAS_MAP_FILE with start). */
const iommufdScenario: Scenario = (env, buffers) => {
  using ram = DmaBuffer.alloc(2 * HUGE, { ...env, hugePageSize: HUGE });
  buffers.push(ram);
  using device = Device.open(EDU, { ...env, iommu: 'iommufd' });
  const ioas = device.iommu as Ioas;
  ioas.mapFile(ram, { offset: HUGE, size: HUGE, iova: 0x4000_0000n });
  ioas.unmapRange(0x4000_0000n, BigInt(HUGE));
};

function leftovers(fake: FakeKernel, buffers: DmaBuffer[]) {
  return {
    fds: fake.openFds(),
    mmaps: fake.liveMmaps(),
    mappings: fake.dmaMappings(),
    iommufdObjects: fake.iommufdObjects(),
    pinnedBuffers: buffers.filter((buffer) => buffer.mapped).length,
    hugePagesFree: fake.hugePagesFree(HUGE),
  };
}

const CLEAN = { fds: [], mmaps: 0, mappings: [], iommufdObjects: [], pinnedBuffers: 0, hugePagesFree: POOL };

function setUp() {
  const k = kernel(undefined, OPTIONS);
  return { fake: k.fake, env: { ...k.env, iommufdPath: k.fake.iommuPath } };
}

function expectedError(call: FakeCall): { syscall: string; operation?: string } {
  if (call.syscall !== 'ioctl') return { syscall: SYSCALLS[call.syscall] ?? call.syscall };
  const operation = IOCTL_NAMES.get(call.request! >>> 0);
  if (!operation) throw new Error(`unexpected ioctl 0x${(call.request! >>> 0).toString(16)}: add it to IOCTL_NAMES`);
  return { syscall: 'ioctl', operation };
}

/** Every error in an error and its suppressed/aggregated causes. */
function errorsIn(error: unknown): unknown[] {
  if (error === null || typeof error !== 'object') return [];
  const e = error as { error?: unknown; suppressed?: unknown; errors?: unknown[] };
  return [error, ...errorsIn(e.error), ...errorsIn(e.suppressed), ...(Array.isArray(e.errors) ? e.errors.flatMap(errorsIn) : [])];
}

function faultSuite(name: string, scenario: Scenario, mustUse: string[]): void {
  describe(`fault injection: ${name}`, () => {
    let recorded: FakeCall[] = [];

    beforeAll(() => {
      const { fake, env } = setUp();
      scenario(env, []);
      recorded = [...fake.calls];
      fake.dispose();
    });

    test('the fault-free run is clean and makes every call under test', () => {
      const { fake, env } = setUp();
      const buffers: DmaBuffer[] = [];
      scenario(env, buffers);
      expect(leftovers(fake, buffers)).toEqual(CLEAN);
      const made = new Set(recorded.map((c) => expectedError(c).operation ?? expectedError(c).syscall));
      for (const call of mustUse) expect(made).toContain(call);
    });

    test('failing any one step k is reported as that step and leaves nothing behind', () => {
      const failures: string[] = [];
      for (let k = 0; k < recorded.length; k++) {
        const { fake, env } = setUp();
        const target = recorded[k]!;
        const same = (c: FakeCall) => c.syscall === target.syscall && (target.request === undefined || c.request === target.request);
        const fault = { syscall: target.syscall, request: target.request, errno: 'EIO', skip: recorded.slice(0, k).filter(same).length };
        fake.failNext(fault);
        const buffers: DmaBuffer[] = [];
        let outcome: unknown = 'returned';
        try {
          scenario(env, buffers);
        } catch (error) {
          outcome = error;
        }
        // A failed munmap leaves the memory owned by its buffer, for the program to retry.
        for (const buffer of buffers.filter((x) => !x.closed && !x.mapped)) buffer.close();
        const want = expectedError(target);
        const step = `step ${k} (${want.syscall}${want.operation ? ` ${want.operation}` : ''}, skip ${fault.skip})`;
        const reported = errorsIn(outcome).some((e) => e instanceof VfioError && e.code === 'EIO' && e.syscall === want.syscall && e.operation === want.operation);
        if (fake.pendingFaults() !== 0) failures.push(`${step}: the fault never fired`);
        else if (!reported) failures.push(`${step}: not reported as such (${String(outcome)})`);
        const left = leftovers(fake, buffers);
        if (!isDeepStrictEqual(left, CLEAN)) failures.push(`${step}: left ${JSON.stringify(left, (_, v) => (typeof v === 'bigint' ? v.toString() : v))}`);
        fake.dispose();
      }
      expect(failures).toEqual([]);
    });
  });
}

faultSuite('huge page guest memory on the container: map parts, unmapRange, invalidate and update vaddrs', containerScenario, [
  'memfd_create', 'fcntl', 'mmap', 'munmap', 'close', 'VFIO_IOMMU_MAP_DMA', 'VFIO_IOMMU_UNMAP_DMA', 'VFIO_CHECK_EXTENSION',
]);

faultSuite('huge page guest memory mapped by fd into an IOAS, a part of it', iommufdScenario, [
  'memfd_create', 'mmap', 'munmap', 'IOMMU_IOAS_MAP_FILE', 'IOMMU_IOAS_UNMAP',
]);
