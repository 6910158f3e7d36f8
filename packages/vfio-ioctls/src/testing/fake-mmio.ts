import { arrayBufferArg, integerArg, notLive, protRefused, uint64Arg } from './args';
import type { FakeDevice } from './fake-device';
import type { FakeAddressSpace } from './fake-memory';
import { checkOffset, plainRead, plainWrite, type Width } from './mmio';

const PROT_READ = 1;
const PROT_WRITE = 2;

/** Where a device mapping's bytes come from: the device, its region, and the mapping's start in it. */
export type DeviceWindow = (buffer: ArrayBuffer) => { device: FakeDevice; region: number; offset: number } | undefined;

/**
 * The MMIO accessors: checked as the native ones are (live memory from mmap
 * or allocDma, the protection allows the access, offset in bounds and
 * aligned, value in range), then routed through the device model for device
 * mappings (so register hooks run) or straight to the bytes for DMA memory.
 */
export class FakeMmio {
  constructor(private readonly memory: FakeAddressSpace, private readonly windowOf: DeviceWindow) {}

  read(buffer: unknown, offset: unknown, width: Width): bigint {
    const { area, at } = this.locate(buffer, offset, width, PROT_READ);
    const window = this.windowOf(area.buffer);
    if (!window) return plainRead(area.buffer, at, width);
    return window.device.readRegister(window.region, window.offset + at, width);
  }

  write(buffer: unknown, offset: unknown, width: Width, value: unknown): void {
    const { area, at } = this.locate(buffer, offset, width, PROT_WRITE);
    const v = width === 8 ? uint64Arg(value, 'value') : BigInt(integerArg(value, 'value', 0, 2 ** (width * 8) - 1));
    const window = this.windowOf(area.buffer);
    if (!window) return plainWrite(area.buffer, at, width, v);
    window.device.writeRegister(window.region, window.offset + at, width, v);
  }

  private locate(buffer: unknown, offset: unknown, width: Width, prot: number) {
    const area = this.memory.get(arrayBufferArg(buffer, 'buffer'));
    if (!area) throw notLive('buffer', 'any');
    // On real memory this would be SIGSEGV; the addon refuses it instead.
    if ((area.prot & prot) !== prot) throw protRefused(prot === PROT_READ ? 'PROT_READ' : 'PROT_WRITE');
    const at = integerArg(offset, 'offset', 0, Number.MAX_SAFE_INTEGER);
    checkOffset(area.length, at, width);
    return { area, at };
  }
}
