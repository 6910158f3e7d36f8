// open/close/pread/pwrite: the fds the safe API holds (container, group,
// device, iommufd) and region access through the device fd.
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <limits>

#include "args.h"
#include "bindings.h"
#include "errors.h"

namespace vfio {

namespace {

Napi::Value Open(const Napi::CallbackInfo& info) {
  std::string path = PathArg(info, 0, "path");
  int flags = static_cast<int>(IntegerArg(info, 1, "flags", 0, std::numeric_limits<int32_t>::max()));
  int fd;
  // O_CLOEXEC always: a child process must never inherit a VFIO fd (it would
  // keep the group or device busy after we close ours).
  do fd = ::open(path.c_str(), flags | O_CLOEXEC, 0666);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) ThrowErrno(info.Env(), errno, "open");
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0, "fd");
  // Linux releases the fd even when close() reports EINTR; retrying could
  // close an fd another thread just got, so EINTR counts as success.
  if (::close(fd) < 0 && errno != EINTR) ThrowErrno(info.Env(), errno, "close");
  return info.Env().Undefined();
}

// A second fd for the same open file, close-on-exec like every fd the
// library makes: the library keeps its own reference to a file the caller
// gave it (a KVM VFIO device), so the caller closing theirs, or the number
// being reused, cannot make it act on another file.
Napi::Value Dup(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0, "fd");
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) ThrowErrno(info.Env(), errno, "fcntl");
  return Napi::Number::New(info.Env(), copy);
}

// pread and pwrite differ only in the syscall and its name.
template <typename Syscall>
Napi::Value Transfer(const Napi::CallbackInfo& info, Syscall syscall, const char* name) {
  int fd = FdArg(info, 0, "fd");
  Napi::Uint8Array buffer = BytesArg(info, 1, "buffer");
  off_t offset = static_cast<off_t>(
      Uint64Arg(info, 2, "offset", static_cast<uint64_t>(std::numeric_limits<off_t>::max())));
  ssize_t count;
  do count = syscall(fd, buffer.Data(), buffer.ByteLength(), offset);
  while (count < 0 && errno == EINTR);
  if (count < 0) ThrowErrno(info.Env(), errno, name);
  return Napi::Number::New(info.Env(), static_cast<double>(count));
}

Napi::Value Pread(const Napi::CallbackInfo& info) {
  return Transfer(info, ::pread, "pread");
}

Napi::Value Pwrite(const Napi::CallbackInfo& info) {
  return Transfer(info, ::pwrite, "pwrite");
}

}  // namespace

void InitFile(Napi::Env env, Napi::Object exports) {
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("dup", Napi::Function::New(env, Dup, "dup"));
  exports.Set("pread", Napi::Function::New(env, Pread, "pread"));
  exports.Set("pwrite", Napi::Function::New(env, Pwrite, "pwrite"));
}

}  // namespace vfio
