import {
  VFIO_IRQ_INFO_AUTOMASKED, VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_MASKABLE, VFIO_IRQ_INFO_NORESIZE,
  VFIO_IRQ_SET_ACTION_MASK, VFIO_IRQ_SET_ACTION_TRIGGER, VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL, VFIO_IRQ_SET_DATA_EVENTFD, VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_INTX_IRQ_INDEX, VFIO_PCI_MSIX_IRQ_INDEX, VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
} from 'vfio-bindings';
import { Errno } from './errno';
import type { EventfdWaiter, FakeEventfd } from './fake-eventfd';
import type { FakeIrqSpec, FakeIrqState } from './types';

/** A decoded VFIO_DEVICE_SET_IRQS request whose argsz, flags and range passed the common checks. */
export interface IrqSetRequest {
  flags: number;
  index: number;
  start: number;
  count: number;
  /** DATA_BOOL: one per vector; DATA_EVENTFD: one fd per vector. */
  data: number[];
}

interface Vector {
  fd: number | null;
  trigger: FakeEventfd | null;
  masked: boolean;
  pending: boolean;
}

/** An eventfd registered with ACTION_UNMASK on INTx (the kernel's virqfd in ctx->unmask). */
interface UnmaskIrqfd {
  fd: number;
  eventfd: FakeEventfd;
  waiter: EventfdWaiter;
}

/** Looks up the eventfd behind an fd number for SET_IRQS (EBADF or EINVAL as eventfd_ctx_fdget). */
export type EventfdLookup = (fd: number) => FakeEventfd;

/**
 * The interrupt side of a vfio-pci device: INTx, MSI and MSI-X are mutually
 * exclusive (one "irq type" at a time, as vdev->irq_type), INTx is
 * automasked and maskable, MSI/MSI-X vectors are fixed when enabled
 * (NORESIZE; an MSI-X spec whose flags leave it out grows as dynamic MSI-X
 * does), ERR and REQ carry a single trigger each.
 */
export class FakeIrqs {
  private readonly counts: number[];
  private readonly flags: number[];
  private active: number | null = null;
  private vectors: Vector[] = [];
  private readonly single = new Map<number, Vector>();
  private unmaskIrqfd: UnmaskIrqfd | null = null;

  constructor(specs: FakeIrqSpec[]) {
    this.counts = new Array(VFIO_PCI_NUM_IRQS).fill(0);
    this.flags = new Array(VFIO_PCI_NUM_IRQS).fill(0);
    for (let i = 0; i < VFIO_PCI_NUM_IRQS; i++) this.flags[i] = defaultFlags(i);
    for (const s of specs) {
      if (!Number.isInteger(s.index) || s.index < 0 || s.index >= VFIO_PCI_NUM_IRQS) {
        throw new RangeError(`irq index must be 0..${VFIO_PCI_NUM_IRQS - 1}, got ${s.index}`);
      }
      this.counts[s.index] = s.count;
      if (s.flags !== undefined) this.flags[s.index] = s.flags;
    }
  }

  get numIrqs(): number {
    return VFIO_PCI_NUM_IRQS;
  }

  info(index: number): { flags: number; count: number } {
    if (index >= VFIO_PCI_NUM_IRQS) throw new Errno('EINVAL');
    return { flags: this.flags[index], count: this.counts[index] };
  }

  state(index: number): FakeIrqState {
    const count = this.counts[index] ?? 0;
    const vectors = this.vectorsOf(index, count);
    return {
      enabled: isExclusive(index) ? this.active === index : vectors.some((v) => v.trigger !== null),
      eventfds: vectors.map((v) => v.fd),
      masked: vectors.map((v) => v.masked),
      pending: vectors.map((v) => v.pending),
      unmaskEventfd: index === VFIO_PCI_INTX_IRQ_INDEX ? this.unmaskIrqfd?.fd ?? null : null,
    };
  }

