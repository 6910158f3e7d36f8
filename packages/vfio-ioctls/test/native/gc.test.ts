import { removeTempDirs, tempFile } from './helpers';
import { runChild } from './child';

afterAll(removeTempDirs);

// In a child with --expose-gc: the finalizer of a dropped mapping unmaps it,
// and the finalizer of an explicitly unmapped one does not unmap again.
describe('mapping finalizers', () => {
  it('unmap collected buffers, once', () => {
    const file = tempFile(4096);
    const result = runChild(`
      const fs = require('node:fs');
      const file = ${JSON.stringify(file)};
      const mapped = () => fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.endsWith(file)).length;
      const collect = async () => {
        for (let i = 0; i < 4; i++) { global.gc(); await new Promise((r) => setImmediate(r)); }
      };
      (async () => {
        const fd = addon.open(file, addon.constants.O_RDWR);
        let buffers = [];
        for (let i = 0; i < 50; i++) buffers.push(addon.mmap(fd, 4096, 3, 0n));
        const before = mapped();
        buffers = null;
        await collect();
        const afterCollect = mapped();

        // Unmap explicitly, map again (the kernel reuses the hole), then let
        // the first buffer be collected: its finalizer must leave the new one alone.
        let first = addon.mmap(fd, 4096, 3, 0n);
        const address = addon.addressOf(first);
        addon.munmap(first);
        first = null;
        const second = addon.mmap(fd, 4096, 3, 0n);
        const sameAddress = addon.addressOf(second) === address;
        await collect();
        addon.mmioWrite32(second, 0, 0x11223344);
        console.log(JSON.stringify({ before, afterCollect, sameAddress, stillMapped: mapped(), value: addon.mmioRead32(second, 0) }));
      })();
    `, ['--expose-gc']);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({
      before: 50, afterCollect: 0, sameAddress: true, stillMapped: 1, value: 0x11223344,
    });
  });
});
