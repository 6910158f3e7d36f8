import * as b from 'vfio-bindings';
import { FakeKernel } from '../../src/testing';
import { EDU, GROUP, thrown } from './helpers';
import { attach, bind, destroy, ioasAlloc, ioasMap, ioasUnmap, iovaRanges, openCdev, RW, U64_MAX } from './iommufd-helpers';

const PAGE = 4096n;

function openIommufd(options = {}) {
  const kernel = new FakeKernel({ deviceCdevs: true, ...options });
  return { kernel, iommufd: kernel.open(kernel.iommuPath, 2) };
}

function sized<T extends { size: number }>(codec: b.StructCodec<T>, value: Omit<T, 'size'>, size = codec.size, length = Math.max(size, codec.size)): Uint8Array {
  const arg = new Uint8Array(length);
  codec.encode({ ...value, size } as b.EncodeInput<T>, arg);
  return arg;
}

// Linux's EOPNOTSUPP is errno 95, which Node (and so the addon's errors) names ENOTSUP.
describe('/dev/iommu: the ioctl protocol', () => {
  test('/dev/iommu sits next to devRoot; IOAS ids are the lowest free from 1 and are reused', () => {
    const { kernel, iommufd } = openIommufd();
    expect(kernel.iommuPath).toBe('/dev/iommu');
    expect([ioasAlloc(kernel, iommufd), ioasAlloc(kernel, iommufd), ioasAlloc(kernel, iommufd)]).toEqual([1, 2, 3]);
    destroy(kernel, iommufd, 2);
    expect(ioasAlloc(kernel, iommufd)).toBe(2);
    expect(kernel.iommufdObjects()).toEqual([1, 2, 3].map((id) => ({ id, type: 'ioas' })));
    kernel.close(iommufd);
    expect(kernel.iommufdObjects()).toEqual([]);
    expect(new FakeKernel({ devRoot: '/tmp/x/vfio' }).iommuPath).toBe('/tmp/x/iommu');
    kernel.dispose();
  });

  test('size below the minimum is EINVAL, non-zero bytes past the struct E2BIG, a short buffer EFAULT; a longer zeroed struct is fine', () => {
    const { kernel, iommufd } = openIommufd();
    const alloc = (arg: Uint8Array) => thrown(() => kernel.ioctl(iommufd, b.IOMMU_IOAS_ALLOC, arg));
    expect(alloc(sized(b.iommu_ioas_alloc, { flags: 0, out_ioas_id: 0 }, 8))).toMatchObject({ code: 'EINVAL', syscall: 'ioctl' });
    const long = sized(b.iommu_ioas_alloc, { flags: 0, out_ioas_id: 0 }, 16);
    long[13] = 1;
    expect(alloc(long)).toMatchObject({ code: 'E2BIG' });
    expect(alloc(sized(b.iommu_ioas_alloc, { flags: 0, out_ioas_id: 0 }, 16, 12))).toMatchObject({ code: 'EFAULT' });
    expect(alloc(new Uint8Array(2))).toMatchObject({ code: 'EFAULT' });
    expect(alloc(sized(b.iommu_ioas_alloc, { flags: 1, out_ioas_id: 0 }))).toMatchObject({ code: 'ENOTSUP' });
    const ok = sized(b.iommu_ioas_alloc, { flags: 0, out_ioas_id: 0 }, 16);
    kernel.ioctl(iommufd, b.IOMMU_IOAS_ALLOC, ok);
    expect(b.iommu_ioas_alloc.decode(ok).out_ioas_id).toBe(1);
    expect(thrown(() => kernel.ioctl(iommufd, b.IOMMU_IOAS_ALLOC, 0))).toMatchObject({ code: 'EFAULT' });
    // vIOMMUs and VFIO's compat ioctls are not modelled: ENOTTY, as for any unknown command.
    expect(thrown(() => kernel.ioctl(iommufd, b.IOMMU_VIOMMU_ALLOC, new Uint8Array(64)))).toMatchObject({ code: 'ENOTTY' });
    expect(thrown(() => kernel.ioctl(iommufd, b.VFIO_GET_API_VERSION))).toMatchObject({ code: 'ENOTTY' });
    kernel.close(iommufd);
    kernel.dispose();
  });

  test('IOMMU_DESTROY: ENOENT for an unknown id; a destroyed IOAS is gone', () => {
    const { kernel, iommufd } = openIommufd();
    expect(thrown(() => destroy(kernel, iommufd, 7))).toMatchObject({ code: 'ENOENT' });
    const ioas = ioasAlloc(kernel, iommufd);
    destroy(kernel, iommufd, ioas);
    expect(thrown(() => destroy(kernel, iommufd, ioas))).toMatchObject({ code: 'ENOENT' });
    expect(thrown(() => iovaRanges(kernel, iommufd, ioas))).toMatchObject({ code: 'ENOENT' });
    kernel.close(iommufd);
    kernel.dispose();
  });
});

