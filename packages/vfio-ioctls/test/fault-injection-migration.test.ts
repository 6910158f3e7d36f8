/**
 * Fault injection over migration and the device features, as
 * fault-injection.test.ts does for the open/DMA/IRQ path: the scenario (an
 * ioeventfd, a PRE_COPY save streamed through STOP_COPY into a second
 * device's RESUMING, low power, DMA logging) runs once to record its
 * syscalls, then once per step with that step failing (EIO). The failure
 * must be reported, and after the scenario's own cleanup (`using`) the
 * fake must hold no fd (device, group, container, data session, eventfd),
 * mapping, DMA buffer or poller.
 */
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as b from 'vfio-bindings';
import { Device, VfioError, type VfioOptions } from '../src';
import type { FakeCall, FakeDeviceSpec, FakeKernel } from '../src/testing';
import { EDU, EDU2, kernel } from './helpers';

const RW = b.VFIO_REGION_INFO_FLAG_READ | b.VFIO_REGION_INFO_FLAG_WRITE;
const migratable = (address: string, group: number): FakeDeviceSpec => ({
  address, group, reset: true, dmaLogging: true,
  regions: [{ index: 0, size: 0x1000, flags: RW }, { index: 7, size: 256 }],
  migration: { flags: b.VFIO_MIGRATION_STOP_COPY | b.VFIO_MIGRATION_P2P | b.VFIO_MIGRATION_PRE_COPY },
});
const DEVICES = [migratable(EDU, 5), migratable(EDU2, 6)];

async function scenario(env: VfioOptions): Promise<void> {
  using source = Device.open(EDU, env);
  using target = Device.open(EDU2, env);
  source.region(0)!.write(0, Uint8Array.from({ length: 0x100 }, (_, i) => i));
  using ioeventfd = source.ioeventfd({ region: 0, offset: 0x100, width: 4, value: 0xfeed });
  ioeventfd.signal();

  const save = source.migration.setState('PRE_COPY')!;
  if (save.precopyInfo().initialBytes === 0n) throw new Error('no initial data');
  const chunks: Uint8Array[] = [];
  const reading = (async () => {
    for await (const chunk of save.createReadStream({ highWaterMark: 1024 })) chunks.push(chunk);
  })();
  // When a later step fails, the device's close fails this save: handled here, reported by the step.
  reading.catch(() => {});
  await new Promise((resolve) => setImmediate(resolve));
  source.migration.setState('STOP_COPY');
  await reading;
  const resume = target.migration.setState('RESUMING')!;
  await pipeline(Readable.from(chunks), resume.createWriteStream());
  target.migration.setState('RUNNING');
  source.migration.setState('RUNNING');
  if (target.region(0)!.readUint32(0x100) !== 0xfeed) throw new Error('the ioeventfd write did not migrate');
  if (target.migration.dataSize() === 0n) throw new Error('no data size');

  source.enterLowPower();
  source.exitLowPower();
  const wakeup = target.enterLowPowerWithWakeup();
  if (wakeup.signalled()) throw new Error('woken before any access');
  target.exitLowPower();

  using log = target.startDmaLogging({ ranges: [{ iova: 0x10_0000, size: 0x4000 }] });
  if (log.report().length !== 0) throw new Error('dirty without DMA');
  // Left for close to undo: the ioeventfd, the DMA log, both devices.
}

function leftovers(fake: FakeKernel) {
  return { fds: fake.openFds(), mmaps: fake.liveMmaps(), buffers: fake.liveDmaBuffers(), mappings: fake.dmaMappings(), pollers: fake.livePollers() };
}

const CLEAN = { fds: [], mmaps: 0, buffers: 0, mappings: [], pollers: 0 };

/** The fault that fails exactly call k of a recorded run. */
function faultFor(calls: FakeCall[], k: number) {
  const target = calls[k]!;
  const same = (c: FakeCall) => c.syscall === target.syscall && (target.request === undefined || c.request === target.request);
  return { syscall: target.syscall, request: target.request, errno: 'EIO', skip: calls.slice(0, k).filter(same).length };
}

/** An error and the errors it carries (SuppressedError from `using`, AggregateError). */
function errorsIn(error: unknown): unknown[] {
  if (error === null || typeof error !== 'object') return [];
  const e = error as { error?: unknown; suppressed?: unknown; errors?: unknown[] };
  return [error, ...errorsIn(e.error), ...errorsIn(e.suppressed), ...(Array.isArray(e.errors) ? e.errors.flatMap(errorsIn) : [])];
}

