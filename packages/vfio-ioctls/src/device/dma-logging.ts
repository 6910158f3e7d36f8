/**
 * Device DMA logging (VFIO_DEVICE_FEATURE DMA_LOGGING_START, REPORT,
 * STOP): the device itself records the pages it writes in the IOVA ranges
 * given, for a VMM's dirty page tracking during pre-copy. REPORT reads and
 * clears the log into a bitmap, decoded here into dirty page ranges.
 */
import { featureArg, featureArgWith, featureAnswer } from '../abi/feature-args';
import { withUserMemory } from '../abi/iommufd-args';
import { bindings as b } from '../abi/structs';
import { VfioError } from '../core/errors';
import { illegalConstructor } from '../core/illegal-constructor';
import { checkOptions, checkU64, hex, optionKeys, rangeError, typeError } from '../core/validate';
import { dirtyBitmapBytes, dirtyRanges, type DirtyRange } from '../dma/dirty-bitmap';
import { featureFlags, featureIoctl, type FeatureHost } from './features';

/** An IOVA range to log or report. */
export interface DmaLogRange {
  iova: number | bigint;
  size: number | bigint;
}

/** Options of {@link Device.startDmaLogging}. */
export interface DmaLoggingOptions {
  /** The IOVA ranges to log (non-empty, not overlapping, aligned to pageSize). */
  ranges: DmaLogRange[];
  /** The tracking granularity asked for (a power of two, default the system page size); the device may pick another. */
  pageSize?: number | bigint;
}

/** Options of {@link DmaLogging.report}. */
export interface DmaLogReportOptions {
  /** Report page size (a power of two, at least 4 KiB; default the logging's). */
  pageSize?: number | bigint;
}

const startOptionKeys = optionKeys<DmaLoggingOptions>({ ranges: true, pageSize: true });
const reportOptionKeys = optionKeys<DmaLogReportOptions>({ pageSize: true });
const MAX_BITMAP_BYTES = 1n << 30n;

/** Only this module holds it: the constructor demands it (see illegal-constructor.ts). */
const constructKey = Symbol('DmaLogging');

let construct: (host: FeatureHost, ranges: { iova: bigint; size: bigint }[], pageSize: bigint, stopped: (log: DmaLogging) => void) => DmaLogging;

/** A started DMA log; stop() ends it, as the device's close does. */
export class DmaLogging implements Disposable {
  /** The page size the device logs in (the kernel's answer to the hint). */
  readonly pageSize: bigint;
  /** The ranges logged. */
  readonly ranges: readonly { iova: bigint; size: bigint }[];
  readonly #host: FeatureHost;
  readonly #stopped: (log: DmaLogging) => void;
  #active = true;

  static {
    construct = (host, ranges, pageSize, stopped) => new DmaLogging(constructKey, host, ranges, pageSize, stopped);
  }

  private constructor(key: symbol, host: FeatureHost, ranges: { iova: bigint; size: bigint }[], pageSize: bigint, stopped: (log: DmaLogging) => void) {
    if (key !== constructKey) throw illegalConstructor();
    this.#host = host;
    this.ranges = ranges;
    this.pageSize = pageSize;
    this.#stopped = stopped;
  }

  /** Until stop(). */
  get active(): boolean {
    return this.#active;
  }