describe('IOAS: IOVA ranges and ALLOW_IOVAS', () => {
  test('an IOAS without a domain spans all of u64 at alignment 1; an attached device brings its aperture, MSI window and page size', () => {
    const { kernel, iommufd, ioas } = openCdev();
    const fresh = ioasAlloc(kernel, iommufd);
    expect(iovaRanges(kernel, iommufd, fresh)).toEqual({ ranges: [{ start: 0n, last: U64_MAX }], alignment: 1n, num: 1 });
    expect(iovaRanges(kernel, iommufd, ioas)).toEqual({
      ranges: [{ start: 0n, last: 0xfedf_ffffn }, { start: 0xfef0_0000n, last: 0x7f_ffff_ffffn }], alignment: PAGE, num: 2,
    });
    kernel.dispose();
  });

  test('too small an array: EMSGSIZE with num_iovas set to the count (as many as fit were written); a bad pointer EFAULT', () => {
    const { kernel, iommufd, ioas } = openCdev();
    const memory = kernel.allocDma(4096);
    const arg = b.iommu_ioas_iova_ranges.encode({ size: 32, ioas_id: ioas, num_iovas: 1, __reserved: 0, allowed_iovas: kernel.addressOf(memory), out_iova_alignment: 0n });
    expect(thrown(() => kernel.ioctl(iommufd, b.IOMMU_IOAS_IOVA_RANGES, arg))).toMatchObject({ code: 'EMSGSIZE' });
    expect(b.iommu_ioas_iova_ranges.decode(arg)).toMatchObject({ num_iovas: 2, out_iova_alignment: PAGE });
    expect(b.iommu_iova_range.decode(new Uint8Array(memory))).toEqual({ start: 0n, last: 0xfedf_ffffn });
    const zero = b.iommu_ioas_iova_ranges.encode({ size: 32, ioas_id: ioas, num_iovas: 0, __reserved: 0, allowed_iovas: 0n, out_iova_alignment: 0n });
    expect(thrown(() => kernel.ioctl(iommufd, b.IOMMU_IOAS_IOVA_RANGES, zero))).toMatchObject({ code: 'EMSGSIZE' });
    const wild = b.iommu_ioas_iova_ranges.encode({ size: 32, ioas_id: ioas, num_iovas: 4, __reserved: 0, allowed_iovas: 0x1000n, out_iova_alignment: 0n });
    expect(thrown(() => kernel.ioctl(iommufd, b.IOMMU_IOAS_IOVA_RANGES, wild))).toMatchObject({ code: 'EFAULT' });
    const reserved = b.iommu_ioas_iova_ranges.encode({ size: 32, ioas_id: ioas, num_iovas: 0, __reserved: 1, allowed_iovas: 0n, out_iova_alignment: 0n });
    expect(thrown(() => kernel.ioctl(iommufd, b.IOMMU_IOAS_IOVA_RANGES, reserved))).toMatchObject({ code: 'ENOTSUP' });
    kernel.dispose();
  });

  function allow(kernel: FakeKernel, iommufd: number, ioas: number, ranges: { start: bigint; last: bigint }[]): void {
    const memory = kernel.allocDma(4096);
    ranges.forEach((r, i) => b.iommu_iova_range.encode(r, new Uint8Array(memory), i * 16));
    try {
      kernel.ioctl(iommufd, b.IOMMU_IOAS_ALLOW_IOVAS, b.iommu_ioas_allow_iovas.encode({
        size: 24, ioas_id: ioas, num_iovas: ranges.length, __reserved: 0, allowed_iovas: kernel.addressOf(memory),
      }));
    } finally {
      kernel.freeDma(memory);
    }
  }

  test('ALLOW_IOVAS narrows where the kernel picks IOVAs; empty, reversed or overlapping ranges EINVAL; over a reserved range EADDRINUSE', () => {
    const { kernel, iommufd, ioas } = openCdev();
    const buffer = kernel.allocDma(8192);
    allow(kernel, iommufd, ioas, [{ start: 0x1_0000_0000n, last: 0x1_ffff_ffffn }]);
    expect(ioasMap(kernel, iommufd, ioas, { va: kernel.addressOf(buffer), length: 8192n })).toBe(0x1_0000_0000n);
    // A fixed IOVA ignores the allowed list.
    expect(ioasMap(kernel, iommufd, ioas, { va: kernel.addressOf(buffer), length: 4096n, iova: 0x10000n })).toBe(0x10000n);
    expect(thrown(() => allow(kernel, iommufd, ioas, [{ start: 5n, last: 5n }]))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => allow(kernel, iommufd, ioas, [{ start: 0n, last: 10n }, { start: 10n, last: 20n }]))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => allow(kernel, iommufd, ioas, [{ start: 0xfee0_0000n, last: 0xfee0_ffffn }]))).toMatchObject({ code: 'EADDRINUSE' });
    // The failed calls left the first list in place.
    expect(ioasMap(kernel, iommufd, ioas, { va: kernel.addressOf(buffer), length: 8192n })).toBe(0x1_0000_2000n);
    allow(kernel, iommufd, ioas, []);
    expect(ioasMap(kernel, iommufd, ioas, { va: kernel.addressOf(buffer), length: 4096n })).toBe(0x1000n);
    expect(thrown(() => kernel.ioctl(iommufd, b.IOMMU_IOAS_ALLOW_IOVAS, b.iommu_ioas_allow_iovas.encode({
      size: 24, ioas_id: ioas, num_iovas: 1, __reserved: 0, allowed_iovas: 8n,
    })))).toMatchObject({ code: 'EFAULT' });
    kernel.dispose();
  });
});

