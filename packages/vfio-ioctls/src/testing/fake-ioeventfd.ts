/**
 * VFIO_DEVICE_IOEVENTFD as vfio_pci_rdwr.c implements it: a write of a
 * fixed value and width to a BAR offset each time an eventfd is signalled,
 * done inside the kernel (a virqfd drains the counter), removed by the same
 * request with fd -1, and dropped when the device's last fd closes.
 */
import { vfio_device_ioeventfd, VFIO_DEVICE_IOEVENTFD_SIZE_MASK, VFIO_PCI_BAR5_REGION_INDEX } from 'vfio-bindings';
import { checkArgsz, decodeFixed, offsetOfEnd } from './abi';
import { Errno } from './errno';
import type { EventfdWaiter, FakeEventfd } from './fake-eventfd';
import type { EventfdLookup } from './fake-irqs';
import { VFIO_PCI_OFFSET_MASK, VFIO_PCI_OFFSET_SHIFT } from './offsets';

/** What an ioeventfd needs of its device. */
export interface IoeventfdDevice {
  /** The size of region `index` (0 when the device has none there). */
  regionSize(index: number): number;
  writeRegister(index: number, offset: number, width: 1 | 2 | 4 | 8, value: bigint): void;
}

/** One registered ioeventfd, for assertions. */
export interface FakeIoeventfdState {
  region: number;
  offset: number;
  width: number;
  data: bigint;
  fd: number;
  /** Writes it has made. */
  writes: number;
}

interface Entry extends FakeIoeventfdState {
  eventfd: FakeEventfd;
  waiter: EventfdWaiter;
}

// VFIO_PCI_IOEVENTFD_MAX.
const MAX = 1000;

export class FakeIoeventfds {
  private readonly entries: Entry[] = [];

  constructor(private readonly device: IoeventfdDevice) {}

  /** The registered ioeventfds. */
  list(): FakeIoeventfdState[] {
    return this.entries.map(({ region, offset, width, data, fd, writes }) => ({ region, offset, width, data, fd, writes }));
  }

  /** The ioctl: validation as vfio_pci_ioctl_ioeventfd and vfio_pci_ioeventfd. */
  ioctl(bytes: Uint8Array, lookup: EventfdLookup): number {
    const minsz = offsetOfEnd(vfio_device_ioeventfd, 'fd');
    const req = decodeFixed(vfio_device_ioeventfd, bytes);
    checkArgsz(bytes, req.argsz, minsz);
    if (req.flags & ~VFIO_DEVICE_IOEVENTFD_SIZE_MASK) throw new Errno('EINVAL');
    const width = req.flags & VFIO_DEVICE_IOEVENTFD_SIZE_MASK;
    if (![1, 2, 4, 8].includes(width) || req.fd < -1) throw new Errno('EINVAL');
    const region = Number(req.offset >> VFIO_PCI_OFFSET_SHIFT);
    const offset = Number(req.offset & VFIO_PCI_OFFSET_MASK);
    if (region > VFIO_PCI_BAR5_REGION_INDEX || offset + width > this.device.regionSize(region)) throw new Errno('EINVAL');
    const at = this.entries.findIndex((e) => e.region === region && e.offset === offset && e.data === req.data && e.width === width);
    if (at >= 0) {
      if (req.fd !== -1) throw new Errno('EEXIST');
      this.remove(at);
      return 0;
    }
    if (req.fd < 0) throw new Errno('ENODEV');
    if (this.entries.length >= MAX) throw new Errno('ENOSPC');
    const eventfd = lookup(req.fd);
    const entry: Entry = {
      region, offset, width, data: req.data, fd: req.fd, writes: 0, eventfd,
      waiter: {
        wake: () => {
          eventfd.drain();
          this.device.writeRegister(region, offset, width as 1 | 2 | 4 | 8, req.data);
          entry.writes++;
        },
        // The virqfd goes when the eventfd's last fd closes; the entry stays listed, as in the kernel.
        hangup: () => eventfd.removeWaiter(entry.waiter),
      },
    };
    eventfd.addWaiter(entry.waiter);
    this.entries.push(entry);
    return 0;
  }

  /** The device's last fd closed: every ioeventfd goes. */
  clear(): void {
    while (this.entries.length > 0) this.remove(0);
  }

  private remove(at: number): void {
    const [entry] = this.entries.splice(at, 1);
    entry.eventfd.removeWaiter(entry.waiter);
  }
}
