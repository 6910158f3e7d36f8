/**
 * VFIO_DEVICE_FEATURE on a fake device, as vfio_main.c dispatches it (the
 * core's migration and DMA logging features, then the driver's own: vfio-pci's
 * low power ones), with vfio_check_feature()'s rules for PROBE, GET and SET.
 */
import {
  vfio_device_feature, vfio_device_feature_dma_logging_control, vfio_device_feature_dma_logging_range,
  vfio_device_feature_dma_logging_report, vfio_device_feature_mig_data_size, vfio_device_feature_mig_state,
  vfio_device_feature_migration, vfio_device_low_power_entry_with_wakeup,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, VFIO_DEVICE_FEATURE_DMA_LOGGING_START, VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
  VFIO_DEVICE_FEATURE_GET, VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
  VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, VFIO_DEVICE_FEATURE_MASK, VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2, VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_PROBE, VFIO_DEVICE_FEATURE_SET, VFIO_MIGRATION_PRE_COPY, type StructCodec,
} from 'vfio-bindings';
import { checkArgsz, decodeFixed, offsetOfEnd } from './abi';
import { Errno } from './errno';
import { FakeDmaLog } from './fake-dma-log';
import type { EventfdLookup } from './fake-irqs';
import { FakeIoeventfds, type IoeventfdDevice } from './fake-ioeventfd';
import { FakeLowPower } from './fake-low-power';
import { FakeMigration, type FakeMigrationFile, type FakeMigrationSpec, type MigrationDevice } from './fake-migration';

/** The features a fake device declares (FakeDeviceSpec). */
export interface FakeFeatureSpec {
  migration?: FakeMigrationSpec;
  dmaLogging?: boolean;
  lowPower?: boolean;
}

/** What the feature ioctls need of the kernel around the device. */
export interface FeatureContext {
  eventfd: EventfdLookup;
  /** Installs a migration data file in the fd table; returns its fd. */
  installMigrationFile(file: FakeMigrationFile): number;
  /** copy_from_user / copy_to_user through a pointer in an ioctl struct. */
  userBytes(address: bigint, length: number, write: boolean): Uint8Array;
}

/** The feature side of one fake device: migration, DMA logging, low power and ioeventfds. */
export class FakeDeviceFeatures {
  readonly migration: FakeMigration | undefined;
  readonly dmaLog: FakeDmaLog | undefined;
  readonly lowPower: FakeLowPower | undefined;
  readonly ioeventfds: FakeIoeventfds;
  /** MIG_PRECOPY_INFOv2 was set. */
  precopyInfoV2 = false;

  constructor(spec: FakeFeatureSpec, device: MigrationDevice & IoeventfdDevice, pageSize: number) {
    this.migration = spec.migration ? new FakeMigration(spec.migration, device) : undefined;
    this.dmaLog = spec.dmaLogging ? new FakeDmaLog(pageSize) : undefined;
    this.lowPower = spec.lowPower === false ? undefined : new FakeLowPower();
    this.ioeventfds = new FakeIoeventfds(device);
  }

  /** VFIO_DEVICE_RESET. */
  reset(): void {
    this.migration?.reset();
  }

  /** The device's last fd closed (vfio_pci_core_close_device, a driver's close_device). */
  closed(): void {
    this.ioeventfds.clear();
    this.lowPower?.exit();
    this.migration?.closed();
    this.dmaLog?.stop();
  }

  /** VFIO_DEVICE_FEATURE. */
  ioctl(bytes: Uint8Array, ctx: FeatureContext): number {
    const minsz = offsetOfEnd(vfio_device_feature, 'flags');
    const hdr = decodeFixed(vfio_device_feature, bytes);
    checkArgsz(bytes, hdr.argsz, minsz);
    const known = VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE;
    if (hdr.flags & ~known) throw new Errno('EINVAL');
    const getAndSet = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET;
    if (!(hdr.flags & VFIO_DEVICE_FEATURE_PROBE) && (hdr.flags & getAndSet) === getAndSet) throw new Errno('EINVAL');
    const request = new FeatureRequest(hdr.flags, hdr.argsz - minsz, bytes.subarray(minsz));
    switch (hdr.flags & VFIO_DEVICE_FEATURE_MASK) {
      case VFIO_DEVICE_FEATURE_MIGRATION: return this.migrationFlags(request);
      case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE: return this.migState(request, ctx);
      case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE: return this.dataSize(request);
      case VFIO_DEVICE_FEATURE_MIG_PRECOPY_INFOv2:
        if (!this.migration || !(this.migration.flags & VFIO_MIGRATION_PRE_COPY)) throw new Errno('EINVAL');
        if (request.check(VFIO_DEVICE_FEATURE_SET, 0)) this.precopyInfoV2 = true;
        return 0;
      case VFIO_DEVICE_FEATURE_DMA_LOGGING_START: return this.logStart(request, ctx);
      case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
        if (this.need(this.dmaLog) && request.check(VFIO_DEVICE_FEATURE_SET, 0)) this.dmaLog.stop();
        return 0;
      case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT: return this.logReport(request, ctx);
      case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY:
        if (this.need(this.lowPower) && request.check(VFIO_DEVICE_FEATURE_SET, 0)) this.lowPower.enter(null);
        return 0;
      case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP: return this.lowPowerWithWakeup(request, ctx);
      case VFIO_DEVICE_FEATURE_LOW_POWER_EXIT:
        if (this.need(this.lowPower) && request.check(VFIO_DEVICE_FEATURE_SET, 0)) this.lowPower.exit();
        return 0;
      // PCI_VF_TOKEN (no SR-IOV PF here), BUS_MASTER (CDX only), DMA_BUF, ZPCI_ERROR and unknown features.
      default: throw new Errno('ENOTTY');
    }
  }