  /**
   * DMA_LOGGING_REPORT of `range` (default: every logged range, one report
   * each): the pages the device wrote since the last report, as runs of
   * dirty pages. Reading clears them in the device's log.
   * @throws RangeError for a range or page size the kernel would refuse;
   *   VfioError from the kernel (after one, the uAPI says to treat every
   *   page as dirty).
   */
  report(range?: DmaLogRange, options?: DmaLogReportOptions): DirtyRange[] {
    this.#assertActive();
    const opts = checkOptions('options', options, reportOptionKeys);
    const pageSize = opts.pageSize === undefined ? this.pageSize : checkPageSize('options.pageSize', opts.pageSize, 4096n);
    const spans = range === undefined ? this.ranges : [checkRange('range', range, pageSize)];
    return spans.flatMap((span) => this.#reportOne(span.iova, span.size, pageSize));
  }

  /** DMA_LOGGING_STOP; idempotent. */
  stop(): void {
    if (!this.#active) return;
    this.#active = false;
    try {
      featureIoctl(this.#host, 'DMA_LOGGING_STOP', 'set', featureArg(featureFlags('DMA_LOGGING_STOP', 'set')));
    } finally {
      this.#stopped(this);
    }
  }

  [Symbol.dispose](): void {
    this.stop();
  }

  #reportOne(iova: bigint, size: bigint, pageSize: bigint): DirtyRange[] {
    const pages = (size + pageSize - 1n) / pageSize;
    const bytes = dirtyBitmapBytes(pages);
    if (bytes > MAX_BITMAP_BYTES) throw rangeError('range', `${hex(size)} bytes in ${pageSize}-byte pages needs a ${bytes}-byte bitmap; report smaller ranges`);
    return withUserMemory(this.#host.context.backend, Number(bytes), (bitmap, address) => {
      const arg = featureArgWith(featureFlags('DMA_LOGGING_REPORT', 'get'), b.vfio_device_feature_dma_logging_report, { iova, length: size, page_size: pageSize, bitmap: address });
      featureIoctl(this.#host, 'DMA_LOGGING_REPORT', 'get', arg);
      return dirtyRanges(bitmap, iova, pageSize, pages);
    });
  }

  #assertActive(): void {
    if (!this.#active) throw new VfioError('ERR_VFIO_CLOSED', `the DMA log of ${this.#host.name} is stopped`, { device: this.#host.name });
  }
}

function checkPageSize(name: string, value: unknown, min: bigint): bigint {
  const size = checkU64(name, value, min, 1n << 62n);
  if ((size & (size - 1n)) !== 0n) throw rangeError(name, `must be a power of two, got ${hex(size)}`);
  return size;
}

function checkRange(name: string, range: DmaLogRange, pageSize: bigint): { iova: bigint; size: bigint } {
  if (typeof range !== 'object' || range === null) throw typeError(name, 'an { iova, size } object', range);
  const iova = checkU64(`${name}.iova`, range.iova);
  const size = checkU64(`${name}.size`, range.size, 1n);
  if (iova % pageSize !== 0n || size % pageSize !== 0n) throw rangeError(name, `${hex(iova)}+${hex(size)} is not aligned to the ${pageSize}-byte page`, 'ERR_VFIO_MISALIGNED');
  if (iova + size > 0xffff_ffff_ffff_ffffn + 1n) throw rangeError(name, `${hex(iova)}+${hex(size)} wraps past 2^64`);
  return { iova, size };
}

/**
 * DMA_LOGGING_START with `options.ranges` (copied into memory the kernel
 * reads through the request's pointer).
 * @internal Device.startDmaLogging's implementation.
 */
export function startDmaLogging(host: FeatureHost, options: DmaLoggingOptions, stopped: (log: DmaLogging) => void): DmaLogging {
  const opts = checkOptions('options', options, startOptionKeys);
  const hint = opts.pageSize === undefined ? BigInt(host.context.backend.pageSize()) : checkPageSize('options.pageSize', opts.pageSize, 1n);
  if (!Array.isArray(opts.ranges)) throw typeError('options.ranges', 'an array of { iova, size }', opts.ranges);
  const maxRanges = Math.floor(host.context.backend.pageSize() / b.vfio_device_feature_dma_logging_range.size);
  if (opts.ranges.length === 0 || opts.ranges.length > maxRanges) throw rangeError('options.ranges', `must hold 1 to ${maxRanges} ranges (a page of them), got ${opts.ranges.length}`);
  const ranges = opts.ranges.map((range, i) => checkRange(`options.ranges[${i}]`, range, hint));
  const sorted = [...ranges].sort((x, y) => (x.iova < y.iova ? -1 : x.iova > y.iova ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].iova < sorted[i - 1].iova + sorted[i - 1].size) {
      throw rangeError('options.ranges', `overlap at ${hex(sorted[i].iova)}`, 'ERR_VFIO_DMA_OVERLAP');
    }
  }
  const rangeSize = b.vfio_device_feature_dma_logging_range.size;
  const pageSize = withUserMemory(host.context.backend, ranges.length * rangeSize, (bytes, address) => {
    ranges.forEach((range, i) => b.vfio_device_feature_dma_logging_range.encode({ iova: range.iova, length: range.size }, bytes, i * rangeSize));
    const arg = featureArgWith(featureFlags('DMA_LOGGING_START', 'set'), b.vfio_device_feature_dma_logging_control, {
      page_size: hint, num_ranges: ranges.length, __reserved: 0, ranges: address,
    });
    featureIoctl(host, 'DMA_LOGGING_START', 'set', arg);
    return featureAnswer(b.vfio_device_feature_dma_logging_control, arg, 'VFIO_DEVICE_FEATURE_DMA_LOGGING_START').page_size;
  });
  return construct(host, ranges, pageSize, stopped);
}
