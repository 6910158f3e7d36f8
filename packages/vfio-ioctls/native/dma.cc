// Memory for DMA: page-aligned (the IOMMU maps whole pages) and zeroed (a
// device must never see stale process memory), from anonymous mmap rather
// than the JS heap, whose buffers V8 may place and free as it likes.
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

#include "args.h"
#include "bindings.h"
#include "errors.h"
#include "mapping.h"

namespace vfio {

namespace {

size_t PageSize() { return static_cast<size_t>(::sysconf(_SC_PAGESIZE)); }

// The buffer's byteLength is the size rounded up to whole pages: exactly the
// memory that can be handed to MAP_DMA.
Napi::Value AllocDma(const Napi::CallbackInfo& info) {
  size_t page = PageSize();
  // The rounded length must fit one ArrayBuffer; checked before mmap, since
  // MAP_POPULATE would fault in all of it first.
  auto most = std::min(static_cast<int64_t>(MaxMappingLength(info.Env()) / page * page),
                       kMaxSafeInteger - static_cast<int64_t>(page));
  auto size = static_cast<size_t>(IntegerArg(info, 0, "size", 1, most));
  size_t length = (size + page - 1) / page * page;
  // MAP_POPULATE write-faults every page in now. Untouched anonymous memory
  // reads as the shared zero page, and a read-only MAP_DMA (the device only
  // reads) pins that page (seen on Linux 6.1): the IOMMU would keep
  // showing the device zeros whatever the program writes afterwards.
  void* addr = ::mmap(nullptr, length, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (addr == MAP_FAILED) ThrowErrno(info.Env(), errno, "mmap");
  // A forked child (child_process) must not share these pages copy-on-write:
  // the parent's next write would move it to a new page behind the IOMMU's back.
  if (::madvise(addr, length, MADV_DONTFORK) < 0) {
    int err = errno;
    ::munmap(addr, length);
    ThrowErrno(info.Env(), err, "madvise");
  }
  return ExposeMapping(info.Env(), addr, length, PROT_READ | PROT_WRITE, MappingKind::kDma);
}

Napi::Value FreeDma(const Napi::CallbackInfo& info) {
  ReleaseMappingArg(info, 0, "buffer", MappingKind::kDma);
  return info.Env().Undefined();
}

// The virtual address MAP_DMA needs as vaddr; only of memory the addon mapped.
Napi::Value AddressOf(const Napi::CallbackInfo& info) {
  MappingPtr mapping = LiveMappingArg(info, 0, "buffer", MappingKind::kAny);
  return Napi::BigInt::New(info.Env(), static_cast<uint64_t>(reinterpret_cast<uintptr_t>(mapping->addr)));
}

// mlock/munlock of a whole live allocDma buffer, for no-IOMMU DMA: the
// device is given physical addresses, so the pages must stay resident.
// Nothing to undo at free: munmap drops the lock with the mapping.
Napi::Value Mlock(const Napi::CallbackInfo& info) {
  MappingPtr mapping = LiveMappingArg(info, 0, "buffer", MappingKind::kDma);
  if (::mlock(mapping->addr, mapping->length) < 0) ThrowErrno(info.Env(), errno, "mlock");
  return info.Env().Undefined();
}

Napi::Value Munlock(const Napi::CallbackInfo& info) {
  MappingPtr mapping = LiveMappingArg(info, 0, "buffer", MappingKind::kDma);
  if (::munlock(mapping->addr, mapping->length) < 0) ThrowErrno(info.Env(), errno, "munlock");
  return info.Env().Undefined();
}

Napi::Value PageSizeBinding(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(PageSize()));
}

}  // namespace

void InitDma(Napi::Env env, Napi::Object exports) {
  exports.Set("allocDma", Napi::Function::New(env, AllocDma, "allocDma"));
  exports.Set("freeDma", Napi::Function::New(env, FreeDma, "freeDma"));
  exports.Set("addressOf", Napi::Function::New(env, AddressOf, "addressOf"));
  exports.Set("pageSize", Napi::Function::New(env, PageSizeBinding, "pageSize"));
  exports.Set("mlock", Napi::Function::New(env, Mlock, "mlock"));
  exports.Set("munlock", Napi::Function::New(env, Munlock, "munlock"));
}

}  // namespace vfio
