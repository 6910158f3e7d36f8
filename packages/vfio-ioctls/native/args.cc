#include "args.h"

#include <cmath>
#include <limits>

#include "errors.h"

namespace vfio {

namespace {

const char* TypeName(const Napi::Value& value) {
  switch (value.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_object: return "object";
    case napi_function: return "function";
    case napi_external: return "external";
    case napi_bigint: return "bigint";
  }
  return "unknown";
}

[[noreturn]] void ThrowOutOfRange(Napi::Env env, const char* name, const std::string& bounds,
                                  const std::string& received) {
  ThrowRangeError(env, std::string("The value of \"") + name + "\" is out of range. It must be " +
                           bounds + ". Received " + received);
}

std::string Describe(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  if (value == std::trunc(value) && std::fabs(value) < 1e21) {
    return std::to_string(static_cast<long long>(value));
  }
  return std::to_string(value);
}

}  // namespace

void ThrowArgType(const Napi::Value& value, const char* name, const char* expected) {
  ThrowTypeError(value.Env(), std::string("The \"") + name + "\" argument must be " + expected +
                                  ". Received type " + TypeName(value));
}

int64_t IntegerArg(const Napi::CallbackInfo& info, size_t index, const char* name,
                   int64_t min, int64_t max) {
  Napi::Value value = info[index];
  if (!value.IsNumber()) ThrowArgType(value, name, "of type number");
  double number = value.As<Napi::Number>().DoubleValue();
  // Checked as a double first: casting NaN, infinities or huge values to an
  // integer type is undefined behaviour.
  bool safe = std::isfinite(number) && number == std::trunc(number) &&
              std::fabs(number) <= static_cast<double>(kMaxSafeInteger);
  if (!safe || number < static_cast<double>(min) || number > static_cast<double>(max)) {
    ThrowOutOfRange(value.Env(), name,
                    "an integer >= " + std::to_string(min) + " and <= " + std::to_string(max),
                    Describe(number));
  }
  return static_cast<int64_t>(number);
}

uint64_t Uint64Arg(const Napi::CallbackInfo& info, size_t index, const char* name,
                   uint64_t max) {
  Napi::Value value = info[index];
  uint64_t result;
  if (value.IsBigInt()) {
    bool lossless = false;
    result = value.As<Napi::BigInt>().Uint64Value(&lossless);
    // Uint64Value wraps negative or too-wide bigints and reports it here.
    if (!lossless || result > max) {
      ThrowOutOfRange(value.Env(), name, ">= 0n and <= " + std::to_string(max) + "n",
                      value.ToString().Utf8Value() + "n");
    }
  } else if (value.IsNumber()) {
    int64_t limit = max < static_cast<uint64_t>(kMaxSafeInteger) ? static_cast<int64_t>(max)
                                                                 : kMaxSafeInteger;
    result = static_cast<uint64_t>(IntegerArg(info, index, name, 0, limit));
  } else {
    ThrowArgType(value, name, "of type number or bigint");
  }
  return result;
}

int FdArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  return static_cast<int>(IntegerArg(info, index, name, 0, std::numeric_limits<int32_t>::max()));
}

bool IsUint8Array(const Napi::Value& value) {
  return value.IsTypedArray() &&
         value.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
}

Napi::Uint8Array BytesArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = info[index];
  if (!IsUint8Array(value)) ThrowArgType(value, name, "an instance of Uint8Array");
  return value.As<Napi::Uint8Array>();
}

Napi::ArrayBuffer ArrayBufferArg(const Napi::CallbackInfo& info, size_t index,
                                 const char* name) {
  Napi::Value value = info[index];
  if (!value.IsArrayBuffer()) ThrowArgType(value, name, "an instance of ArrayBuffer");
  return value.As<Napi::ArrayBuffer>();
}

Napi::Function FunctionArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = info[index];
  if (!value.IsFunction()) ThrowArgType(value, name, "of type function");
  return value.As<Napi::Function>();
}

std::string PathArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Value value = info[index];
  if (!value.IsString()) ThrowArgType(value, name, "of type string");
  std::string path = value.As<Napi::String>().Utf8Value();
  if (path.find('\0') != std::string::npos) {
    ThrowTypeError(info.Env(),
                   std::string("The \"") + name + "\" argument must be a string without null bytes",
                   "ERR_INVALID_ARG_VALUE");
  }
  return path;
}

}  // namespace vfio
