/**
 * A memfd (memfd_create + ftruncate): shmem pages IOMMU_IOAS_MAP_FILE can
 * map by fd and offset, which is how a VMM maps guest memory that is not in
 * its own address space. `bytes` are the file's contents, for tests to fill
 * and inspect; a device DMAs straight into them.
 */
export class FakeMemfd {
  readonly bytes: Uint8Array;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
  }
}
