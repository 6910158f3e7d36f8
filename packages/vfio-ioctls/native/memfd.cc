// memfd_create + ftruncate: shmem (or hugetlbfs) memory that has an fd, so
// it can be mapped into the process (mmap), into another thread or process
// (the fd, dup'ed or passed), and handed to the kernel by fd and offset
// (IOMMU_IOAS_MAP_FILE) at the same time.
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "args.h"
#include "bindings.h"
#include "errors.h"

// glibc's <sys/mman.h> has MFD_HUGETLB but not always the shift of the
// page-size field (linux/memfd.h: HUGETLB_FLAG_ENCODE_SHIFT, 26).
#ifndef MFD_HUGE_SHIFT
#define MFD_HUGE_SHIFT 26
#endif

namespace vfio {

namespace {

int Log2(int64_t value) {
  int shift = 0;
  while ((int64_t{1} << shift) < value) shift++;
  return shift;
}

Napi::Value Memfd(const Napi::CallbackInfo& info) {
  // The name only shows in /proc/self/fd ("memfd:NAME"); the kernel refuses
  // names over 249 bytes with EINVAL.
  std::string name = PathArg(info, 0, "name");
  auto size = static_cast<off_t>(IntegerArg(info, 1, "size", 0, kMaxSafeInteger));
  // 0: ordinary shmem pages; else a hugetlbfs page size (a power of two the
  // kernel encodes as log2 in the flags; one it has no pool of is ENODEV).
  int64_t huge = info.Length() > 2 && !info[2].IsUndefined() ? IntegerArg(info, 2, "hugePageSize", 0, int64_t{1} << 40) : 0;
  if (huge != 0 && (huge < 2 || (huge & (huge - 1)) != 0)) {
    throw Napi::RangeError::New(info.Env(), "hugePageSize must be 0 or a power of two");
  }
  // MFD_CLOEXEC always: a child must not keep the memory (and its DMA) alive.
  unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
  if (huge != 0) flags |= MFD_HUGETLB | (static_cast<unsigned>(Log2(huge)) << MFD_HUGE_SHIFT);
  int fd = ::memfd_create(name.c_str(), flags);
  if (fd < 0) ThrowErrno(info.Env(), errno, "memfd_create");
  int result;
  do result = ::ftruncate(fd, size);
  while (result < 0 && errno == EINTR);
  if (result < 0) {
    int err = errno;
    ::close(fd);
    ThrowErrno(info.Env(), err, "ftruncate");
  }
  // Sealed against shrinking: a mapping of the file, here or in another
  // thread or process, can then never fault (SIGBUS) on a page cut off.
  if (::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0) {
    int err = errno;
    ::close(fd);
    ThrowErrno(info.Env(), err, "fcntl");
  }
  return Napi::Number::New(info.Env(), fd);
}

// A new fd (F_DUPFD_CLOEXEC) for the file of a memfd, with what a mapping of
// it must know first: its size, its page size (st_blksize: the huge page
// size on hugetlbfs) and its seals (F_GET_SEALS, EINVAL for a file that
// is not a memfd).
Napi::Value MemfdDup(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0, "fd");
  int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) ThrowErrno(info.Env(), errno, "fcntl");
  struct stat st;
  if (::fstat(fd, &st) < 0) ThrowErrno(info.Env(), errno, "fstat");
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) ThrowErrno(info.Env(), errno, "fcntl");
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("fd", Napi::Number::New(info.Env(), copy));
  result.Set("size", Napi::Number::New(info.Env(), static_cast<double>(st.st_size)));
  result.Set("pageSize", Napi::Number::New(info.Env(), static_cast<double>(st.st_blksize)));
  result.Set("seals", Napi::Number::New(info.Env(), seals));
  return result;
}

}  // namespace

void InitMemfd(Napi::Env env, Napi::Object exports) {
  exports.Set("memfd", Napi::Function::New(env, Memfd, "memfd"));
  exports.Set("memfdDup", Napi::Function::New(env, MemfdDup, "memfdDup"));
}

}  // namespace vfio
