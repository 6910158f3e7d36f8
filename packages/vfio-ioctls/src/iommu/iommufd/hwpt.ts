import { bindings as b } from '../../abi/structs';
import { encodeSized, withUserMemory } from '../../abi/iommufd-args';
import { closedError } from '../../core/errors';
import { runAll } from '../../core/handle';
import { checkBoolean, checkOptions, checkU64, typeError } from '../../core/validate';
import { checkDirtyRange, dirtyBitmapBytes, dirtyRanges, mergeRuns, type DirtyRange } from '../../dma/dirty-bitmap';

import { attachCdev } from './cdev';
import type { Ioas } from './ioas';

/** What a Hwpt may do through its IOAS and iommufd (and nothing else). */
export interface HwptPort {
  ioctl(operation: string, request: number, bytes: Uint8Array): number;
  destroy(id: number): void;
  /** The cdev fd and name of an open device attached to the IOAS; undefined for anything else. */
  member(device: object): { fd: number; name: string } | undefined;
  /** Records the HWPT a device is on (undefined: back on the IOAS's automatic one). */
  place(device: object, hwpt: Hwpt | undefined): void;
  /** The open devices on `hwpt`. */
  devicesOn(hwpt: Hwpt): object[];
  closed(hwpt: Hwpt): void;
}

const releasers = new WeakMap<Hwpt, () => void>();

/** @internal The IOAS's iommufd closed: the kernel destroyed the HWPT with it. */
export function releaseHwpt(hwpt: Hwpt): void {
  releasers.get(hwpt)?.();
}

/**
 * A hardware page table allocated by hand over an IOAS (IOMMU_HWPT_ALLOC):
 * an IOMMU domain that holds the IOAS's mappings, made for one of its
 * devices, which attach() moves onto it. Unlike the domain the kernel makes
 * when a device attaches to the IOAS, it can be asked for with dirty
 * tracking (Ioas.allocHwpt(device, { dirtyTracking: true })), for a VMM
 * that migrates: the IOMMU then sets a dirty bit in the page-table entry of
 * each page a device writes while tracking is on, and dirtyPages() reads
 * them (IOMMU_HWPT_GET_DIRTY_BITMAP).
 *
 * close() moves the devices still on it back to the IOAS and destroys it
 * (IOMMU_DESTROY); closing the IOAS closes it after the devices.
 */
export class Hwpt implements Disposable {
  /** The IOAS whose mappings it holds. */
  readonly ioas: Ioas;
  /** The HWPT object id. */
  readonly id: number;
  /** Allocated with dirty tracking (IOMMU_HWPT_ALLOC_DIRTY_TRACKING): start/stopDirtyTracking and dirtyPages work. */
  readonly canTrackDirty: boolean;
  readonly #port: HwptPort;
  #dirtyTracking = false;
  #closed = false;

  /** @internal Made by Ioas.allocHwpt(). */
  constructor(ioas: Ioas, id: number, canTrackDirty: boolean, port: HwptPort) {
    this.ioas = ioas;
    this.id = id;
    this.canTrackDirty = canTrackDirty;
    this.#port = port;
    releasers.set(this, () => {
      this.#closed = true;
    });
  }

  /** Where errors point. */
  get path(): string {
    return `${this.ioas.iommufd.path} (HWPT ${this.id})`;
  }

  /** True once closed (or its IOAS or iommufd closed). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Whether dirty tracking is on (startDirtyTracking until stopDirtyTracking). */
  get dirtyTracking(): boolean {
    return this.#dirtyTracking;
  }

  /**
   * Moves a device attached to the IOAS onto this page table
   * (VFIO_DEVICE_ATTACH_IOMMUFD_PT with the HWPT id): its DMA goes through
   * it from then on, with the same mappings. The kernel frees the automatic
   * domain the device leaves when no device uses it any more.
   * @throws TypeError naming `device` when it is not an open Device attached to this HWPT's IOAS.
   */
  attach(device: object): void {
    this.assertOpen();
    const member = this.#port.member(device);
    if (!member) throw typeError('device', `an open Device attached to ${this.ioas.path}`, device);
    attachCdev(this.ioas.iommufd.context.backend, member.fd, this.id, member.name);
    this.#port.place(device, this);
  }

  /**
   * Starts dirty tracking (IOMMU_HWPT_SET_DIRTY_TRACKING ENABLE): the
   * kernel clears the dirty bits first, so a later report holds the pages
   * written from now on.
   * @throws VfioError ENOTSUP (with a hint) for a HWPT allocated without dirty tracking.
   */
  startDirtyTracking(): void {
    this.setDirtyTracking(true);
    this.#dirtyTracking = true;
  }

