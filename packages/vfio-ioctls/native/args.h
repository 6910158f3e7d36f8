// Argument checks shared by every binding. JS can pass anything, so each
// value is checked before use: a TypeError names the argument when the type
// is wrong, a RangeError when the value is out of range. Numbers must be
// safe integers; 64-bit values may also be bigints.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

namespace vfio {

constexpr int64_t kMaxSafeInteger = 9007199254740991;  // 2^53 - 1

// A number that is a safe integer within [min, max].
int64_t IntegerArg(const Napi::CallbackInfo& info, size_t index, const char* name,
                   int64_t min, int64_t max);

// A non-negative number (safe integer) or bigint, at most `max`.
uint64_t Uint64Arg(const Napi::CallbackInfo& info, size_t index, const char* name,
                   uint64_t max);

// A file descriptor: an integer in [0, INT32_MAX].
int FdArg(const Napi::CallbackInfo& info, size_t index, const char* name);

Napi::Uint8Array BytesArg(const Napi::CallbackInfo& info, size_t index, const char* name);
Napi::ArrayBuffer ArrayBufferArg(const Napi::CallbackInfo& info, size_t index,
                                 const char* name);
Napi::Function FunctionArg(const Napi::CallbackInfo& info, size_t index, const char* name);

// A string without NUL bytes (the kernel would silently cut it there).
std::string PathArg(const Napi::CallbackInfo& info, size_t index, const char* name);

bool IsUint8Array(const Napi::Value& value);

// Node's wording: 'The "fd" argument must be of type number. Received type string'.
[[noreturn]] void ThrowArgType(const Napi::Value& value, const char* name,
                               const char* expected);

}  // namespace vfio
