// Errors thrown by the addon. Failed syscalls become the library's VfioError
// (handed over by native.ts at start-up) with Node's errno shape, so callers
// see one error class whether the failure came from C++ or TypeScript.
#pragma once
#include <napi.h>

#include <string>

namespace vfio {

// The error object for errno `err` (positive) from `syscall`, not thrown:
// the poller hands it to a callback.
Napi::Value ErrnoError(Napi::Env env, int err, const char* syscall);

[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall);

// A VfioError with a library code (ERR_VFIO_*) and no errno.
[[noreturn]] void ThrowVfioError(Napi::Env env, const char* code, const std::string& message);

// Argument errors carry Node's codes so callers can tell them apart.
[[noreturn]] void ThrowTypeError(Napi::Env env, const std::string& message,
                                 const char* code = "ERR_INVALID_ARG_TYPE");
[[noreturn]] void ThrowRangeError(Napi::Env env, const std::string& message);

// setErrorClass(VfioError): the constructor used for all errno errors.
Napi::Value SetErrorClass(const Napi::CallbackInfo& info);

}  // namespace vfio