describe('IOAS: MAP, UNMAP, COPY', () => {
  test('the kernel picks the lowest free IOVA above page 0, aligned as the address and length are, and writes it back', () => {
    const { kernel, iommufd, ioas } = openCdev();
    const a = kernel.allocDma(3 * 4096);
    const va = kernel.addressOf(a);
    expect(ioasMap(kernel, iommufd, ioas, { va, length: 8192n })).toBe(0x2000n); // 8 KiB aligned, never IOVA 0
    expect(ioasMap(kernel, iommufd, ioas, { va, length: 4096n })).toBe(0x1000n); // the hole below
    expect(ioasMap(kernel, iommufd, ioas, { va: va + 4096n, length: 4096n })).toBe(0x4000n);
    expect(kernel.ioasMappings(iommufd, ioas).map((m) => [m.iova, m.length, m.pinned])).toEqual([[0x1000n, 4096n, true], [0x2000n, 8192n, true], [0x4000n, 4096n, true]]);
    kernel.dispose();
  });

  test('MAP refusals in the kernel\'s order', () => {
    const { kernel, iommufd, ioas, device } = openCdev();
    const va = kernel.addressOf(kernel.allocDma(8192));
    const map = (m: Parameters<typeof ioasMap>[3], id = ioas) => thrown(() => ioasMap(kernel, iommufd, id, m));
    expect(map({ va, length: 4096n, flags: RW | 8 })).toMatchObject({ code: 'ENOTSUP' });
    expect(map({ va, length: U64_MAX })).toMatchObject({ code: 'EOVERFLOW' });
    expect(map({ va, length: 4096n, flags: 0 })).toMatchObject({ code: 'EINVAL' });
    expect(map({ va, length: 4096n }, 99)).toMatchObject({ code: 'ENOENT' });
    expect(map({ va, length: 0n })).toMatchObject({ code: 'EINVAL' });
    expect(map({ va, length: 100n })).toMatchObject({ code: 'EINVAL' }); // length below the domain's page
    expect(map({ va, length: 4096n, iova: 0x1001n })).toMatchObject({ code: 'EINVAL' });
    expect(map({ va, length: 4096n, iova: 0xfee0_0000n })).toMatchObject({ code: 'EINVAL' }); // the MSI window
    expect(map({ va: va + 16n, length: 4096n, iova: 0x10000n })).toMatchObject({ code: 'EINVAL' }); // sub-page offset
    ioasMap(kernel, iommufd, ioas, { va, length: 8192n, iova: 0x10000n });
    expect(map({ va, length: 4096n, iova: 0x11000n })).toMatchObject({ code: 'EEXIST' });
    expect(map({ va: 0x1000n, length: 4096n })).toMatchObject({ code: 'EFAULT' }); // not process memory
    const bar = kernel.mmap(device, 4096, 3, 0n);
    expect(map({ va: kernel.addressOf(bar), length: 4096n })).toMatchObject({ code: 'EFAULT' }); // MMIO is not pinnable
    expect(kernel.ioasMappings(iommufd, ioas)).toHaveLength(1);
    kernel.dispose();
  });

  test('without a domain nothing is pinned: a bad address maps, and the attach that pins it fails EFAULT', () => {
    const kernel = new FakeKernel({ deviceCdevs: true });
    kernel.addDevice({ address: EDU, group: GROUP });
    const iommufd = kernel.open(kernel.iommuPath, 2);
    const ioas = ioasAlloc(kernel, iommufd);
    expect(ioasMap(kernel, iommufd, ioas, { va: 0x5000n, length: 4096n, iova: 0x1000n })).toBe(0x1000n);
    expect(kernel.ioasMappings(iommufd, ioas)[0].pinned).toBe(false);
    const device = kernel.open(kernel.cdevPath(EDU)!, 2);
    bind(kernel, device, iommufd);
    expect(thrown(() => attach(kernel, device, ioas))).toMatchObject({ code: 'EFAULT' });
    expect(kernel.iommufdObjects().map((o) => o.type)).toEqual(['ioas', 'device']); // the HWPT was not kept
    ioasUnmap(kernel, iommufd, ioas, 0n, U64_MAX);
    expect(attach(kernel, device, ioas)).toBe(3);
    kernel.dispose();
  });

  test('RLIMIT_MEMLOCK counts pinned pages across IOASes and containers: ENOMEM past it', () => {
    const { kernel, iommufd, ioas } = openCdev({ memlockLimit: 8192n });
    const va = kernel.addressOf(kernel.allocDma(16384));
    ioasMap(kernel, iommufd, ioas, { va, length: 8192n });
    expect(thrown(() => ioasMap(kernel, iommufd, ioas, { va: va + 8192n, length: 4096n }))).toMatchObject({ code: 'ENOMEM' });
    // Each MAP pins (and counts) its own pages, as iommufd's user accounting does...
    expect(thrown(() => ioasMap(kernel, iommufd, ioas, { va, length: 4096n }))).toMatchObject({ code: 'ENOMEM' });
    // ...while COPY shares the pages it copies: no more is pinned.
    const arg = b.iommu_ioas_copy.encode({ size: 40, flags: RW, dst_ioas_id: ioas, src_ioas_id: ioas, length: 8192n, dst_iova: 0n, src_iova: 0x2000n });
    kernel.ioctl(iommufd, b.IOMMU_IOAS_COPY, arg);
    expect(kernel.ioasMappings(iommufd, ioas)).toHaveLength(2);
    kernel.dispose();
  });

  test('UNMAP: whole areas inside the range; a range cutting an area is ENOENT after the areas before it went; nothing there ENOENT', () => {
    const { kernel, iommufd, ioas } = openCdev();
    const va = kernel.addressOf(kernel.allocDma(4096));
    for (const iova of [0x1000n, 0x2000n, 0x10000n]) ioasMap(kernel, iommufd, ioas, { va, length: 4096n, iova });
    ioasMap(kernel, iommufd, ioas, { va, length: 4096n, iova: 0x20000n });
    expect(ioasUnmap(kernel, iommufd, ioas, 0x1000n, 0x2000n)).toBe(0x2000n);
    expect(thrown(() => ioasUnmap(kernel, iommufd, ioas, 0x1000n, 0x2000n))).toMatchObject({ code: 'ENOENT' });
    ioasMap(kernel, iommufd, ioas, { va, length: 4096n, iova: 0x1000n });
    expect(thrown(() => ioasUnmap(kernel, iommufd, ioas, 0x0n, 0x10800n))).toMatchObject({ code: 'ENOENT' });
    expect(kernel.ioasMappings(iommufd, ioas).map((m) => m.iova)).toEqual([0x10000n, 0x20000n]);
    expect(thrown(() => ioasUnmap(kernel, iommufd, ioas, 0x10000n, 0n))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => ioasUnmap(kernel, iommufd, ioas, U64_MAX, 1n))).toMatchObject({ code: 'EOVERFLOW' });
    expect(thrown(() => ioasUnmap(kernel, iommufd, ioas, 0x10000n, U64_MAX - 0xfffen))).toMatchObject({ code: 'EOVERFLOW' });
    expect(ioasUnmap(kernel, iommufd, ioas, 0n, U64_MAX)).toBe(0x2000n); // everything
    expect(ioasUnmap(kernel, iommufd, ioas, 0n, U64_MAX)).toBe(0n); // nothing left is fine for "all"
    kernel.dispose();
  });

  test('COPY shares the pages of a mapped range with another IOAS, at an IOVA given or picked; a gap is ENOENT', () => {
    const { kernel, iommufd, ioas } = openCdev();
    const memory = kernel.allocDma(8192);
    const va = kernel.addressOf(memory);
    ioasMap(kernel, iommufd, ioas, { va, length: 4096n, iova: 0x10000n });
    ioasMap(kernel, iommufd, ioas, { va: va + 4096n, length: 4096n, iova: 0x11000n });
    const other = ioasAlloc(kernel, iommufd);
    const copy = (c: Partial<b.iommu_ioas_copy>) => {
      const arg = b.iommu_ioas_copy.encode({ size: 40, flags: RW, dst_ioas_id: other, src_ioas_id: ioas, length: 8192n, dst_iova: 0n, src_iova: 0x10000n, ...c });
      kernel.ioctl(iommufd, b.IOMMU_IOAS_COPY, arg);
      return b.iommu_ioas_copy.decode(arg).dst_iova;
    };
    expect(copy({ flags: RW | b.IOMMU_IOAS_MAP_FIXED_IOVA, dst_iova: 0x40000n })).toBe(0x40000n);
    expect(kernel.ioasMappings(iommufd, other).map((m) => [m.iova, m.length])).toEqual([[0x40000n, 4096n], [0x41000n, 4096n]]);
    expect(copy({ length: 4096n, src_iova: 0x10800n - 0x800n })).toBe(0x1000n);
    expect(thrown(() => copy({ src_iova: 0x11000n }))).toMatchObject({ code: 'ENOENT' });
    expect(thrown(() => copy({ flags: 0 }))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => copy({ flags: RW | 16 }))).toMatchObject({ code: 'ENOTSUP' });
    expect(thrown(() => copy({ dst_ioas_id: 77 }))).toMatchObject({ code: 'ENOENT' });
    // The copy reaches the same bytes: a device attached to `other` sees them.
    new Uint8Array(memory)[4096] = 0x5a;
    const second = kernel.addDevice({ address: '0000:00:04.0', group: 13 });
    const fd = kernel.open(kernel.cdevPath('0000:00:04.0')!, 2);
    bind(kernel, fd, iommufd);
    attach(kernel, fd, other);
    expect(second.dmaRead(0x41000n, 1)[0]).toBe(0x5a);
    kernel.dispose();
  });

  test('MAP_FILE maps a memfd by offset; the device DMAs into the file; a bad fd EBADF, a file that is not shmem EINVAL', () => {
    const { kernel, iommufd, ioas } = openCdev();
    const memfd = kernel.createMemfd(16384);
    const mapFile = (fd: number, start: bigint, length: bigint, iova = 0x30000n) => {
      const arg = b.iommu_ioas_map_file.encode({ size: 40, flags: RW | b.IOMMU_IOAS_MAP_FIXED_IOVA, ioas_id: ioas, fd, start, length, iova });
      kernel.ioctl(iommufd, b.IOMMU_IOAS_MAP_FILE, arg);
      return b.iommu_ioas_map_file.decode(arg).iova;
    };
    expect(mapFile(memfd.fd, 4096n, 8192n)).toBe(0x30000n);
    kernel.device(EDU)!.dmaWrite(0x31000n, new Uint8Array([1, 2, 3]));
    expect([...memfd.bytes.subarray(8192, 8195)]).toEqual([1, 2, 3]);
    expect(thrown(() => mapFile(99, 0n, 4096n, 0x40000n))).toMatchObject({ code: 'EBADF' });
    expect(thrown(() => mapFile(iommufd, 0n, 4096n, 0x40000n))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => mapFile(memfd.fd, 16384n, 4096n, 0x40000n))).toMatchObject({ code: 'EINVAL' }); // past the end of the file
    kernel.close(memfd.fd);
    kernel.dispose();
  });
});