  /**
   * Stops dirty tracking. The bits already set stay until read, so a last
   * dirtyPages() after stopping still reports the pages written before.
   */
  stopDirtyTracking(): void {
    this.setDirtyTracking(false);
    this.#dirtyTracking = false;
  }

  /**
   * The pages of [iova, iova + size) devices wrote through this HWPT while
   * tracking was on, as runs, and (unless `clear` is false:
   * IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, for a report just before an
   * unmap) their dirty bits cleared. The range is in whole pages of the
   * IOAS's IOVA alignment, which is also the report's granularity.
   *
   * One report per mapping in the range: Linux 7.3 walks the mappings from
   * `iova` and stops at the first IOVA nothing maps, without an error
   * (iommu_read_and_clear_dirty drops the walk's EINVAL), so one report
   * across a hole would miss every mapping after it. IOVAs nothing maps
   * are never dirty and are not asked about.
   * @throws RangeError naming `iova` or `size`; VfioError ENOTSUP (with a
   *   hint) for a HWPT allocated without dirty tracking.
   */
  dirtyPages(iova: number | bigint, size: number | bigint, options?: { clear?: boolean }): DirtyRange[] {
    const start = checkU64('iova', iova);
    const length = checkU64('size', size);
    const opts = checkOptions('options', options, ['clear']);
    const clear = opts.clear === undefined ? true : checkBoolean('options.clear', opts.clear);
    this.assertOpen();
    const sizes = this.ioas.pageSizes();
    const page = sizes & -sizes;
    const end = checkDirtyRange(start, length, page, "the IOAS's IOVA alignment");
    const pieces = this.ioas.mappings()
      .filter((m) => m.iova <= end && m.end >= start)
      .map((m) => ({ iova: m.iova > start ? m.iova : start, last: m.end < end ? m.end : end }))
      .sort((x, y) => (x.iova < y.iova ? -1 : 1));
    return mergeRuns(pieces.flatMap((piece) => this.readDirtyBitmap(piece.iova, piece.last - piece.iova + 1n, page, clear)));
  }

  /**
   * Moves the devices still on it back to the IOAS, then destroys it
   * (IOMMU_DESTROY). Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    const devices = this.#port.devicesOn(this);
    try {
      runAll([
        ...devices.map((device) => () => this.moveBack(device)),
        () => this.#port.destroy(this.id),
      ]);
    } finally {
      this.#closed = true;
      this.#port.closed(this);
    }
  }

  /** Same as close(), for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  private setDirtyTracking(enabled: boolean): void {
    this.assertOpen();
    const arg = encodeSized(b.iommu_hwpt_set_dirty_tracking, { flags: enabled ? b.IOMMU_HWPT_DIRTY_TRACKING_ENABLE : 0, hwpt_id: this.id, __reserved: 0 });
    this.#port.ioctl('IOMMU_HWPT_SET_DIRTY_TRACKING', b.IOMMU_HWPT_SET_DIRTY_TRACKING, arg);
  }

  /** IOMMU_HWPT_GET_DIRTY_BITMAP of [iova, iova + size) into zeroed scratch memory (the kernel only sets bits), freed after. */
  private readDirtyBitmap(iova: bigint, size: bigint, page: bigint, clear: boolean): DirtyRange[] {
    const pages = size / page;
    return withUserMemory(this.ioas.iommufd.context.backend, Number(dirtyBitmapBytes(pages)), (bitmap, address) => {
      const arg = encodeSized(b.iommu_hwpt_get_dirty_bitmap, {
        hwpt_id: this.id, flags: clear ? 0 : b.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, __reserved: 0, iova, length: size, page_size: page, data: address,
      });
      this.#port.ioctl('IOMMU_HWPT_GET_DIRTY_BITMAP', b.IOMMU_HWPT_GET_DIRTY_BITMAP, arg);
      return dirtyRanges(bitmap, iova, page, pages);
    });
  }

  private moveBack(device: object): void {
    const member = this.#port.member(device);
    if (!member) return;
    attachCdev(this.ioas.iommufd.context.backend, member.fd, this.ioas.id, member.name);
    this.#port.place(device, undefined);
  }

  private assertOpen(): void {
    if (this.#closed) throw closedError(`HWPT ${this.id}`);
  }
}
