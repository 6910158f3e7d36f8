/**
 * VFIO_DEVICE_FEATURE: probe, get and set a device's features by their
 * uAPI names, the typed list of what a device supports, and errors that
 * name the feature, the access and the kernel's answer.
 */
import { featureAnswer, featureArg, featureArgWith, FEATURE_HEADER } from '../abi/feature-args';
import { bindings as b } from '../abi/structs';
import type { VfioContext } from '../core/context';
import { VfioError } from '../core/errors';
import { checkBytes, checkInteger, rangeError, typeError } from '../core/validate';

/** What the feature helpers need of their device; Device implements it. */
export interface FeatureHost {
  /** The device fd; throws once the device is closed. */
  readonly fd: number;
  /** The device name, for errors. */
  readonly name: string;
  readonly context: VfioContext;
}

/** The features of VFIO_DEVICE_FEATURE, by their uAPI names (VFIO_DEVICE_FEATURE_<name>). */
export const deviceFeatureNames = [
  'PCI_VF_TOKEN', 'MIGRATION', 'MIG_DEVICE_STATE', 'LOW_POWER_ENTRY', 'LOW_POWER_ENTRY_WITH_WAKEUP',
  'LOW_POWER_EXIT', 'DMA_LOGGING_START', 'DMA_LOGGING_STOP', 'DMA_LOGGING_REPORT', 'MIG_DATA_SIZE',
  'BUS_MASTER', 'DMA_BUF', 'MIG_PRECOPY_INFOv2', 'ZPCI_ERROR',
] as const;

/** A feature's uAPI name: 'MIGRATION', 'LOW_POWER_ENTRY', ... */
export type DeviceFeatureName = (typeof deviceFeatureNames)[number];

/** The accesses of a feature: PROBE alone asks whether the feature exists at all. */
export type FeatureAccess = 'probe' | 'get' | 'set';

/** One feature a device answered a probe for. */
export interface FeatureSupport {
  name: DeviceFeatureName;
  /** Its index (the low 16 bits of the request's flags). */
  id: number;
  /** PROBE | GET succeeded. */
  get: boolean;
  /** PROBE | SET succeeded. */
  set: boolean;
}

/** VFIO_DEVICE_FEATURE_MIGRATION's flags, decoded. */
export interface MigrationFlags {
  /** STOP, STOP_COPY and RESUMING (always set on a migratable device). */
  stopCopy: boolean;
  /** RUNNING_P2P (and PRE_COPY_P2P with preCopy). */
  p2p: boolean;
  /** PRE_COPY (and PRE_COPY_P2P with p2p). */
  preCopy: boolean;
  /** The raw VFIO_MIGRATION_* bits. */
  bits: bigint;
}

/** What a device offers through VFIO_DEVICE_FEATURE. */
export interface DeviceFeatures {
  /** Every feature the kernel answered a probe for, with the accesses it allows. */
  supported: FeatureSupport[];
  /** The migration flags, when the device can migrate. */
  migration?: MigrationFlags;
  /** DMA_LOGGING_START, STOP and REPORT. */
  dmaLogging: boolean;
  /** LOW_POWER_ENTRY and LOW_POWER_EXIT. */
  lowPower: boolean;
  /** LOW_POWER_ENTRY_WITH_WAKEUP. */
  lowPowerWakeup: boolean;
  /** BUS_MASTER (CDX devices; a PCI device's bus master bit is in its config space). */
  busMaster: boolean;
  /** PCI_VF_TOKEN (an SR-IOV PF bound to vfio-pci). */
  vfToken: boolean;
}

const ACCESS_FLAG = { probe: 0, get: b.VFIO_DEVICE_FEATURE_GET, set: b.VFIO_DEVICE_FEATURE_SET };

/** VFIO_DEVICE_FEATURE_<name>'s index. */
export function featureId(name: DeviceFeatureName): number {
  return (b as unknown as Record<string, number>)[`VFIO_DEVICE_FEATURE_${name}`];
}

/** A feature name, checked. */
export function checkFeatureName(argument: string, value: unknown): DeviceFeatureName {
  if (typeof value !== 'string') throw typeError(argument, 'a feature name such as \'MIGRATION\'', value);
  if (!(deviceFeatureNames as readonly string[]).includes(value)) {
    throw rangeError(argument, `must be one of ${deviceFeatureNames.join(', ')}, got ${JSON.stringify(value)}`, 'ERR_INVALID_ARG_VALUE');
  }
  return value as DeviceFeatureName;
}