  /** VFIO_DEVICE_SET_IRQS, after the common validation. */
  set(req: IrqSetRequest, lookup: EventfdLookup): void {
    const action = req.flags & (VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER);
    if (req.index === VFIO_PCI_INTX_IRQ_INDEX) {
      if (action === VFIO_IRQ_SET_ACTION_TRIGGER) return this.intxTrigger(req, lookup);
      return this.intxMask(req, action === VFIO_IRQ_SET_ACTION_MASK, lookup);
    }
    if (req.index === VFIO_PCI_MSI_IRQ_INDEX || req.index === VFIO_PCI_MSIX_IRQ_INDEX) {
      // vfio-pci has no mask/unmask handler for MSI and MSI-X.
      if (action !== VFIO_IRQ_SET_ACTION_TRIGGER) throw new Errno('ENOTTY');
      return this.msiTrigger(req, lookup);
    }
    if (action !== VFIO_IRQ_SET_ACTION_TRIGGER) throw new Errno('ENOTTY');
    return this.singleTrigger(req, lookup);
  }

  /** The hardware raising `vector` of `index`. Returns whether an eventfd was signalled. */
  raise(index: number, vector: number): boolean {
    if (index === VFIO_PCI_INTX_IRQ_INDEX) {
      if (this.active !== index) return false;
      const v = this.vectors[0];
      if (v.masked) {
        v.pending = true;
        return false;
      }
      v.masked = true; // AUTOMASKED: the line stays masked until the user unmasks it
      return signal(v);
    }
    if (isExclusive(index)) {
      if (this.active !== index) return false;
      const v = this.vectors[vector];
      return v ? signal(v) : false;
    }
    const v = this.single.get(index);
    return v ? signal(v) : false;
  }

  /** Everything off, eventfds released: what closing the last device fd does. */
  disableAll(): void {
    this.dropUnmaskIrqfd();
    this.active = null;
    this.vectors = [];
    this.single.clear();
  }

  private intxTrigger(req: IrqSetRequest, lookup: EventfdLookup): void {
    const isIntx = this.active === VFIO_PCI_INTX_IRQ_INDEX;
    if (isIntx && req.count === 0 && req.flags & VFIO_IRQ_SET_DATA_NONE) return this.disableAll();
    if (!(isIntx || this.active === null) || req.start !== 0 || req.count !== 1) throw new Errno('EINVAL');
    if (req.flags & VFIO_IRQ_SET_DATA_EVENTFD) {
      const fd = req.data[0];
      const trigger = fd >= 0 ? lookup(fd) : null;
      if (!isIntx) this.enable(VFIO_PCI_INTX_IRQ_INDEX, 1);
      this.vectors[0].fd = fd >= 0 ? fd : null;
      this.vectors[0].trigger = trigger;
      return;
    }
    if (!isIntx) throw new Errno('EINVAL');
    if (req.flags & VFIO_IRQ_SET_DATA_NONE || req.data[0]) signal(this.vectors[0]);
  }

  private intxMask(req: IrqSetRequest, mask: boolean, lookup: EventfdLookup): void {
    if (this.active !== VFIO_PCI_INTX_IRQ_INDEX || req.start !== 0 || req.count !== 1) throw new Errno('EINVAL');
    if (req.flags & VFIO_IRQ_SET_DATA_EVENTFD) {
      // vfio-pci has no mask irqfd ("XXX implement me"): ENOTTY.
      if (mask) throw new Errno('ENOTTY');
      return this.setUnmaskIrqfd(req.data[0], lookup);
    }
    if (req.flags & VFIO_IRQ_SET_DATA_BOOL && !req.data[0]) return;
    if (mask) {
      this.vectors[0].masked = true;
      return;
    }
    this.unmaskIntx();
  }

  /**
   * vfio_virqfd_enable/disable for ctx->unmask: a negative fd unregisters;
   * a second registration is EBUSY (after the fd is resolved, as the
   * kernel checks); each write to the eventfd then unmasks as the ioctl does.
   */
  private setUnmaskIrqfd(fd: number, lookup: EventfdLookup): void {
    if (fd < 0) return this.dropUnmaskIrqfd();
    const eventfd = lookup(fd);
    if (this.unmaskIrqfd) throw new Errno('EBUSY');
    const waiter: EventfdWaiter = {
      wake: () => {
        eventfd.drain();
        this.unmaskIntx();
      },
      // Closing the eventfd's last fd releases the virqfd (EPOLLHUP).
      hangup: () => this.dropUnmaskIrqfd(),
    };
    eventfd.addWaiter(waiter);
    this.unmaskIrqfd = { fd, eventfd, waiter };
    // A count already there acts as a write missed before registering; it is not drained.
    if (eventfd.readable) this.unmaskIntx();
  }