  /** The feature exists on this device, or ENOTTY. */
  private need<T>(model: T | undefined): model is T {
    if (model === undefined) throw new Errno('ENOTTY');
    return true;
  }

  private migrationFlags(request: FeatureRequest): number {
    if (this.need(this.migration) && request.check(VFIO_DEVICE_FEATURE_GET, vfio_device_feature_migration.size)) {
      request.answer(vfio_device_feature_migration, { flags: BigInt(this.migration.flags) });
    }
    return 0;
  }

  private migState(request: FeatureRequest, ctx: FeatureContext): number {
    if (!this.need(this.migration) || !request.check(VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET, vfio_device_feature_mig_state.size)) return 0;
    if (request.flags & VFIO_DEVICE_FEATURE_GET) {
      request.answer(vfio_device_feature_mig_state, { device_state: this.migration.getState(), data_fd: -1 });
      return 0;
    }
    const { device_state: target } = request.read(vfio_device_feature_mig_state);
    let file: FakeMigrationFile | null;
    try {
      file = this.migration.setState(target);
    } catch (error) {
      // The core writes data_fd -1 back before returning the driver's error.
      request.answer(vfio_device_feature_mig_state, { device_state: target, data_fd: -1 });
      throw error;
    }
    request.answer(vfio_device_feature_mig_state, { device_state: target, data_fd: file ? ctx.installMigrationFile(file) : -1 });
    return 0;
  }

  private dataSize(request: FeatureRequest): number {
    if (this.need(this.migration) && request.check(VFIO_DEVICE_FEATURE_GET, vfio_device_feature_mig_data_size.size)) {
      request.answer(vfio_device_feature_mig_data_size, { stop_copy_length: BigInt(this.migration.dataSize()) });
    }
    return 0;
  }

  private logStart(request: FeatureRequest, ctx: FeatureContext): number {
    const codec = vfio_device_feature_dma_logging_control;
    if (!this.need(this.dmaLog) || !request.check(VFIO_DEVICE_FEATURE_SET, codec.size)) return 0;
    const control = request.read(codec);
    if (control.num_ranges === 0) throw new Errno('EINVAL');
    if (control.num_ranges > 4096 / vfio_device_feature_dma_logging_range.size) throw new Errno('E2BIG');
    const size = vfio_device_feature_dma_logging_range.size;
    const raw = ctx.userBytes(control.ranges, control.num_ranges * size, false);
    const ranges = Array.from({ length: control.num_ranges }, (_, i) => {
      const range = vfio_device_feature_dma_logging_range.decode(raw, i * size);
      return { iova: range.iova, length: range.length };
    });
    const pageSize = this.dmaLog.start(control.page_size, ranges);
    request.answer(codec, { ...control, page_size: pageSize });
    return 0;
  }

  private logReport(request: FeatureRequest, ctx: FeatureContext): number {
    const codec = vfio_device_feature_dma_logging_report;
    if (!this.need(this.dmaLog) || !request.check(VFIO_DEVICE_FEATURE_GET, codec.size)) return 0;
    const report = request.read(codec);
    this.dmaLog.report(report.iova, report.length, report.page_size, (bytes) => ctx.userBytes(report.bitmap, bytes, true));
    return 0;
  }

  private lowPowerWithWakeup(request: FeatureRequest, ctx: FeatureContext): number {
    const codec = vfio_device_low_power_entry_with_wakeup;
    if (!this.need(this.lowPower) || !request.check(VFIO_DEVICE_FEATURE_SET, codec.size)) return 0;
    const entry = request.read(codec);
    if (entry.wakeup_eventfd < 0) throw new Errno('EINVAL');
    this.lowPower.enter(ctx.eventfd(entry.wakeup_eventfd));
    return 0;
  }
}

/** One feature request's flags and data, with vfio_check_feature()'s rules. */
class FeatureRequest {
  constructor(readonly flags: number, private readonly argsz: number, private readonly data: Uint8Array) {}

  /**
   * vfio_check_feature(): EINVAL for an access the feature lacks, false for
   * a PROBE (answered 0), EINVAL without GET or SET or with too little
   * data; true when the access should run.
   */
  check(supported: number, minsz: number): boolean {
    if ((this.flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET)) & ~supported) throw new Errno('EINVAL');
    if (this.flags & VFIO_DEVICE_FEATURE_PROBE) return false;
    if (!(this.flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET))) throw new Errno('EINVAL');
    if (this.argsz < minsz) throw new Errno('EINVAL');
    return true;
  }

  /** copy_from_user of the feature's struct. */
  read<T>(codec: StructCodec<T>): T {
    if (this.data.length < codec.size) throw new Errno('EFAULT');
    return codec.decode(this.data, 0);
  }

  /** copy_to_user of the feature's struct. */
  answer<T>(codec: StructCodec<T>, value: Parameters<StructCodec<T>['encode']>[0]): void {
    if (this.data.length < codec.size) throw new Errno('EFAULT');
    codec.encode(value, this.data, 0);
  }
}
