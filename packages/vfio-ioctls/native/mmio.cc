// Volatile MMIO accessors. JS gives no guarantee about the width of a
// DataView or TypedArray access, and device registers care: a 32-bit
// register read as four bytes, or a 64-bit one as two halves, can have side
// effects. Each accessor is one load or store of exactly its width.
#include <sys/mman.h>

#include <cstdint>
#include <string>

#include "args.h"
#include "bindings.h"
#include "errors.h"
#include "mapping.h"

namespace vfio {

namespace {

// The register at (buffer, offset): a live mapping with `prot`, offset in
// bounds and naturally aligned (the mapping itself is page-aligned).
template <typename T>
volatile T* Register(const Napi::CallbackInfo& info, int prot) {
  Napi::Env env = info.Env();
  MappingPtr mapping = LiveMappingArg(info, 0, "buffer", MappingKind::kAny);
  // Touching a mapping against its protection is SIGSEGV, not an exception.
  if ((mapping->prot & prot) != prot) {
    ThrowTypeError(env,
                   std::string("The \"buffer\" argument is mapped without ") +
                       (prot == PROT_WRITE ? "PROT_WRITE" : "PROT_READ"),
                   "ERR_INVALID_ARG_VALUE");
  }
  constexpr int64_t width = sizeof(T);
  int64_t offset = IntegerArg(info, 1, "offset", 0, kMaxSafeInteger);
  auto last = static_cast<int64_t>(mapping->length) - width;
  if (offset > last) {
    ThrowRangeError(env, "The value of \"offset\" is out of range. It must be >= 0 and <= " +
                             std::to_string(last) + ". Received " + std::to_string(offset));
  }
  if (offset % width != 0) {
    ThrowRangeError(env, "The value of \"offset\" must be a multiple of " +
                             std::to_string(width) + ". Received " + std::to_string(offset));
  }
  return reinterpret_cast<volatile T*>(static_cast<uint8_t*>(mapping->addr) + offset);
}

template <typename T>
Napi::Value Read(const Napi::CallbackInfo& info) {
  T value = *Register<T>(info, PROT_READ);
  return Napi::Number::New(info.Env(), value);
}

template <typename T>
Napi::Value Write(const Napi::CallbackInfo& info) {
  volatile T* reg = Register<T>(info, PROT_WRITE);
  auto value = static_cast<T>(IntegerArg(info, 2, "value", 0, static_cast<T>(~T{0})));
  *reg = value;
  return info.Env().Undefined();
}

Napi::Value Read64(const Napi::CallbackInfo& info) {
  uint64_t value = *Register<uint64_t>(info, PROT_READ);
  return Napi::BigInt::New(info.Env(), value);
}

Napi::Value Write64(const Napi::CallbackInfo& info) {
  volatile uint64_t* reg = Register<uint64_t>(info, PROT_WRITE);
  uint64_t value = Uint64Arg(info, 2, "value", UINT64_MAX);
  *reg = value;
  return info.Env().Undefined();
}

}  // namespace

void InitMmio(Napi::Env env, Napi::Object exports) {
  exports.Set("mmioRead8", Napi::Function::New(env, Read<uint8_t>, "mmioRead8"));
  exports.Set("mmioRead16", Napi::Function::New(env, Read<uint16_t>, "mmioRead16"));
  exports.Set("mmioRead32", Napi::Function::New(env, Read<uint32_t>, "mmioRead32"));
  exports.Set("mmioRead64", Napi::Function::New(env, Read64, "mmioRead64"));
  exports.Set("mmioWrite8", Napi::Function::New(env, Write<uint8_t>, "mmioWrite8"));
  exports.Set("mmioWrite16", Napi::Function::New(env, Write<uint16_t>, "mmioWrite16"));
  exports.Set("mmioWrite32", Napi::Function::New(env, Write<uint32_t>, "mmioWrite32"));
  exports.Set("mmioWrite64", Napi::Function::New(env, Write64, "mmioWrite64"));
}

}  // namespace vfio
