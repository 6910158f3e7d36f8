// memfd_create + ftruncate: shmem memory that has an fd, so it can be mapped
// into the process (mmap) and handed to the kernel by fd and offset
// (IOMMU_IOAS_MAP_FILE) at the same time.
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "args.h"
#include "bindings.h"
#include "errors.h"

namespace vfio {

namespace {

Napi::Value Memfd(const Napi::CallbackInfo& info) {
  // The name only shows in /proc/self/fd ("memfd:NAME"); the kernel refuses
  // names over 249 bytes with EINVAL.
  std::string name = PathArg(info, 0, "name");
  auto size = static_cast<off_t>(IntegerArg(info, 1, "size", 0, kMaxSafeInteger));
  // MFD_CLOEXEC always: a child must not keep the memory (and its DMA) alive.
  int fd = ::memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) ThrowErrno(info.Env(), errno, "memfd_create");
  int result;
  do result = ::ftruncate(fd, size);
  while (result < 0 && errno == EINTR);
  if (result < 0) {
    int err = errno;
    ::close(fd);
    ThrowErrno(info.Env(), err, "ftruncate");
  }
  return Napi::Number::New(info.Env(), fd);
}

}  // namespace

void InitMemfd(Napi::Env env, Napi::Object exports) {
  exports.Set("memfd", Napi::Function::New(env, Memfd, "memfd"));
}

}  // namespace vfio
