#include "errors.h"

#include <uv.h>

#include <cstring>
#include <string>

#include "args.h"
#include "state.h"

namespace vfio {

namespace {

// libuv names errnos the way Node does ('EBUSY'); errnos it does not know get
// 'E<n>', the same fallback VfioError.fromErrno uses.
std::string ErrnoCode(int err) {
  char name[64];
  uv_err_name_r(-err, name, sizeof name);
  if (std::strncmp(name, "Unknown", 7) == 0) return "E" + std::to_string(err);
  return name;
}

Napi::Value MakeVfioError(Napi::Env env, const std::string& code, const std::string& message,
                          Napi::Object context) {
  AddonState* state = State(env);
  if (state != nullptr && !state->error_class.IsEmpty()) {
    return state->error_class.New(
        {Napi::String::New(env, code), Napi::String::New(env, message), context});
  }
  // Before native.ts handed over VfioError: the same fields on a plain Error.
  Napi::Object error = Napi::Error::New(env, message).Value();
  error.Set("code", code);
  if (context.Has("errno")) error.Set("errno", context.Get("errno"));
  if (context.Has("syscall")) error.Set("syscall", context.Get("syscall"));
  return error;
}

}  // namespace

Napi::Value ErrnoError(Napi::Env env, int err, const char* syscall) {
  char text[256];
  uv_strerror_r(-err, text, sizeof text);
  std::string code = ErrnoCode(err);
  Napi::Object context = Napi::Object::New(env);
  context.Set("errno", -err);  // negative, as Node's own errors carry it
  context.Set("syscall", syscall);
  return MakeVfioError(env, code, code + ": " + text + ", " + syscall, context);
}

void ThrowErrno(Napi::Env env, int err, const char* syscall) {
  throw Napi::Error(env, ErrnoError(env, err, syscall));
}

void ThrowVfioError(Napi::Env env, const char* code, const std::string& message) {
  Napi::Object context = Napi::Object::New(env);
  context.Set("errno", 0);  // a library code, not a syscall's errno
  throw Napi::Error(env, MakeVfioError(env, code, message, context));
}

void ThrowTypeError(Napi::Env env, const std::string& message, const char* code) {
  Napi::TypeError error = Napi::TypeError::New(env, message);
  error.Set("code", code);
  throw error;
}

void ThrowRangeError(Napi::Env env, const std::string& message) {
  Napi::RangeError error = Napi::RangeError::New(env, message);
  error.Set("code", "ERR_OUT_OF_RANGE");
  throw error;
}

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  Napi::Function error_class = FunctionArg(info, 0, "errorClass");
  State(info.Env())->error_class = Napi::Persistent(error_class);
  return info.Env().Undefined();
}

}  // namespace vfio