describe('IOMMU_OPTION and IOMMU_GET_HW_INFO', () => {
  function option(kernel: FakeKernel, iommufd: number, o: Partial<b.iommu_option>): bigint {
    const arg = b.iommu_option.encode({ size: 24, option_id: 0, op: b.IOMMU_OPTION_OP_GET, __reserved: 0, object_id: 0, val64: 0n, ...o });
    kernel.ioctl(iommufd, b.IOMMU_OPTION, arg);
    return b.iommu_option.decode(arg).val64;
  }

  test('HUGE_PAGES per IOAS (off: page alignment), RLIMIT_MODE per context (set only while empty)', () => {
    const { kernel, iommufd } = openIommufd();
    expect(option(kernel, iommufd, { option_id: b.IOMMU_OPTION_RLIMIT_MODE, op: b.IOMMU_OPTION_OP_SET, val64: 1n })).toBe(1n);
    expect(option(kernel, iommufd, { option_id: b.IOMMU_OPTION_RLIMIT_MODE })).toBe(1n);
    const ioas = ioasAlloc(kernel, iommufd);
    expect(thrown(() => option(kernel, iommufd, { option_id: b.IOMMU_OPTION_RLIMIT_MODE, op: b.IOMMU_OPTION_OP_SET }))).toMatchObject({ code: 'EBUSY' });
    expect(thrown(() => option(kernel, iommufd, { option_id: b.IOMMU_OPTION_RLIMIT_MODE, object_id: ioas }))).toMatchObject({ code: 'ENOTSUP' });
    expect(option(kernel, iommufd, { option_id: b.IOMMU_OPTION_HUGE_PAGES, object_id: ioas })).toBe(1n);
    option(kernel, iommufd, { option_id: b.IOMMU_OPTION_HUGE_PAGES, object_id: ioas, op: b.IOMMU_OPTION_OP_SET, val64: 0n });
    expect(option(kernel, iommufd, { option_id: b.IOMMU_OPTION_HUGE_PAGES, object_id: ioas })).toBe(0n);
    expect(iovaRanges(kernel, iommufd, ioas).alignment).toBe(PAGE);
    expect(thrown(() => option(kernel, iommufd, { option_id: b.IOMMU_OPTION_HUGE_PAGES, object_id: ioas, op: b.IOMMU_OPTION_OP_SET, val64: 2n }))).toMatchObject({ code: 'EINVAL' });
    expect(thrown(() => option(kernel, iommufd, { option_id: b.IOMMU_OPTION_HUGE_PAGES, object_id: 9 }))).toMatchObject({ code: 'ENOENT' });
    expect(thrown(() => option(kernel, iommufd, { option_id: 7 }))).toMatchObject({ code: 'ENOTSUP' });
    expect(thrown(() => option(kernel, iommufd, { option_id: b.IOMMU_OPTION_HUGE_PAGES, object_id: ioas, op: 5 }))).toMatchObject({ code: 'ENOTSUP' });
    kernel.close(iommufd);
    kernel.dispose();
  });

  function hwInfo(kernel: FakeKernel, iommufd: number, devId: number, dataLen = 24, flags = 0, inType = 0) {
    const memory = kernel.allocDma(4096);
    new Uint8Array(memory).fill(0xee);
    const arg = b.iommu_hw_info.encode({
      size: 40, flags, dev_id: devId, data_len: dataLen, data_uptr: kernel.addressOf(memory), in_data_type: inType,
      out_max_pasid_log2: 0, __reserved: [0, 0, 0], out_capabilities: 0n,
    } as b.EncodeInput<b.iommu_hw_info>);
    try {
      kernel.ioctl(iommufd, b.IOMMU_GET_HW_INFO, arg);
      return { info: b.iommu_hw_info.decode(arg), data: new Uint8Array(memory).slice(0, 32) };
    } finally {
      kernel.freeDma(memory);
    }
  }

  test('an Intel VT-d answer for a bound device: type, the vtd struct (cut to data_len, the rest zeroed), its full length', () => {
    const { kernel, iommufd, devid, ioas } = openCdev();
    const { info, data } = hwInfo(kernel, iommufd, devid, 32);
    expect(info).toMatchObject({ out_data_type: b.IOMMU_HW_INFO_TYPE_INTEL_VTD, data_len: 24 });
    expect(b.iommu_hw_info_vtd.decode(data).flags).toBe(b.IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17);
    expect([...data.subarray(24, 32)]).toEqual(new Array(8).fill(0));
    const short = hwInfo(kernel, iommufd, devid, 4);
    expect(short.info.data_len).toBe(24);
    expect([...short.data.subarray(4, 8)]).toEqual([0xee, 0xee, 0xee, 0xee]);
    expect(thrown(() => hwInfo(kernel, iommufd, ioas))).toMatchObject({ code: 'ENOENT' });
    expect(thrown(() => hwInfo(kernel, iommufd, devid, 24, 2))).toMatchObject({ code: 'ENOTSUP' });
    expect(thrown(() => hwInfo(kernel, iommufd, devid, 24, b.IOMMU_HW_INFO_FLAG_INPUT_TYPE, b.IOMMU_HW_INFO_TYPE_ARM_SMMUV3))).toMatchObject({ code: 'ENOTSUP' });
    expect(hwInfo(kernel, iommufd, devid, 24, b.IOMMU_HW_INFO_FLAG_INPUT_TYPE, b.IOMMU_HW_INFO_TYPE_INTEL_VTD).info.data_len).toBe(24);
    kernel.dispose();
  });

  test('an IOMMU driver without hw_info answers type NONE and no data', () => {
    const { kernel, iommufd, devid } = openCdev({ iommuHwInfo: 'none' });
    const { info, data } = hwInfo(kernel, iommufd, devid, 8);
    expect(info).toMatchObject({ out_data_type: b.IOMMU_HW_INFO_TYPE_NONE, data_len: 0 });
    expect([...data.subarray(0, 8)]).toEqual(new Array(8).fill(0));
    kernel.dispose();
  });
});

