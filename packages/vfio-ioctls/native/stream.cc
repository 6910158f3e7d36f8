// read/write: fds without offsets, such as a migration data fd (the kernel
// opens it with stream_open, so pread/pwrite answer ESPIPE there).
#include <errno.h>
#include <unistd.h>

#include "args.h"
#include "bindings.h"
#include "errors.h"

namespace vfio {

namespace {

// read and write differ only in the syscall and its name.
template <typename Syscall>
Napi::Value Transfer(const Napi::CallbackInfo& info, Syscall syscall, const char* name) {
  int fd = FdArg(info, 0, "fd");
  Napi::Uint8Array buffer = BytesArg(info, 1, "buffer");
  ssize_t count;
  do count = syscall(fd, buffer.Data(), buffer.ByteLength());
  while (count < 0 && errno == EINTR);
  if (count < 0) ThrowErrno(info.Env(), errno, name);
  return Napi::Number::New(info.Env(), static_cast<double>(count));
}

Napi::Value Read(const Napi::CallbackInfo& info) {
  return Transfer(info, ::read, "read");
}

Napi::Value Write(const Napi::CallbackInfo& info) {
  return Transfer(info, ::write, "write");
}

}  // namespace

void InitStream(Napi::Env env, Napi::Object exports) {
  exports.Set("read", Napi::Function::New(env, Read, "read"));
  exports.Set("write", Napi::Function::New(env, Write, "write"));
}

}  // namespace vfio