/** The ioctls of the scenario by request number: a failed one must be reported under its name. */
const IOCTL_NAMES = new Map<number, string>(
  [
    'VFIO_GET_API_VERSION', 'VFIO_CHECK_EXTENSION', 'VFIO_SET_IOMMU', 'VFIO_GROUP_GET_STATUS', 'VFIO_GROUP_SET_CONTAINER',
    'VFIO_GROUP_UNSET_CONTAINER', 'VFIO_GROUP_GET_DEVICE_FD', 'VFIO_DEVICE_GET_INFO', 'VFIO_DEVICE_GET_REGION_INFO',
    'VFIO_DEVICE_FEATURE', 'VFIO_DEVICE_IOEVENTFD', 'VFIO_MIG_GET_PRECOPY_INFO',
  ].map((name) => [(b as unknown as Record<string, number>)[name] >>> 0, name]),
);

/** Whether `error` reports the injected EIO of `call`: its syscall, and for an ioctl its name. */
function reports(error: unknown, call: FakeCall): boolean {
  const operation = call.syscall === 'ioctl' ? IOCTL_NAMES.get(call.request! >>> 0) : undefined;
  if (call.syscall === 'ioctl' && !operation) throw new Error(`unexpected ioctl 0x${(call.request! >>> 0).toString(16)}: add it to IOCTL_NAMES`);
  // An eventfd is read and written with read(2) and write(2): errors name those.
  const syscall = { eventfdRead: 'read', eventfdWrite: 'write' }[call.syscall] ?? call.syscall;
  return errorsIn(error).some((e) => e instanceof VfioError && e.code === 'EIO' && e.syscall === syscall && (operation === undefined || e.operation === operation));
}

describe('fault injection: migration save/restore, ioeventfd, low power, DMA logging', () => {
  let recorded: FakeCall[] = [];

  beforeAll(async () => {
    const { fake, env } = kernel(DEVICES);
    await scenario(env);
    recorded = [...fake.calls];
  });

  test('the fault-free run is clean and uses every kind of step', async () => {
    const { fake, env } = kernel(DEVICES);
    await scenario(env);
    expect(leftovers(fake)).toEqual(CLEAN);
    const kinds = new Set(recorded.map((c) => c.syscall));
    for (const syscall of ['open', 'ioctl', 'close', 'read', 'write', 'eventfd', 'eventfdWrite', 'eventfdRead', 'allocDma', 'freeDma', 'pread', 'pwrite']) {
      expect(kinds).toContain(syscall);
    }
    const requests = new Set(recorded.map((c) => c.request));
    for (const request of [b.VFIO_DEVICE_FEATURE, b.VFIO_DEVICE_IOEVENTFD, b.VFIO_MIG_GET_PRECOPY_INFO]) expect(requests).toContain(request);
  });

  test('failing any one step k is reported and leaves nothing behind', async () => {
    const failures: string[] = [];
    for (let k = 0; k < recorded.length; k++) {
      const { fake, env } = kernel(DEVICES);
      const fault = faultFor(recorded, k);
      fake.failNext(fault);
      let outcome: unknown = 'resolved';
      try {
        await scenario(env);
      } catch (error) {
        outcome = error;
      }
      // Pollers and closes settle on the loop.
      await new Promise((resolve) => setImmediate(resolve));
      const step = `step ${k} (${fault.syscall}${fault.request === undefined ? '' : ` 0x${(fault.request >>> 0).toString(16)}`}, skip ${fault.skip})`;
      if (fake.pendingFaults() !== 0) failures.push(`${step}: the fault never fired`);
      else if (!reports(outcome, recorded[k]!)) failures.push(`${step}: not reported as such (${String(outcome)})`);
      const found = leftovers(fake);
      // The one thing nobody can retry: a failed free of the library's
      // scratch memory for an ioctl's pointer (DMA logging's ranges and
      // bitmap); the fake keeps memory whose free failed, the addon forgets it.
      if (fault.syscall === 'freeDma') found.buffers -= 1;
      const left = JSON.stringify(found, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
      if (left !== JSON.stringify(CLEAN)) failures.push(`${step}: left ${left}`);
      fake.dispose();
    }
    expect(failures).toEqual([]);
  });
});
