// mmap of a region of an fd (a device's BAR, or any file) into an external
// ArrayBuffer, the explicit munmap that detaches it first, and the limit on
// a mapping's length.
#include <errno.h>
#include <sys/mman.h>

#include <cstdint>
#include <limits>

#include "args.h"
#include "bindings.h"
#include "errors.h"
#include "mapping.h"

namespace vfio {

namespace {

Napi::Value Mmap(const Napi::CallbackInfo& info) {
  int fd = FdArg(info, 0, "fd");
  // Checked against the ArrayBuffer limit before the syscall: a mapping
  // Node cannot hold must not be made at all.
  auto length = static_cast<size_t>(
      IntegerArg(info, 1, "length", 1, static_cast<int64_t>(MaxMappingLength(info.Env()))));
  int prot = static_cast<int>(IntegerArg(info, 2, "prot", 0, std::numeric_limits<int32_t>::max()));
  auto offset = static_cast<off_t>(
      Uint64Arg(info, 3, "offset", static_cast<uint64_t>(std::numeric_limits<off_t>::max())));
  // MAP_SHARED: writes must reach the device (or file), not a private copy.
  void* addr = ::mmap(nullptr, length, prot, MAP_SHARED, fd, offset);
  if (addr == MAP_FAILED) ThrowErrno(info.Env(), errno, "mmap");
  return ExposeMapping(info.Env(), addr, length, prot, MappingKind::kFile);
}

Napi::Value Munmap(const Napi::CallbackInfo& info) {
  ReleaseMappingArg(info, 0, "buffer", MappingKind::kFile);
  return info.Env().Undefined();
}

// setMaxMappingLength(length): native.ts passes this Node's
// buffer.constants.MAX_LENGTH. A value above what Node really allows
// cannot crash anything: ExposeMapping then fails cleanly instead.
Napi::Value SetMaxMappingLengthBinding(const Napi::CallbackInfo& info) {
  auto length = static_cast<size_t>(IntegerArg(info, 0, "length", 1, kMaxSafeInteger));
  SetMaxMappingLength(info.Env(), length);
  return info.Env().Undefined();
}

}  // namespace

void InitMmap(Napi::Env env, Napi::Object exports) {
  exports.Set("mmap", Napi::Function::New(env, Mmap, "mmap"));
  exports.Set("munmap", Napi::Function::New(env, Munmap, "munmap"));
  exports.Set("setMaxMappingLength",
              Napi::Function::New(env, SetMaxMappingLengthBinding, "setMaxMappingLength"));
}

}  // namespace vfio
