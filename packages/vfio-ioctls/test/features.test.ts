/** VFIO_DEVICE_FEATURE through the safe API: the feature list, probe/get/set, and errors naming the feature. */
import * as b from 'vfio-bindings';
import { Device, VfioError } from '../src';
import type { FakeDeviceSpec } from '../src/testing';
import { EDU, GROUP, expectNothingLeft, ioctls, kernel, thrownVfio as thrown } from './helpers';

const MIGRATABLE: FakeDeviceSpec = {
  address: EDU, group: GROUP, reset: true,
  migration: { flags: b.VFIO_MIGRATION_STOP_COPY | b.VFIO_MIGRATION_P2P | b.VFIO_MIGRATION_PRE_COPY },
  dmaLogging: true,
};


describe('features()', () => {
  test('a plain vfio-pci device: low power only', () => {
    const { fake, env } = kernel();
    using device = Device.open(EDU, env);
    const features = device.features();
    expect(features.supported).toEqual([
      { name: 'LOW_POWER_ENTRY', id: b.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, get: false, set: true },
      { name: 'LOW_POWER_ENTRY_WITH_WAKEUP', id: b.VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, get: false, set: true },
      { name: 'LOW_POWER_EXIT', id: b.VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, get: false, set: true },
    ]);
    expect(features).toMatchObject({ dmaLogging: false, lowPower: true, lowPowerWakeup: true, busMaster: false, vfToken: false });
    expect(features.migration).toBeUndefined();
    // Every probe carried PROBE and one access: no GET or SET reached a feature.
    const flags = fake.calls.filter((c) => c.request === b.VFIO_DEVICE_FEATURE).length;
    expect(flags).toBe(2 * 14);
    device.close();
    expectNothingLeft(fake);
  });

  test('a migratable device with DMA logging: its accesses and typed migration flags', () => {
    const { env } = kernel([MIGRATABLE]);
    using device = Device.open(EDU, env);
    const features = device.features();
    const byName = Object.fromEntries(features.supported.map((f) => [f.name, [f.get, f.set]]));
    expect(byName).toEqual({
      MIGRATION: [true, false],
      MIG_DEVICE_STATE: [true, true],
      LOW_POWER_ENTRY: [false, true],
      LOW_POWER_ENTRY_WITH_WAKEUP: [false, true],
      LOW_POWER_EXIT: [false, true],
      DMA_LOGGING_START: [false, true],
      DMA_LOGGING_STOP: [false, true],
      DMA_LOGGING_REPORT: [true, false],
      MIG_DATA_SIZE: [true, false],
      MIG_PRECOPY_INFOv2: [false, true],
    });
    expect(features.migration).toEqual({ stopCopy: true, p2p: true, preCopy: true, bits: 7n });
    expect(features.dmaLogging).toBe(true);
  });

  test('migration flags follow the device: STOP_COPY only', () => {
    const { env } = kernel([{ address: EDU, group: GROUP, migration: { flags: b.VFIO_MIGRATION_STOP_COPY }, lowPower: false }]);
    using device = Device.open(EDU, env);
    const features = device.features();
    expect(features.migration).toEqual({ stopCopy: true, p2p: false, preCopy: false, bits: 1n });
    expect(features.lowPower).toBe(false);
    expect(device.migration.states).toEqual(['ERROR', 'STOP', 'RUNNING', 'STOP_COPY', 'RESUMING']);
  });
});

describe('probe, get and set', () => {
  test('probeFeature answers per access', () => {
    const { env } = kernel([MIGRATABLE]);
    using device = Device.open(EDU, env);
    expect(device.probeFeature('MIGRATION')).toBe(true);
    expect(device.probeFeature('MIGRATION', 'get')).toBe(true);
    expect(device.probeFeature('MIGRATION', 'set')).toBe(false);
    expect(device.probeFeature('BUS_MASTER')).toBe(false);
    expect(device.probeFeature('PCI_VF_TOKEN')).toBe(false);
  });

  test('getFeature returns the kernel\'s bytes; setFeature sends the caller\'s', () => {
    const { fake, env } = kernel([MIGRATABLE]);
    using device = Device.open(EDU, env);
    const migration = device.getFeature('MIGRATION', 8);
    expect(b.vfio_device_feature_migration.decode(migration).flags).toBe(7n);
    const state = device.getFeature('MIG_DEVICE_STATE', 8);
    expect(b.vfio_device_feature_mig_state.decode(state)).toEqual({ device_state: b.VFIO_DEVICE_STATE_RUNNING, data_fd: -1 });
    device.setFeature('MIG_DEVICE_STATE', b.vfio_device_feature_mig_state.encode({ device_state: b.VFIO_DEVICE_STATE_STOP, data_fd: -1 }));
    expect(fake.device(EDU)!.features.migration!.state).toBe('STOP');
    device.setFeature('LOW_POWER_ENTRY');
    expect(fake.device(EDU)!.features.lowPower!.entered).toBe(true);
  });

  test('a refused feature names the feature, the access and the kernel\'s answer', () => {
    const { env } = kernel([MIGRATABLE]);
    using device = Device.open(EDU, env);
    const set = thrown(() => device.setFeature('MIGRATION', new Uint8Array(8)));
    expect(set).toMatchObject({ code: 'EINVAL', operation: 'VFIO_DEVICE_FEATURE', syscall: 'ioctl', device: EDU });
    expect(set.message).toMatch(/^EINVAL: VFIO_DEVICE_FEATURE SET MIGRATION refused on 0000:00:03.0/);
    const bus = thrown(() => device.setBusMaster(true));
    expect(bus.code).toBe('ENOTTY');
    expect(bus.message).toMatch(/SET BUS_MASTER refused/);
    expect(bus.hint).toMatch(/PCI_COMMAND_MASTER/);
    device.enterLowPower();
    const again = thrown(() => device.enterLowPower());
    expect(again.code).toBe('EINVAL');
    expect(again.hint).toMatch(/already entered/);
  });

  test('a feature the device lacks: ENOTTY with where the feature comes from', () => {
    const { env } = kernel();
    using device = Device.open(EDU, env);
    const error = thrown(() => device.getFeature('MIGRATION', 8));
    expect(error.code).toBe('ENOTTY');
    expect(error.hint).toMatch(/does not offer MIGRATION: only devices with a migration driver/);
    const migration = thrown(() => device.migration);
    expect(migration).toMatchObject({ code: 'ERR_VFIO_UNSUPPORTED', operation: 'VFIO_DEVICE_FEATURE' });
  });

  test('bad arguments are refused before any syscall', () => {
    const { fake, env } = kernel();
    using device = Device.open(EDU, env);
    const before = ioctls(fake).length;
    expect(() => device.probeFeature('NOPE' as never)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => device.probeFeature('MIGRATION', 'probe' as never)).toThrow(RangeError);
    expect(() => device.getFeature(1 as never, 8)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => device.getFeature('MIGRATION', -1)).toThrow(RangeError);
    expect(() => device.setFeature('LOW_POWER_ENTRY', [1] as never)).toThrow(TypeError);
    expect(() => device.setBusMaster(1 as never)).toThrow(TypeError);
    expect(ioctls(fake).length).toBe(before);
  });

  test('a closed device refuses every feature call', () => {
    const { env } = kernel([MIGRATABLE]);
    const device = Device.open(EDU, env);
    device.close();
    for (const call of [() => device.features(), () => device.probeFeature('MIGRATION'), () => device.migration, () => device.enterLowPower()]) {
      expect(call).toThrow(expect.objectContaining({ code: 'ERR_VFIO_CLOSED' }));
    }
  });
});