/**
 * Runs VFIO_DEVICE_FEATURE with `arg` (header and data, see
 * abi/feature-args.ts) and returns the ioctl's result; a refusal is a
 * VfioError naming the feature and the access.
 */
export function featureIoctl(host: FeatureHost, feature: DeviceFeatureName, access: FeatureAccess, arg: Uint8Array): number {
  const fd = host.fd;
  try {
    return host.context.backend.ioctl(fd, b.VFIO_DEVICE_FEATURE, arg);
  } catch (error) {
    throw featureError(error, feature, access, host.name);
  }
}

/** The request flags of `access` to `feature`. */
export function featureFlags(feature: DeviceFeatureName, access: FeatureAccess, probe = false): number {
  return featureId(feature) | ACCESS_FLAG[access] | (probe || access === 'probe' ? b.VFIO_DEVICE_FEATURE_PROBE : 0);
}

// Probe answers that mean "no": the feature is unknown (ENOTTY), the access
// is not offered (EINVAL, from vfio_check_feature), or the driver lacks
// what the feature needs (EOPNOTSUPP, DMA_BUF without a provider).
const NO = new Set(['ENOTTY', 'EINVAL', 'ENOTSUP']);

/**
 * Whether the device offers `feature` (with `access`: that access to it).
 * @throws VfioError for an answer other than ENOTTY, EINVAL or EOPNOTSUPP.
 */
export function probeFeature(host: FeatureHost, feature: DeviceFeatureName, access: FeatureAccess = 'probe'): boolean {
  try {
    featureIoctl(host, feature, 'probe', featureArg(featureFlags(feature, access, true)));
    return true;
  } catch (error) {
    if (error instanceof VfioError && NO.has(error.code)) return false;
    throw error;
  }
}

/** GET of `feature` with `size` bytes of data; returns the data the kernel wrote. */
export function getFeature(host: FeatureHost, feature: DeviceFeatureName, size: number): Uint8Array {
  checkInteger('size', size, 0, 1 << 20);
  const arg = featureArg(featureFlags(feature, 'get'), size);
  featureIoctl(host, feature, 'get', arg);
  return arg.slice(FEATURE_HEADER);
}

/** SET of `feature` with `data` (none for LOW_POWER_ENTRY, LOW_POWER_EXIT, DMA_LOGGING_STOP). */
export function setFeature(host: FeatureHost, feature: DeviceFeatureName, data?: Uint8Array): void {
  const bytes = data === undefined ? new Uint8Array(0) : checkBytes('data', data);
  const arg = featureArg(featureFlags(feature, 'set'), bytes.length);
  arg.set(bytes, FEATURE_HEADER);
  featureIoctl(host, feature, 'set', arg);
}

/** GET of MIGRATION, decoded; undefined when the device cannot migrate (ENOTTY). */
export function migrationFlags(host: FeatureHost): MigrationFlags | undefined {
  const arg = featureArgWith(featureFlags('MIGRATION', 'get'), b.vfio_device_feature_migration, { flags: 0n });
  try {
    featureIoctl(host, 'MIGRATION', 'get', arg);
  } catch (error) {
    if (error instanceof VfioError && error.code === 'ENOTTY') return undefined;
    throw error;
  }
  const bits = featureAnswer(b.vfio_device_feature_migration, arg, 'VFIO_DEVICE_FEATURE_MIGRATION').flags;
  return {
    stopCopy: (bits & BigInt(b.VFIO_MIGRATION_STOP_COPY)) !== 0n,
    p2p: (bits & BigInt(b.VFIO_MIGRATION_P2P)) !== 0n,
    preCopy: (bits & BigInt(b.VFIO_MIGRATION_PRE_COPY)) !== 0n,
    bits,
  };
}

