/**
 * vfio-pci's runtime power management features (LOW_POWER_ENTRY,
 * LOW_POWER_ENTRY_WITH_WAKEUP, LOW_POWER_EXIT), as vfio_pci_core.c keeps
 * them: entered once until exit, with an optional wake-up eventfd that the
 * kernel signals when an access brings a suspended device back.
 */
import { Errno } from './errno';
import type { FakeEventfd } from './fake-eventfd';

export class FakeLowPower {
  private engaged = false;
  private wakeup: FakeEventfd | null = null;

  /** Whether low power is entered (pm_runtime_engaged). */
  get entered(): boolean {
    return this.engaged;
  }

  /** Whether a wake-up eventfd is registered. */
  get hasWakeup(): boolean {
    return this.wakeup !== null;
  }

  /** LOW_POWER_ENTRY (wakeup null) or LOW_POWER_ENTRY_WITH_WAKEUP: EINVAL when already entered. */
  enter(wakeup: FakeEventfd | null): void {
    if (this.engaged) throw new Errno('EINVAL');
    this.engaged = true;
    this.wakeup = wakeup;
  }

  /** LOW_POWER_EXIT: always succeeds. */
  exit(): void {
    this.engaged = false;
    this.wakeup = null;
  }

  /**
   * The device, suspended, is accessed (by the host or through VFIO): with
   * a wake-up eventfd it is signalled and low power ends, as
   * vfio_pci_core_runtime_resume does; without one the device re-enters
   * low power after the access. Returns whether the eventfd was signalled.
   */
  wake(): boolean {
    if (!this.engaged || !this.wakeup) return false;
    this.wakeup.signal();
    this.exit();
    return true;
  }
}
