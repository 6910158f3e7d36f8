// @guest-needs iommu bigbar
/**
 * GPU-sized BARs against the real kernel (issue #12): the bigbar profile's
 * ivshmem-plain devices have a BAR2 of 4 GiB and one of 16 GiB, both RAM
 * in QEMU. At every width and at offsets just below and above each 2^32
 * boundary, what a mapping stores pread reads, and what pwrite stores the
 * mapping loads. A 4 GiB mapping once had empty views (every access a
 * RangeError) and an 8 GiB one crashed the process.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { constants } from 'node:buffer';
import type { Region, RegionMapping } from 'vfio-ioctls';
import { device, openDevice, trackResources } from './helpers';

const { keep, assertNoLeaks } = trackResources();

const GiB = 2 ** 30;
const BAR2 = 2;
const WIDTHS = [1, 2, 4, 8] as const;
/** The longest window Region.map makes: one ArrayBuffer (4 GiB on Node 20), in whole pages. */
const LONGEST = constants.MAX_LENGTH - (constants.MAX_LENGTH % 4096);

/** The offsets to test in a BAR of `size`: around each 2^32 boundary inside it, the start and the end. */
function offsetsIn(size: number, width: number): number[] {
  const offsets = [0, 2 ** 31, size - 64, size - width];
  for (let boundary = 2 ** 32; boundary < size; boundary += 2 ** 32) offsets.push(boundary - 64, boundary - width, boundary, boundary + 8);
  return offsets;
}

function valueAt(offset: number, width: number, salt: bigint): bigint {
  return BigInt.asUintN(width * 8, BigInt(offset) * 0x9e37_79b9_7f4an + salt);
}

function load(mapping: RegionMapping, offset: number, width: number): bigint {
  if (width === 8) return mapping.read64(offset);
  return BigInt(width === 1 ? mapping.read8(offset) : width === 2 ? mapping.read16(offset) : mapping.read32(offset));
}

function store(mapping: RegionMapping, offset: number, width: number, value: bigint): void {
  if (width === 8) mapping.write64(offset, value);
  else if (width === 1) mapping.write8(offset, Number(value));
  else if (width === 2) mapping.write16(offset, Number(value));
  else mapping.write32(offset, Number(value));
}

function preadValue(region: Region, offset: number, width: number): bigint {
  return region.read(offset, width).reduceRight((value, byte) => (value << 8n) | BigInt(byte), 0n);
}

function pwriteValue(region: Region, offset: number, width: number, value: bigint): void {
  region.write(offset, Uint8Array.from({ length: width }, (_, i) => Number((value >> BigInt(8 * i)) & 0xffn)));
}

/** BAR2's size and start as sysfs reports them (line 3 of `resource`). */
function sysfsBar2(address: string): { start: bigint; size: bigint } {
  const [start, end] = readFileSync(`/sys/bus/pci/devices/${address}/resource`, 'utf8').split('\n')[BAR2]!.split(/\s+/).map((x) => BigInt(x));
  return { start: start!, size: end! - start! + 1n };
}

/** Both directions at every width and test offset, then nothing wrapped onto offset 0 of a window. */
function checkBothWays(region: Region, mapping: RegionMapping, size: number): void {
  for (const width of WIDTHS) {
    for (const offset of offsetsIn(size, width)) {
      const stored = valueAt(offset, width, 1n);
      store(mapping, offset, width, stored);
      assert.equal(preadValue(region, offset, width), stored, `mapping store, pread at ${offset.toString(16)} (${width} bytes)`);
      const written = valueAt(offset, width, 2n);
      pwriteValue(region, offset, width, written);
      assert.equal(load(mapping, offset, width), written, `pwrite, mapping load at ${offset.toString(16)} (${width} bytes)`);
    }
  }
}

for (const [role, size] of [['ivshmem-4g', 4 * GiB], ['ivshmem-16g', 16 * GiB]] as const) {
  test(`${role}: BAR2 of ${size / GiB} GiB mapped whole agrees with pread/pwrite at every width around each 2^32 boundary`, () => {
    const { address } = device(role);
    const bar = sysfsBar2(address);
    assert.equal(bar.size, BigInt(size));
    const dev = keep(openDevice(address));
    const region = dev.region(BAR2)!;
    assert.equal(region.size, BigInt(size));
    assert.ok(region.readable && region.writable && region.mappable);
    const mapping = region.map();
    try {
      const expected: [number, number][] = [];
      for (let at = 0; at < size; at += LONGEST) expected.push([at, Math.min(LONGEST, size - at)]);
      assert.deepEqual(mapping.windows.map((w) => [w.offset, w.size]), expected);
      // Clear the marker spots first: BAR memory lives as long as QEMU.
      for (const offset of [0, 8, 16]) pwriteValue(region, offset, 8, 0n);
      checkBothWays(region, mapping, size);
      assert.equal(preadValue(region, 8, 8), 0n, 'nothing wrapped onto the start');
    } finally {
      mapping.unmap();
    }
    dev.close();
  });
}

test('ivshmem-16g: partial mappings across 2^33 and from below 3 * 2^32 to the end alias the whole mapping and pread', () => {
  const dev = keep(openDevice(device('ivshmem-16g').address));
  const region = dev.region(BAR2)!;
  const page = 4096;
  const whole = region.map();
  const acrossTwo33 = region.map({ offset: 2n ** 33n - BigInt(page), size: 2 * page });
  const tail = region.map({ offset: 3 * 2 ** 32 - page });
  try {
    assert.deepEqual(acrossTwo33.windows.map((w) => [w.offset, w.size]), [[2 ** 33 - page, 2 * page]]);
    // The tail is longer than one ArrayBuffer (on Node 20): it maps as two windows.
    const tailWindows: [number, number][] = [];
    for (let at = 3 * 2 ** 32 - page; at < 16 * GiB; at += LONGEST) tailWindows.push([at, Math.min(LONGEST, 16 * GiB - at)]);
    assert.deepEqual(tail.windows.map((w) => [w.offset, w.size]), tailWindows);
    for (const width of WIDTHS) {
      for (const [part, offset] of [[acrossTwo33, 2 ** 33 - width], [acrossTwo33, 2 ** 33], [tail, 3 * 2 ** 32 - width], [tail, 3 * 2 ** 32], [tail, 16 * GiB - width]] as const) {
        const value = valueAt(offset, width, 3n);
        store(part, offset, width, value);
        assert.equal(load(whole, offset, width), value, `partial store, whole load at ${offset.toString(16)}`);
        assert.equal(preadValue(region, offset, width), value, `partial store, pread at ${offset.toString(16)}`);
      }
    }
  } finally {
    tail.unmap();
    acrossTwo33.unmap();
    whole.unmap();
  }
  dev.close();
});

test('leaves no fd or locked memory behind', () => {
  assertNoLeaks();
});
