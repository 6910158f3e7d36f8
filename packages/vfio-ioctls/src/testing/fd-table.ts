import type { CdevState } from './fake-cdev';
import type { FakeContainer } from './fake-container';
import type { FakeDevice } from './fake-device';
import type { FakeEventfd } from './fake-eventfd';
import type { FakeGroup } from './fake-group';
import type { FakeIommufd } from './fake-iommufd';
import type { FakeKvmVfioDevice } from './fake-kvm-vfio';
import type { FakeMemfd } from './fake-memfd';
import type { FakeMigrationFile } from './fake-migration';

/** An open device file; live mmaps hold it open after its fd is closed, as a vma holds its file. */
export interface DeviceFile {
  device: FakeDevice;
  group: FakeGroup;
  refs: number;
  /** Opened through /dev/vfio/devices/vfioN rather than the group (fake-cdev.ts). */
  cdev?: CdevState;
}

export type OpenFile =
  | { kind: 'container'; path: string; container: FakeContainer }
  | { kind: 'group'; path: string; group: FakeGroup }
  | { kind: 'device'; path: string; file: DeviceFile }
  | { kind: 'eventfd'; path: string; eventfd: FakeEventfd }
  | { kind: 'iommufd'; path: string; iommufd: FakeIommufd }
  | { kind: 'memfd'; path: string; memfd: FakeMemfd }
  | { kind: 'migration'; path: string; migration: FakeMigrationFile } // a data session (fake-migration.ts)
  | { kind: 'pagemap'; path: string } // /proc/self/pagemap (fake-physical-memory.ts)
  | { kind: 'kvm-vfio'; path: string; kvmVfio: FakeKvmVfioDevice }; // a KVM VFIO device (fake-kvm-vfio.ts)

// 0, 1 and 2 are the standard streams in any real process.
const FIRST_FD = 3;

/** The process fd table: like Linux, a new fd is the lowest free number, so numbers get reused. */
export class FdTable {
  private readonly files = new Map<number, OpenFile>();

  install(file: OpenFile): number {
    let fd = FIRST_FD;
    while (this.files.has(fd)) fd++;
    this.files.set(fd, file);
    return fd;
  }

  get(fd: number): OpenFile | undefined {
    return this.files.get(fd);
  }

  remove(fd: number): OpenFile | undefined {
    const file = this.files.get(fd);
    this.files.delete(fd);
    return file;
  }

  /** True when some fd still refers to `file` (dup gives a file a second fd). */
  refersTo(file: OpenFile): boolean {
    for (const open of this.files.values()) if (open === file) return true;
    return false;
  }

  fds(): number[] {
    return [...this.files.keys()].sort((a, b) => a - b);
  }
}
