/** Shared set-up for the tests that run against the fake kernel. */
import { FakeKernel, type FakeDevice, type FakeDeviceSpec, type FakeKernelOptions } from '../src/testing';
import { VfioError, type Backend, type VfioOptions } from '../src';

export const EDU = '0000:00:03.0';
export const EDU2 = '0000:00:04.0';
export const GROUP = 5;

export interface Kernel {
  fake: FakeKernel;
  env: VfioOptions;
  /** The fake devices, in the order given. */
  devices: FakeDevice[];
}

const live: FakeKernel[] = [];

/** A fake kernel with the given devices (default: one edu-like device in group 5). */
export function kernel(devices: FakeDeviceSpec[] = [{ address: EDU, group: GROUP }], options?: FakeKernelOptions): Kernel {
  const fake = new FakeKernel(options);
  live.push(fake);
  const added = devices.map((spec) => fake.addDevice(spec));
  return { fake, devices: added, env: { backend: fake, devRoot: fake.devRoot, sysfsRoot: fake.sysfsRoot } };
}

afterEach(() => {
  for (const fake of live.splice(0)) fake.dispose();
});

/** Asserts the fake holds nothing the library opened. */
export function expectNothingLeft(fake: FakeKernel): void {
  expect({
    fds: fake.openFds(),
    mmaps: fake.liveMmaps(),
    buffers: fake.liveDmaBuffers(),
    mappings: fake.dmaMappings(),
  }).toEqual({ fds: [], mmaps: 0, buffers: 0, mappings: [] });
}

/** The ioctl request numbers the fake saw, in order, from `from` on. */
export function ioctls(fake: FakeKernel, from = 0): number[] {
  return fake.calls.slice(from).filter((c) => c.syscall === 'ioctl').map((c) => c.request! >>> 0);
}

/** Lets the event loop run pending poller callbacks. */
export function tick(ms = 0): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The fake's Backend methods, bound to it, with some replaced: for faults the fake cannot express. */
export function wrap(fake: FakeKernel, overrides: Partial<Backend>): Backend {
  const bound: Record<string, unknown> = {};
  for (const [name, descriptor] of Object.entries(Object.getOwnPropertyDescriptors(Object.getPrototypeOf(fake)))) {
    const value = descriptor.value as unknown;
    if (typeof value === 'function' && name !== 'constructor') bound[name] = (value as (...a: unknown[]) => unknown).bind(fake);
  }
  return { ...(bound as unknown as Backend), ...overrides };
}

/** The error `fn` throws, for assertions on its fields; fails the test when it throws nothing. */
export function thrown(fn: () => unknown): Record<string, unknown> {
  try {
    fn();
  } catch (error) {
    return error as Record<string, unknown>;
  }
  throw new Error('expected the call to throw');
}

/** The VfioError `fn` throws; anything else it throws, or nothing, fails the test. */
export function thrownVfio(fn: () => unknown): VfioError {
  const error = thrown(fn);
  if (error instanceof VfioError) return error;
  throw error;
}
