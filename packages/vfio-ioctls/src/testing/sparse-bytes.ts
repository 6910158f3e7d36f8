/**
 * The bytes of a large fake region (a GPU-sized BAR), allocated a page at a
 * time when first written: a 16 GiB region costs only the pages a test
 * writes. Bytes never written read as zero. Offsets are numbers (exact up
 * to 2^53, far past any region the fake models).
 */
export class SparseBytes {
  private readonly pages = new Map<number, Uint8Array>();

  constructor(private readonly pageSize: number) {}

  /** Pages holding data; a test can check that nothing was filled in wholesale. */
  get allocatedPages(): number {
    return this.pages.size;
  }

  /** Fills `out` with the bytes at `offset`. */
  read(offset: number, out: Uint8Array): void {
    this.eachPage(offset, out.length, (page, from, to, at) => {
      const bytes = this.pages.get(page);
      if (bytes) out.set(bytes.subarray(from, to), at);
      else out.fill(0, at, at + to - from);
    });
  }

  /** Stores `data` at `offset`; zeros bound for a page never written leave it unallocated. */
  write(offset: number, data: Uint8Array): void {
    this.eachPage(offset, data.length, (page, from, to, at) => {
      const part = data.subarray(at, at + to - from);
      let bytes = this.pages.get(page);
      if (!bytes) {
        if (part.every((b) => b === 0)) return;
        this.pages.set(page, (bytes = new Uint8Array(this.pageSize)));
      }
      bytes.set(part, from);
    });
  }

  /**
   * Copies the written bytes in [offset, offset + target.length) into
   * `target`, which must be zero-filled: the cost follows the pages
   * written, not the length (a new 4 GiB mapping is never read through).
   */
  copyInto(offset: number, target: Uint8Array): void {
    const end = offset + target.length;
    for (const [page, bytes] of this.pages) {
      const start = page * this.pageSize;
      const from = Math.max(start, offset);
      const to = Math.min(start + this.pageSize, end);
      if (from < to) target.set(bytes.subarray(from - start, to - start), from - offset);
    }
  }

  /** Calls `visit(page, from, to, at)` for each page [from, to) of the span, `at` being its position in the span. */
  private eachPage(offset: number, length: number, visit: (page: number, from: number, to: number, at: number) => void): void {
    let at = 0;
    while (at < length) {
      const position = offset + at;
      const page = Math.floor(position / this.pageSize);
      const from = position - page * this.pageSize;
      const to = Math.min(this.pageSize, from + length - at);
      visit(page, from, to, at);
      at += to - from;
    }
  }
}
