// @guest-needs iommu suite
// @guest-backends container iommufd
/**
 * Mapped MMIO is done from JavaScript on typed-array views of the BAR (see
 * MmioWindow): Atomics.load for reads, element stores for writes. What
 * makes that correct is what the engine does with them once it optimizes
 * the caller, so these tests force V8's optimizing compiler onto small
 * driver functions and let edu judge: its registers answer every access,
 * so a load served from a register (load forwarding), a store dropped or
 * merged with the next one (store elimination) or a status read hoisted
 * out of a polling loop all give wrong values or a hang.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import v8 from 'node:v8';
import * as b from 'vfio-bindings';
import type { RegionMapping } from 'vfio-ioctls';
import { EDU, openEdu, trackResources } from './helpers';

const { keep, assertNoLeaks } = trackResources();

// V8's test intrinsics, for this file only: force optimization and ask
// whether it happened. The flag must be set before the helpers are parsed.
v8.setFlagsFromString('--allow-natives-syntax');
const optimizeOnNextCall = new Function('f', '%PrepareFunctionForOptimization(f); return f;') as <F>(f: F) => F;
const forceOptimize = new Function('f', '%OptimizeFunctionOnNextCall(f);') as (f: unknown) => void;
const optimizationStatus = new Function('f', 'return %GetOptimizationStatus(f);') as (f: unknown) => number;
/** V8's OptimizationStatus bit for "has optimized code" (runtime-test.cc). */
const OPTIMIZED = 1 << 4;

/** Warms `f` up, has V8 optimize it on the next call, and makes that call. */
function optimized<A extends unknown[], R>(f: (...args: A) => R, ...args: A): (...args: A) => R {
  optimizeOnNextCall(f);
  for (let i = 0; i < 3; i++) f(...args);
  forceOptimize(f);
  f(...args);
  return f;
}

test('optimized code: a load after a store reads the device, not the stored value', () => {
  const { dev, mmio } = openEdu(keep);
  // Liveness reads back the inverse of what was written: a load forwarded
  // from the store would return `value` itself.
  const writeThenRead = (m: RegionMapping, value: number): number => {
    m.write32(EDU.LIVENESS, value);
    return m.read32(EDU.LIVENESS);
  };
  const f = optimized(writeThenRead, mmio, 1);
  let wrong = 0;
  for (let i = 0; i < 20_000; i++) {
    const value = (i * 0x9e37_79b9) >>> 0;
    if (f(mmio, value) !== ~value >>> 0) wrong++;
  }
  assert.equal(wrong, 0);
  assert.ok(optimizationStatus(f) & OPTIMIZED, `not optimized: status ${optimizationStatus(f).toString(2)}`);
  mmio.unmap();
  dev.close();
});

test('optimized code: two stores to one register both reach the device, in order', () => {
  const { dev, mmio } = openEdu(keep);
  // Interrupts must go somewhere: with MSI off, edu would assert INTx with
  // no handler. Each raise ORs its bits into the status, so dropping or
  // merging the first store leaves its bit out.
  const irqs = keep(dev.enableIrq(b.VFIO_PCI_MSI_IRQ_INDEX));
  const raiseTwice = (m: RegionMapping, first: number, second: number): number => {
    m.write32(EDU.IRQ_RAISE, first);
    m.write32(EDU.IRQ_RAISE, second);
    const status = m.read32(EDU.IRQ_STATUS);
    m.write32(EDU.IRQ_ACK, status);
    return status;
  };
  const f = optimized(raiseTwice, mmio, 0x10, 0x20);
  let wrong = 0;
  for (let i = 0; i < 5_000; i++) {
    const first = 1 << (i % 8);
    const second = 1 << (8 + (i % 8));
    if (f(mmio, first, second) !== (first | second)) wrong++;
  }
  assert.equal(wrong, 0);
  assert.equal(mmio.read32(EDU.IRQ_STATUS), 0);
  assert.ok(optimizationStatus(f) & OPTIMIZED, `not optimized: status ${optimizationStatus(f).toString(2)}`);
  irqs.close();
  mmio.unmap();
  dev.close();
});

test('optimized code: a polling loop sees the status change (the load is not hoisted)', { timeout: 60_000 }, () => {
  const { dev, mmio } = openEdu(keep);
  // The factorial runs on a QEMU thread; STATUS bit 0 stays set until it
  // is done. A load hoisted out of the loop would spin forever.
  const factorial = (m: RegionMapping, n: number): number => {
    m.write32(EDU.FACTORIAL, n);
    while (m.read32(EDU.STATUS) & EDU.STATUS_COMPUTING);
    return m.read32(EDU.FACTORIAL);
  };
  const f = optimized(factorial, mmio, 5);
  const expected = [1, 1, 2, 6, 24, 120, 720, 5040, 40320, 362880, 3628800, 39916800, 479001600];
  for (let i = 0; i < 2_000; i++) {
    const n = i % expected.length;
    assert.equal(f(mmio, n), expected[n]);
  }
  assert.ok(optimizationStatus(f) & OPTIMIZED, `not optimized: status ${optimizationStatus(f).toString(2)}`);
  mmio.unmap();
  dev.close();
});

test('64-bit registers: one store and one load of 8 bytes, in optimized code too', () => {
  const { dev, mmio } = openEdu(keep);
  const roundTrip = (m: RegionMapping, value: bigint): bigint => {
    m.write64(EDU.DMA_SRC, value);
    return m.read64(EDU.DMA_SRC);
  };
  const f = optimized(roundTrip, mmio, 1n);
  for (let i = 0n; i < 2_000n; i++) {
    const value = (i * 0x9e37_79b9_7f4a_7c15n) & 0xffff_ffff_ffff_fff8n;
    assert.equal(f(mmio, value), value);
  }
  mmio.unmap();
  dev.close();
});

test('leaves no fd or locked memory behind', () => {
  assertNoLeaks();
});
