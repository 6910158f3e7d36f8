// @guest-needs iommu suite
// @guest-backends container iommufd
/**
 * DMA through the IOMMU with edu's DMA engine, interrupts delivered to JS
 * (edu's MSI and INTx, nvme's MSI-X), masking, resets and hot reset info.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import * as b from 'vfio-bindings';
import { Device, DmaBuffer, DmaMapping, Interrupts, IovaAllocator, type InterruptEvent } from 'vfio-ioctls';
import { EduDevice } from '../../examples/edu-driver';
import {
  assertNoInterrupt,
  device,
  EDU,
  nextInterrupt,
  openEdu,
  resources,
  throwsArg,
  throwsVfio,
  trackResources,
  waitFor,
  openDevice,
  startEduDma,
  eduDmaDone,
} from './helpers';

const { keep, assertNoLeaks } = trackResources();


test('DmaBuffer: page-rounded, zeroed, closable when unmapped', () => {
  const buffer = keep(DmaBuffer.alloc(100));
  assert.equal(buffer.size, 4096);
  assert.equal(buffer.bytes.length, 4096);
  assert.ok(buffer.bytes.every((x) => x === 0));
  buffer.view.setUint32(0, 0xfeed_f00d, true);
  assert.equal(buffer.bytes[0], 0x0d);
  assert.equal(buffer.mapped, false);
  assert.equal(buffer.closed, false);
  buffer.close();
  assert.equal(buffer.closed, true);
  throwsVfio(() => buffer.bytes, { code: 'ERR_VFIO_CLOSED' });
  buffer.close(); // idempotent
  throwsArg(() => DmaBuffer.alloc(0), 'RangeError');
});

test('DMA round trip through the IOMMU: RAM to edu and back', async () => {
  const { dev, mmio } = openEdu(keep);
  const container = dev.iommu!;
  const buffer = keep(DmaBuffer.alloc(4096));
  const locked = resources().lockedKiB;
  const mapping = container.map(buffer, { maxIova: EDU.MAX_IOVA });
  // The kernel pins the mapped page: the container counts it in VmLck,
  // iommufd in VmPin (the leak check watches both).
  assert.equal(resources().lockedKiB, locked + 4);
  assert.ok(mapping instanceof DmaMapping);
  assert.equal(mapping.buffer, buffer);
  assert.equal(mapping.size, 4096n);
  assert.equal(mapping.end, mapping.iova + 4095n);
  assert.ok(mapping.iova > 0n && mapping.iova <= BigInt(EDU.MAX_IOVA) && mapping.iova % 4096n === 0n);
  assert.equal(mapping.read && mapping.write, true);
  assert.equal(buffer.mapped, true);
  assert.deepEqual(container.mappings(), [mapping]);
  throwsVfio(() => buffer.close(), { code: 'ERR_VFIO_BUFFER_MAPPED' });

  const half = EDU.MAX_TRANSFER;
  const bytes = buffer.bytes;
  for (let i = 0; i < half; i++) bytes[i] = (i * 7 + 3) & 0xff;
  startEduDma(mmio, mapping.iova, BigInt(EDU.BUFFER), half, 0);
  await eduDmaDone(mmio);
  startEduDma(mmio, BigInt(EDU.BUFFER), mapping.iova + BigInt(half), half, EDU.DMA_TO_RAM);
  await eduDmaDone(mmio);
  assert.deepEqual(bytes.subarray(half, 2 * half), bytes.subarray(0, half));

  mapping.unmap();
  assert.equal(resources().lockedKiB, locked);
  assert.equal(mapping.mapped, false);
  assert.equal(buffer.mapped, false);
  assert.deepEqual(container.mappings(), []);
  mapping.unmap(); // idempotent
  buffer.close();
  dev.close();
});

test('DMA at a chosen IOVA, completion signalled by MSI; unmapAll', async () => {
  const { dev, mmio } = openEdu(keep);
  const container = dev.iommu!;
  const source = keep(DmaBuffer.alloc(4096));
  const target = keep(DmaBuffer.alloc(4096));
  // Pick the IOVA ourselves, from the ranges the IOMMU reports, below edu's DMA mask.
  const allocator = new IovaAllocator(container.iovaRanges(), 4096n);
  const iova = allocator.allocate(0x2000n, BigInt(EDU.MAX_IOVA));
  assert.ok(iova !== undefined && iova + 0x2000n <= BigInt(EDU.MAX_IOVA) + 1n);
  const from = container.map(source, { iova, write: false });
  assert.equal(from.iova, iova);
  assert.equal(from.write, false);
  throwsArg(() => container.map(target, { iova }), 'RangeError', 'ERR_VFIO_DMA_OVERLAP');
  throwsArg(() => container.map(target, { iova: iova + 0x800n }), 'RangeError', 'ERR_VFIO_MISALIGNED');
  const to = container.map(target, { iova: iova + 0x1000n, read: false });

  const irqs = keep(dev.enableIrq(b.VFIO_PCI_MSI_IRQ_INDEX));
  // Filled after mapping, and mapped read-only: the device must still see
  // these bytes (it saw the zero page before allocDma populated its pages).
  crypto.getRandomValues(source.bytes);
  const size = 1024;
  startEduDma(mmio, from.iova, BigInt(EDU.BUFFER), size, EDU.DMA_IRQ);
  await nextInterrupt(irqs);
  assert.equal(mmio.read32(EDU.IRQ_STATUS) & EDU.IRQ_DMA, EDU.IRQ_DMA);
  mmio.write32(EDU.IRQ_ACK, EDU.IRQ_DMA);
  startEduDma(mmio, BigInt(EDU.BUFFER), to.iova, size, EDU.DMA_TO_RAM | EDU.DMA_IRQ);
  await nextInterrupt(irqs);
  mmio.write32(EDU.IRQ_ACK, EDU.IRQ_DMA);
  assert.deepEqual(target.bytes.subarray(0, size), source.bytes.subarray(0, size));
  irqs.disable();

  to.close();
  assert.equal(to.mapped, false);
  container.unmapAll();
  assert.equal(from.mapped, false);
  assert.deepEqual(container.mappings(), []);
  source.close();
  target.close();
  dev.close();
});

test('closing the device and its container unmaps what is still mapped', () => {
  const { dev } = openEdu(keep);
  const buffer = keep(DmaBuffer.alloc(8192));
  const mapping = (dev.iommu!).map(buffer, { maxIova: EDU.MAX_IOVA });
  dev.close(); // the last device of Device.open's container: the container closes too
  assert.equal(mapping.mapped, false);
  buffer.close();
});

test('MSI: factorial-done and raise-interrupt delivered to JS', async () => {
  const { dev, mmio } = openEdu(keep);
  const irqs = keep(dev.enableIrq(b.VFIO_PCI_MSI_IRQ_INDEX));
  assert.ok(irqs instanceof Interrupts);
  assert.equal(irqs.index, b.VFIO_PCI_MSI_IRQ_INDEX);
  assert.deepEqual([irqs.start, irqs.count, irqs.vectors], [0, 1, [0]]);
  assert.equal(irqs.enabled, true);
  assert.equal(irqs.info.noresize, true);
  assert.deepEqual(dev.interrupts(), [irqs]);

  // Factorial with an interrupt on completion.
  mmio.write32(EDU.STATUS, EDU.STATUS_IRQ_ON_FACTORIAL);
  mmio.write32(EDU.FACTORIAL, 10);
  const event = await nextInterrupt(irqs);
  assert.equal(event.index, b.VFIO_PCI_MSI_IRQ_INDEX);
  assert.equal(event.vector, 0);
  assert.ok(event.count >= 1);
  assert.equal(mmio.read32(EDU.FACTORIAL), 3_628_800);
  assert.equal(mmio.read32(EDU.IRQ_STATUS) & EDU.IRQ_FACTORIAL, EDU.IRQ_FACTORIAL);
  mmio.write32(EDU.IRQ_ACK, EDU.IRQ_FACTORIAL);
  mmio.write32(EDU.STATUS, 0);

  // Raise interrupt, heard through an 'interrupt' listener this time.
  const heard = once(irqs, 'interrupt', { signal: AbortSignal.timeout(10_000) });
  mmio.write32(EDU.IRQ_RAISE, 0x4);
  const [raised] = (await heard) as [InterruptEvent];
  assert.equal(raised.vector, 0);
  assert.equal(mmio.read32(EDU.IRQ_STATUS), 0x4);
  mmio.write32(EDU.IRQ_ACK, 0x4);
  assert.equal(mmio.read32(EDU.IRQ_STATUS), 0);

  // Software trigger (loopback) and the async iterator.
  const iterator = irqs.events({ signal: AbortSignal.timeout(10_000) });
  irqs.trigger();
  const looped = await iterator.next();
  assert.equal(looped.done, false);
  await iterator.return?.();
  // The Interrupts itself is async-iterable; leaving the loop stops the watching.
  irqs.trigger(0);
  for await (const event of irqs) {
    assert.equal(event.vector, 0);
    break;
  }

  // MSI cannot be masked through VFIO; INTx cannot be enabled beside it.
  throwsVfio(() => irqs.mask(), { code: 'ERR_VFIO_UNSUPPORTED' });
  throwsVfio(() => irqs.unmask(), { code: 'ERR_VFIO_UNSUPPORTED' });
  throwsArg(() => dev.enableIrq(b.VFIO_PCI_MSI_IRQ_INDEX), 'RangeError', 'ERR_VFIO_IRQ_BUSY');
  throwsVfio(() => dev.enableIrq(b.VFIO_PCI_INTX_IRQ_INDEX), { code: 'EINVAL', operation: 'VFIO_DEVICE_SET_IRQS' });

  let closed = false;
  irqs.on('close', () => (closed = true));
  const pending = irqs.next();
  irqs.disable();
  assert.equal(closed, true);
  assert.equal(irqs.enabled, false);
  await assert.rejects(pending, { code: 'ERR_VFIO_CLOSED' });
  assert.deepEqual(dev.interrupts(), []);
  throwsVfio(() => irqs.trigger(), { code: 'ERR_VFIO_CLOSED' });
  irqs.disable(); // idempotent
  dev.close();
});

test('INTx: raise and factorial-done interrupts, unmasked through the resample eventfd; mask holds one back', async () => {
  const { dev, mmio } = openEdu(keep);
  const irqs = keep(dev.enableIrq(b.VFIO_PCI_INTX_IRQ_INDEX));
  assert.equal(irqs.info.automasked && irqs.info.maskable, true);

  // INTx is level-triggered: acknowledge at the device, then unmask.
  for (let round = 0; round < 2; round++) {
    mmio.write32(EDU.IRQ_RAISE, 0x1);
    const event = await nextInterrupt(irqs);
    assert.equal(event.index, b.VFIO_PCI_INTX_IRQ_INDEX);
    mmio.write32(EDU.IRQ_ACK, 0x1);
    irqs.unmask();
  }

  // The factorial-done interrupt, over INTx this time.
  mmio.write32(EDU.STATUS, EDU.STATUS_IRQ_ON_FACTORIAL);
  const done = nextInterrupt(irqs);
  mmio.write32(EDU.FACTORIAL, 6);
  assert.equal((await done).index, b.VFIO_PCI_INTX_IRQ_INDEX);
  assert.equal(mmio.read32(EDU.FACTORIAL), 720);
  mmio.write32(EDU.IRQ_ACK, EDU.IRQ_FACTORIAL);
  mmio.write32(EDU.STATUS, 0);
  irqs.unmask();

  // Masked, a raised interrupt is held back; unmasking delivers it.
  irqs.mask();
  mmio.write32(EDU.IRQ_RAISE, 0x2);
  await assertNoInterrupt(irqs, 1000);
  const held = nextInterrupt(irqs);
  irqs.unmask();
  assert.equal((await held).index, b.VFIO_PCI_INTX_IRQ_INDEX);
  mmio.write32(EDU.IRQ_ACK, 0x2);
  irqs.unmask(0);

  throwsVfio(() => dev.enableIrq(b.VFIO_PCI_MSI_IRQ_INDEX), { code: 'EINVAL', operation: 'VFIO_DEVICE_SET_IRQS' });
  dev.close(); // disables the interrupts too
  assert.equal(irqs.enabled, false);
});

test('MSI-X on nvme: vectors delivered by the loopback trigger', async () => {
  const dev = keep(openDevice(device('nvme').address));
  assert.equal(dev.irqInfo(b.VFIO_PCI_MSIX_IRQ_INDEX).count, 65);
  const irqs = keep(dev.enableIrq(b.VFIO_PCI_MSIX_IRQ_INDEX, { count: 8 }));
  assert.deepEqual(irqs.vectors, [0, 1, 2, 3, 4, 5, 6, 7]);
  throwsArg(() => dev.enableIrq(b.VFIO_PCI_MSIX_IRQ_INDEX, { start: 4, count: 1 }), 'RangeError', 'ERR_VFIO_IRQ_BUSY');
  throwsArg(() => irqs.trigger(8), 'RangeError');
  throwsVfio(() => irqs.mask(3), { code: 'ERR_VFIO_UNSUPPORTED' });

  // Several vectors at once arrive as one event each.
  const seen = new Set<number>();
  irqs.on('interrupt', (event: InterruptEvent) => seen.add(event.vector));
  irqs.unref(); // a watcher that does not hold the process open...
  irqs.ref(); // ...and back
  for (const vector of [1, 5, 7]) irqs.trigger(vector);
  await waitFor('three MSI-X vectors', () => seen.size === 3);
  assert.deepEqual([...seen].sort(), [1, 5, 7]);
  irqs.removeAllListeners('interrupt');
  irqs.disable();

  // A range that does not start at 0, up to the last vector.
  const tail = keep(dev.enableIrq(b.VFIO_PCI_MSIX_IRQ_INDEX, { start: 60 }));
  assert.deepEqual(tail.vectors, [60, 61, 62, 63, 64]);
  const next = nextInterrupt(tail);
  tail.trigger(64);
  assert.equal((await next).vector, 64);
  tail.close();
  assert.equal(tail.enabled, false);
  dev.close();
});

test('reset: works on nvme (FLR), is refused clearly on edu', () => {
  const nvme = keep(openDevice(device('nvme').address));
  assert.equal(nvme.info.reset, true);
  nvme.reset();
  assert.equal(nvme.config!.readUint16(0), 0x1b36);
  nvme.close();

  const edu = keep(openDevice(device('edu').address));
  const error = throwsVfio(() => edu.reset(), { code: 'ERR_VFIO_UNSUPPORTED', operation: 'VFIO_DEVICE_RESET', device: device('edu').address });
  assert.match(error.hint ?? '', /reset/);
  edu.close();
});

test('hot reset: nvme behind a root port lists itself and is checked for ownership; edu on the root bus is ENODEV', () => {
  const nvmeInfo = device('nvme');
  const nvme = keep(Device.open(nvmeInfo.address, { iommu: 'container' }));
  const info = nvme.hotResetInfo();
  assert.deepEqual(info.devices.map((d) => [d.address, d.groupId]), [[nvmeInfo.address, nvmeInfo.iommuGroup]]);
  const [only] = info.devices;
  assert.equal(only?.segment, 0);
  assert.equal(only?.devfn, 0);
  const edu = keep(Device.open(device('edu').address, { iommu: 'container' }));
  throwsVfio(() => edu.hotResetInfo(), { code: 'ENODEV', errno: -19, operation: 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO' });

  // The bus reset. The kernel first checks the proof of ownership: without
  // the group of every affected device it is EINVAL...
  throwsVfio(() => nvme.hotReset([edu.group!]), { code: 'EINVAL', operation: 'VFIO_DEVICE_PCI_HOT_RESET' });
  throwsVfio(() => nvme.hotReset([]), { code: 'EINVAL', operation: 'VFIO_DEVICE_PCI_HOT_RESET' });
  // ...with nvme's own group (the default) the proof passes and the kernel
  // tries the reset, which it cannot do below QEMU's pcie-root-port: ENOTTY.
  throwsVfio(() => nvme.hotReset(), { code: 'ENOTTY', operation: 'VFIO_DEVICE_PCI_HOT_RESET' });
  throwsVfio(() => nvme.hotReset([nvme.group!]), { code: 'ENOTTY' });
  assert.equal(nvme.config!.readUint16(0), 0x1b36);
  nvme.close();
  edu.close();
});

test('the example driver: identify, liveness, factorial, DMA with checksum', async () => {
  const edu = EduDevice.open(device('edu').address);
  try {
    assert.equal(edu.identify().id, EDU.IDENT);
    assert.equal(edu.isAlive(), true);
    assert.equal(await edu.factorial(7), 5040);
    const result = await edu.dmaRoundTrip(1500);
    assert.equal(result.returned, result.sent);
  } finally {
    edu.close();
  }
});

test('leaves no fd or locked memory behind', () => {
  assertNoLeaks();
});