/** Probes every feature (PROBE | GET and PROBE | SET) and decodes the migration flags. */
export function listFeatures(host: FeatureHost): DeviceFeatures {
  const supported: FeatureSupport[] = [];
  for (const name of deviceFeatureNames) {
    const get = probeFeature(host, name, 'get');
    const set = probeFeature(host, name, 'set');
    if (get || set) supported.push({ name, id: featureId(name), get, set });
  }
  const has = (name: DeviceFeatureName) => supported.some((f) => f.name === name);
  const features: DeviceFeatures = {
    supported,
    dmaLogging: has('DMA_LOGGING_START') && has('DMA_LOGGING_STOP') && has('DMA_LOGGING_REPORT'),
    lowPower: has('LOW_POWER_ENTRY') && has('LOW_POWER_EXIT'),
    lowPowerWakeup: has('LOW_POWER_ENTRY_WITH_WAKEUP'),
    busMaster: has('BUS_MASTER'),
    vfToken: has('PCI_VF_TOKEN'),
  };
  const migration = has('MIGRATION') ? migrationFlags(host) : undefined;
  if (migration) features.migration = migration;
  return features;
}

/**
 * A refused VFIO_DEVICE_FEATURE as a VfioError that names the feature and
 * the access; the hint says what the kernel's answer means for it.
 */
export function featureError(error: unknown, feature: DeviceFeatureName, access: FeatureAccess, device: string): unknown {
  const context = { syscall: 'ioctl', operation: 'VFIO_DEVICE_FEATURE', device };
  const annotated = VfioError.annotate(error, context);
  if (!(annotated instanceof VfioError) || annotated.errno === 0) return annotated;
  const code = annotated.code;
  return new VfioError(code, `${code}: VFIO_DEVICE_FEATURE ${access.toUpperCase()} ${feature} refused on ${device}`, {
    ...context,
    errno: annotated.errno,
    hint: featureHint(feature, access, code, device),
  });
}

/** Where a feature comes from, for the ENOTTY hint. */
const OFFERED_BY: Partial<Record<DeviceFeatureName, string>> = {
  PCI_VF_TOKEN: 'only an SR-IOV PF bound to vfio-pci has a VF token',
  MIGRATION: 'only devices with a migration driver (a vendor vfio-pci variant, the mtty sample) can migrate',
  MIG_DEVICE_STATE: 'only devices with a migration driver have migration states',
  MIG_DATA_SIZE: 'only devices with a migration driver report it, on kernels that know it',
  MIG_PRECOPY_INFOv2: 'only a device with PRE_COPY has it, on kernels that know it',
  DMA_LOGGING_START: 'only devices with a DMA logging driver log their DMA',
  DMA_LOGGING_STOP: 'only devices with a DMA logging driver log their DMA',
  DMA_LOGGING_REPORT: 'only devices with a DMA logging driver log their DMA',
  LOW_POWER_ENTRY: 'vfio-pci offers it on Linux >= 6.0',
  LOW_POWER_ENTRY_WITH_WAKEUP: 'vfio-pci offers it on Linux >= 6.0',
  LOW_POWER_EXIT: 'vfio-pci offers it on Linux >= 6.0',
  BUS_MASTER: 'only CDX devices have it; a PCI device\'s bus master bit is PCI_COMMAND_MASTER in its config space',
};

/** What EINVAL means for a feature whose access exists. */
const EINVAL_MEANS: Partial<Record<DeviceFeatureName, string>> = {
  LOW_POWER_ENTRY: 'low power is already entered: LOW_POWER_EXIT first',
  LOW_POWER_ENTRY_WITH_WAKEUP: 'low power is already entered (LOW_POWER_EXIT first), or the wake-up eventfd is not valid',
  MIG_DEVICE_STATE: 'the device cannot take that arc from its current state',
  DMA_LOGGING_START: 'the ranges are empty, overlap or are not page_size aligned',
  DMA_LOGGING_REPORT: 'logging is not started, or page_size is below 4 KiB or not a power of two',
};

function featureHint(feature: DeviceFeatureName, access: FeatureAccess, code: string, device: string): string | undefined {
  switch (code) {
    case 'ENOTTY': {
      const why = OFFERED_BY[feature];
      return `${device} (or this kernel) does not offer ${feature}${why ? `: ${why}` : ''}`;
    }
    case 'EINVAL':
      return EINVAL_MEANS[feature] ?? `${feature} does not allow ${access.toUpperCase()}, or the kernel refused its data`;
    case 'ENOTSUP':
      return `the driver of ${device} lacks what ${feature} needs`;
    case 'E2BIG':
      return feature === 'DMA_LOGGING_START' ? 'more ranges than the kernel takes (a page of ranges, 256 with 4 KiB pages)' : undefined;
    default:
      return undefined;
  }
}
