// ioctl(2) with an integer passed by value or a byte buffer passed by
// pointer. The addon never knows a struct layout: vfio-bindings packs the
// buffer in TypeScript, the kernel reads and writes it in place.
#include <errno.h>
#include <sys/ioctl.h>

#include <cstdint>
#include <limits>

#include "args.h"
#include "bindings.h"
#include "errors.h"

namespace vfio {

namespace {

Napi::Value Ioctl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, 0, "fd");
  // Request numbers are 32-bit (_IOC); TS computes them with `>>> 0`.
  auto request = static_cast<unsigned long>(
      IntegerArg(info, 1, "request", 0, std::numeric_limits<uint32_t>::max()));
  Napi::Value arg = info[2];
  int result;
  if (arg.IsUndefined()) {
    result = ::ioctl(fd, request, 0UL);
  } else if (arg.IsNumber()) {
    // Negative values keep their two's-complement bits, as a C caller's would.
    int64_t value = IntegerArg(info, 2, "arg", -kMaxSafeInteger, kMaxSafeInteger);
    result = ::ioctl(fd, request, static_cast<unsigned long>(value));
  } else if (IsUint8Array(arg)) {
    // The view's bytes stay put during the call: ArrayBuffer backing stores
    // never move and the call is synchronous.
    result = ::ioctl(fd, request, arg.As<Napi::Uint8Array>().Data());
  } else {
    ThrowArgType(arg, "arg", "of type number or an instance of Uint8Array");
  }
  if (result < 0) ThrowErrno(env, errno, "ioctl");
  return Napi::Number::New(env, result);
}

}  // namespace

void InitIoctl(Napi::Env env, Napi::Object exports) {
  exports.Set("ioctl", Napi::Function::New(env, Ioctl, "ioctl"));
}

}  // namespace vfio
