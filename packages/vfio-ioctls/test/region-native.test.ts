import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as b from 'vfio-bindings';
import type { Backend } from '../src';
import { MAX_MAPPING_LENGTH } from '../src/core/backend';
import { VfioContext } from '../src/core/context';
import { nativeBackend, O_RDWR } from '../src/core/native';
import { probeRegion, type Region } from '../src/device/region';

// Region and its mappings on the real addon, with a sparse file standing in
// for a device's 16 GiB BAR: the backend is the native one except for
// GET_REGION_INFO, which describes the file. So pread/pwrite, mmap and the
// typed-array views of the windows (where `byteLength >>> n` and
// `offset >>> n` wrapped at 2^32) are the real ones; the guest suite
// (big-bar.test.ts) does the same on ivshmem BARs.

const GiB = 2 ** 30;
const SIZE = 16 * GiB;

let dir: string;
let fd: number;
let region: Region;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfio-bar-'));
  const file = path.join(dir, 'bar');
  const handle = fs.openSync(file, 'w');
  fs.ftruncateSync(handle, SIZE);
  fs.closeSync(handle);
  fd = nativeBackend.open(file, O_RDWR);
  const backend: Backend = {
    ...nativeBackend,
    ioctl: (_fd, request, arg) => {
      if (request !== b.VFIO_DEVICE_GET_REGION_INFO || !(arg instanceof Uint8Array)) throw new Error('only GET_REGION_INFO is modelled');
      const { argsz, index } = b.vfio_region_info.decode(arg, 0);
      const flags = b.VFIO_REGION_INFO_FLAG_READ | b.VFIO_REGION_INFO_FLAG_WRITE | b.VFIO_REGION_INFO_FLAG_MMAP;
      b.vfio_region_info.encode({ argsz, flags, index, cap_offset: 0, size: BigInt(SIZE), offset: 0n }, arg, 0);
      return 0;
    },
  };
  region = probeRegion({ fd, context: VfioContext.from({ backend }), name: 'sparse-bar' }, 0)!;
});

afterAll(() => {
  nativeBackend.close(fd);
  fs.rmSync(dir, { recursive: true, force: true });
});

const WIDTHS = [1, 2, 4, 8] as const;
const OFFSETS = [2 ** 32, 2 ** 33, 3 * 2 ** 32].flatMap((boundary) => [boundary - 64, boundary - 8, boundary, boundary + 8]);

function valueAt(offset: number, width: number): bigint {
  return BigInt.asUintN(width * 8, BigInt(offset) * 0x9e37_79b9n + BigInt(width) + 1n);
}

function load(mapping: ReturnType<Region['map']>, offset: number, width: number): bigint {
  if (width === 8) return mapping.read64(offset);
  return BigInt(width === 1 ? mapping.read8(offset) : width === 2 ? mapping.read16(offset) : mapping.read32(offset));
}

function store(mapping: ReturnType<Region['map']>, offset: number, width: number, value: bigint): void {
  if (width === 8) mapping.write64(offset, value);
  else if (width === 1) mapping.write8(offset, Number(value));
  else if (width === 2) mapping.write16(offset, Number(value));
  else mapping.write32(offset, Number(value));
}

function preadValue(offset: number, width: number): bigint {
  const bytes = region.read(offset, width);
  return bytes.reduceRight((value, byte) => (value << 8n) | BigInt(byte), 0n);
}

test('map() of the 16 GiB region: windows of one ArrayBuffer each, every width agreeing with pread/pwrite both ways', () => {
  const mapping = region.map();
  const longest = MAX_MAPPING_LENGTH - (MAX_MAPPING_LENGTH % nativeBackend.pageSize());
  expect(mapping.windows.length).toBe(Math.ceil(SIZE / longest));
  expect(mapping.windows.reduce((sum, w) => sum + w.size, 0)).toBe(SIZE);
  try {
    for (const width of WIDTHS) {
      for (const offset of OFFSETS) {
        const value = valueAt(offset, width);
        store(mapping, offset, width, value);
        expect(preadValue(offset, width)).toBe(value);
        const other = BigInt.asUintN(width * 8, ~value);
        region.write(offset, Uint8Array.from({ length: width }, (_, i) => Number((other >> BigInt(8 * i)) & 0xffn)));
        expect(load(mapping, offset, width)).toBe(other);
      }
    }
    // Offsets past 2^32 did not wrap onto the start of a window.
    expect(region.read(0, 128).every((byte) => byte === 0)).toBe(true);
    expect(load(mapping, 0, 8)).toBe(0n);
  } finally {
    mapping.unmap();
  }
});

test('a window of exactly the longest ArrayBuffer (4 GiB on Node 20) has views spanning all of it', () => {
  const size = Math.min(MAX_MAPPING_LENGTH, 4 * GiB);
  const mapping = region.map({ offset: 8 * GiB, size });
  try {
    expect(mapping.windows.map((w) => [w.offset, w.size])).toEqual([[8 * GiB, size]]);
    for (const width of WIDTHS) {
      const offset = 8 * GiB + size - 8 * width;
      store(mapping, offset, width, valueAt(offset, width));
      expect(preadValue(offset, width)).toBe(valueAt(offset, width));
    }
  } finally {
    mapping.unmap();
  }
});

test('map({ offset, size }) of two pages across 2^33, and the checks of a partial map', () => {
  const page = nativeBackend.pageSize();
  const mapping = region.map({ offset: 2n ** 33n - BigInt(page), size: 2 * page });
  try {
    store(mapping, 2 ** 33 - 8, 8, 0x1122334455667788n);
    store(mapping, 2 ** 33, 4, 0x99aabbccn);
    expect(preadValue(2 ** 33 - 8, 8)).toBe(0x1122334455667788n);
    expect(region.readUint32(2 ** 33)).toBe(0x99aabbcc);
    expect(() => mapping.read8(2 ** 33 + page)).toThrow(expect.objectContaining({ name: 'RangeError' }));
  } finally {
    mapping.unmap();
  }
  expect(() => region.map({ offset: 2 ** 33 + 512 })).toThrow(expect.objectContaining({ code: 'ERR_VFIO_MISALIGNED' }));
  expect(() => region.map({ offset: 2 ** 33, size: 8 * GiB + 1 })).toThrow(expect.objectContaining({ name: 'RangeError', message: expect.stringContaining('options.size') }));
});