describe('iommufd lifetime and leak accounting', () => {
  test('a bound device holds the iommufd: closing its fd first keeps the IOAS and DMA working until the device closes', () => {
    const { kernel, iommufd, ioas, device } = openCdev();
    const memory = kernel.allocDma(4096);
    ioasMap(kernel, iommufd, ioas, { va: kernel.addressOf(memory), length: 4096n, iova: 0x10000n });
    kernel.close(iommufd);
    expect(kernel.iommufdObjects().map((o) => o.type)).toEqual(['ioas', 'device', 'hwpt_paging']);
    kernel.device(EDU)!.dmaWrite(0x10000n, new Uint8Array([9]));
    expect(new Uint8Array(memory)[0]).toBe(9);
    kernel.close(device);
    expect(kernel.iommufdObjects()).toEqual([]);
    expect(kernel.openFds()).toEqual([]);
    kernel.freeDma(memory);
    kernel.dispose();
  });

  test('a fault planned on any iommufd ioctl fails it and changes nothing', () => {
    const requests = [b.IOMMU_IOAS_ALLOC, b.IOMMU_IOAS_MAP, b.IOMMU_IOAS_UNMAP, b.IOMMU_DESTROY];
    for (const request of requests) {
      const { kernel, iommufd, ioas } = openCdev();
      const va = kernel.addressOf(kernel.allocDma(4096));
      ioasMap(kernel, iommufd, ioas, { va, length: 4096n, iova: 0x1000n });
      const before = [kernel.iommufdObjects(), kernel.ioasMappings(iommufd, ioas)];
      kernel.failNext({ syscall: 'ioctl', request, errno: 'EIO' });
      const run = () => {
        if (request === b.IOMMU_IOAS_ALLOC) ioasAlloc(kernel, iommufd);
        else if (request === b.IOMMU_IOAS_MAP) ioasMap(kernel, iommufd, ioas, { va, length: 4096n });
        else if (request === b.IOMMU_IOAS_UNMAP) ioasUnmap(kernel, iommufd, ioas, 0n, U64_MAX);
        else destroy(kernel, iommufd, ioas);
      };
      expect(thrown(run)).toMatchObject({ code: 'EIO', syscall: 'ioctl' });
      expect([kernel.iommufdObjects(), kernel.ioasMappings(iommufd, ioas)]).toEqual(before);
      kernel.dispose();
    }
    const kernel = new FakeKernel();
    kernel.failNext({ syscall: 'open', path: '/dev/iommu', errno: 'ENOMEM' });
    expect(thrown(() => kernel.open(kernel.iommuPath, 2))).toMatchObject({ code: 'ENOMEM', syscall: 'open' });
    expect(kernel.openFds()).toEqual([]);
    kernel.dispose();
  });
});