  private dropUnmaskIrqfd(): void {
    this.unmaskIrqfd?.eventfd.removeWaiter(this.unmaskIrqfd.waiter);
    this.unmaskIrqfd = null;
  }

  /** vfio_pci_intx_unmask_handler(), then re-sending a still-pending interrupt. */
  private unmaskIntx(): void {
    const v = this.vectors[0];
    v.masked = false;
    // A level-triggered line still asserted fires again on unmask.
    if (v.pending) {
      v.pending = false;
      this.raise(VFIO_PCI_INTX_IRQ_INDEX, 0);
    }
  }

  private msiTrigger(req: IrqSetRequest, lookup: EventfdLookup): void {
    const isActive = this.active === req.index;
    if (isActive && req.count === 0 && req.flags & VFIO_IRQ_SET_DATA_NONE) return this.disableAll();
    if (!(isActive || this.active === null)) throw new Errno('EINVAL');
    if (req.flags & VFIO_IRQ_SET_DATA_EVENTFD) {
      // Resolve every fd first so a bad one leaves nothing half set.
      const triggers = req.data.map((fd) => (fd >= 0 ? lookup(fd) : null));
      if (!isActive) this.enable(req.index, req.start + req.count);
      else if (req.start + req.count > this.vectors.length) {
        // A fixed block (NORESIZE: vectors allocated at enable) cannot grow;
        // dynamic MSI-X (vfio-pci on Linux 6.5+) allocates the new vectors.
        if (this.flags[req.index]! & VFIO_IRQ_INFO_NORESIZE) throw new Errno('EINVAL');
        while (this.vectors.length < req.start + req.count) this.vectors.push({ fd: null, trigger: null, masked: false, pending: false });
      }
      triggers.forEach((trigger, i) => {
        const v = this.vectors[req.start + i];
        v.fd = trigger ? req.data[i] : null;
        v.trigger = trigger;
      });
      return;
    }
    if (!isActive) throw new Errno('EINVAL');
    for (let i = 0; i < req.count; i++) {
      const v = this.vectors[req.start + i];
      if (v && (req.flags & VFIO_IRQ_SET_DATA_NONE || req.data[i])) signal(v);
    }
  }

  private singleTrigger(req: IrqSetRequest, lookup: EventfdLookup): void {
    if (req.start !== 0 || req.count > 1) throw new Errno('EINVAL');
    const current = this.single.get(req.index);
    if (req.flags & VFIO_IRQ_SET_DATA_NONE) {
      if (req.count === 0) this.single.delete(req.index);
      else if (current) signal(current);
      return;
    }
    if (req.count === 0) throw new Errno('EINVAL');
    if (req.flags & VFIO_IRQ_SET_DATA_BOOL) {
      if (req.data[0] && current) signal(current);
      return;
    }
    const fd = req.data[0];
    if (fd === -1) this.single.delete(req.index);
    else if (fd < 0) throw new Errno('EINVAL');
    else this.single.set(req.index, { fd, trigger: lookup(fd), masked: false, pending: false });
  }

  private enable(index: number, count: number): void {
    this.active = index;
    this.vectors = Array.from({ length: count }, () => ({ fd: null, trigger: null, masked: false, pending: false }));
  }

  private vectorsOf(index: number, count: number): Vector[] {
    if (isExclusive(index)) {
      if (this.active === index) return this.vectors;
      return Array.from({ length: count }, () => ({ fd: null, trigger: null, masked: false, pending: false }));
    }
    const v = this.single.get(index);
    return Array.from({ length: count }, (_, i) => (i === 0 && v ? v : { fd: null, trigger: null, masked: false, pending: false }));
  }
}

function isExclusive(index: number): boolean {
  return index === VFIO_PCI_INTX_IRQ_INDEX || index === VFIO_PCI_MSI_IRQ_INDEX || index === VFIO_PCI_MSIX_IRQ_INDEX;
}

function defaultFlags(index: number): number {
  if (index === VFIO_PCI_INTX_IRQ_INDEX) return VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
  // MSI, MSI-X (without dynamic allocation), ERR and REQ: vectors fixed when enabled.
  return VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
}

function signal(v: Vector): boolean {
  if (!v.trigger) return false;
  v.trigger.signal();
  return true;
}
