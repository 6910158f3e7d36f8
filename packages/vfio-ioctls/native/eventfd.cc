// eventfds: VFIO signals interrupts (and takes them as triggers) through
// them. Always non-blocking, so a read never stalls the event loop: an empty
// counter is EAGAIN, and the poller says when to read.
#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <limits>

#include "args.h"
#include "bindings.h"
#include "errors.h"

namespace vfio {

namespace {

Napi::Value Eventfd(const Napi::CallbackInfo& info) {
  auto initval = static_cast<unsigned int>(
      IntegerArg(info, 0, "initval", 0, std::numeric_limits<uint32_t>::max()));
  int flags = static_cast<int>(IntegerArg(info, 1, "flags", 0, std::numeric_limits<int32_t>::max()));
  int fd = ::eventfd(initval, flags | EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) ThrowErrno(info.Env(), errno, "eventfd");
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value EventfdRead(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0, "fd");
  uint64_t count = 0;
  ssize_t n;
  do n = ::read(fd, &count, sizeof count);
  while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(info.Env(), errno, "read");
  // An eventfd always yields 8 bytes; anything else means fd is not one.
  if (n != sizeof count) ThrowErrno(info.Env(), EINVAL, "read");
  return Napi::BigInt::New(info.Env(), count);
}

Napi::Value EventfdWrite(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0, "fd");
  uint64_t value = Uint64Arg(info, 1, "value", UINT64_MAX);
  ssize_t n;
  do n = ::write(fd, &value, sizeof value);
  while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(info.Env(), errno, "write");
  if (n != sizeof value) ThrowErrno(info.Env(), EINVAL, "write");
  return info.Env().Undefined();
}

}  // namespace

void InitEventfd(Napi::Env env, Napi::Object exports) {
  exports.Set("eventfd", Napi::Function::New(env, Eventfd, "eventfd"));
  exports.Set("eventfdRead", Napi::Function::New(env, EventfdRead, "eventfdRead"));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventfdWrite, "eventfdWrite"));
}

}  // namespace vfio
