// Entry point: per-environment state, teardown hook, and the exports of each
// file. Loaded once per environment (main thread and each worker).
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#include "bindings.h"
#include "errors.h"
#include "poller.h"
#include "state.h"

namespace vfio {

AddonState::~AddonState() {
  // Teardown waits for every close callback, so this is a guard, not a path.
  for (PollCore* core : poll_cores) core->state = nullptr;
}

namespace {

// The C values, so a test can check the TypeScript copies native.ts exports
// (which must exist without the addon, for the fake kernel).
void Set(Napi::Object constants, const char* name, int value) {
  constants.Set(name, Napi::Number::New(constants.Env(), value));
}

Napi::Object Constants(Napi::Env env) {
  Napi::Object constants = Napi::Object::New(env);
  Set(constants, "O_RDONLY", O_RDONLY);
  Set(constants, "O_WRONLY", O_WRONLY);
  Set(constants, "O_RDWR", O_RDWR);
  Set(constants, "O_CREAT", O_CREAT);
  Set(constants, "O_EXCL", O_EXCL);
  Set(constants, "O_NONBLOCK", O_NONBLOCK);
  Set(constants, "O_CLOEXEC", O_CLOEXEC);
  Set(constants, "PROT_NONE", PROT_NONE);
  Set(constants, "PROT_READ", PROT_READ);
  Set(constants, "PROT_WRITE", PROT_WRITE);
  Set(constants, "EFD_SEMAPHORE", EFD_SEMAPHORE);
  Set(constants, "EFD_CLOEXEC", EFD_CLOEXEC);
  Set(constants, "EFD_NONBLOCK", EFD_NONBLOCK);
  return constants;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* state = new AddonState();
  env.SetInstanceData(state);  // deleted with the environment
  // Async so that Node keeps turning the loop until the uv_poll handles
  // closed; this also keeps the env (and state) alive until then.
  napi_async_cleanup_hook_handle hook;
  NAPI_THROW_IF_FAILED(env, napi_add_async_cleanup_hook(env, TearDownPollers, state, &hook),
                       exports);
  state->cleanup_hook = hook;

  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  exports.Set("constants", Constants(env));
  InitFile(env, exports);
  InitIoctl(env, exports);
  InitMmap(env, exports);
  InitMmio(env, exports);
  InitDma(env, exports);
  InitEventfd(env, exports);
  InitMemfd(env, exports);
  InitPoller(env, exports);
  InitStream(env, exports);
  return exports;
}

}  // namespace vfio

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  return vfio::Init(env, exports);
}

NODE_API_MODULE(vfio_ioctls, InitAddon)
