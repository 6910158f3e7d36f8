// @guest-needs compat suite
// @guest-backends container
/**
 * Guest memory on iommufd's emulation of the legacy container (compat-7.3):
 * parts of memfd memory map at chosen IOVAs and edu DMAs there as on
 * type1, but the emulation has no VFIO_UPDATE_VADDR, so the live-update
 * calls refuse with ERR_VFIO_UNSUPPORTED (and a hint to map by fd through
 * an IOAS) before touching any mapping.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as b from 'vfio-bindings';
import { Container, Device, DmaBuffer } from 'vfio-ioctls';
import { device, eduRoundTrip, PCI_COMMAND, PCI_COMMAND_MASTER, throwsVfio, trackResources } from './helpers';

const { keep, assertNoLeaks } = trackResources();

test('compat container: a part of memfd memory at a chosen IOVA, edu DMAs there; the vaddr calls are ERR_VFIO_UNSUPPORTED', async () => {
  const container = keep(Container.open());
  const dev = keep(Device.open(device('edu').address, { container }));
  const config = dev.config!;
  config.writeUint16(PCI_COMMAND, config.readUint16(PCI_COMMAND) | PCI_COMMAND_MASTER);
  const mmio = dev.region(0)!.map();
  assert.equal(container.checkExtension(b.VFIO_UPDATE_VADDR), false);
  const memory = keep(DmaBuffer.alloc(32 * 1024, { memfd: true }));
  const mapping = keep(container.map(memory, { offset: 8192, size: 16384, iova: 0x123_0000n }));
  const refused = throwsVfio(() => container.invalidateVaddr(), { code: 'ERR_VFIO_UNSUPPORTED' });
  assert.match(refused.hint ?? '', /mapFile/);
  throwsVfio(() => container.updateVaddr(mapping, memory, 8192), { code: 'ERR_VFIO_UNSUPPORTED' });
  assert.equal(mapping.mapped, true);
  await eduRoundTrip(mmio, 0x123_0000n, memory.bytes.subarray(8192, 8192 + 16384));
  assert.deepEqual(container.unmapRange(0x123_0000n, 0x4000n), [mapping]);
  memory.close();
});

test('no fd or pinned page left', () => {
  assertNoLeaks();
});
