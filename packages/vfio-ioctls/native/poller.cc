#include "poller.h"

#include "args.h"
#include "bindings.h"
#include "errors.h"
#include "state.h"

namespace vfio {

namespace {

void OnClosed(uv_handle_t* handle) {
  auto* core = static_cast<PollCore*>(handle->data);
  if (AddonState* state = core->state) {
    state->poll_cores.erase(core);
    if (state->tearing_down && state->poll_cores.empty()) {
      napi_remove_async_cleanup_hook(state->cleanup_hook);
    }
  }
  delete core;
}

void ClosePollCore(PollCore* core);

}  // namespace

class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {InstanceMethod("start", &Poller::Start),
                        InstanceMethod("stop", &Poller::Stop),
                        InstanceMethod("close", &Poller::Close),
                        InstanceMethod("ref", &Poller::RefLoop),
                        InstanceMethod("unref", &Poller::UnrefLoop)});
  }

  // new Poller(fd, onReadable): created stopped.
  explicit Poller(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Poller>(info), context_(info.Env(), "VfioPoller") {
    Napi::Env env = info.Env();
    int fd = FdArg(info, 0, "fd");
    on_readable_ = Napi::Persistent(FunctionArg(info, 1, "onReadable"));
    // The loop of this environment: a worker thread has its own.
    uv_loop_t* loop = nullptr;
    NAPI_THROW_IF_FAILED_VOID(env, napi_get_uv_event_loop(env, &loop));
    auto* core = new PollCore{{}, State(env), this};
    // uv_poll_init also makes the fd non-blocking, and refuses fds epoll
    // cannot watch (regular files: EPERM).
    int err = uv_poll_init(loop, &core->handle, fd);
    if (err < 0) {
      delete core;
      ThrowErrno(env, -err, "uv_poll_init");
    }
    core->handle.data = core;
    core->state->poll_cores.insert(core);
    core_ = core;
  }

  ~Poller() override {
    if (core_ != nullptr) {
      core_->owner = nullptr;
      ClosePollCore(core_);
    }
  }

  // Called when the core starts closing: the JS object is then closed.
  void ForgetCore() {
    if (started_) {
      started_ = false;
      Unref();
    }
    core_ = nullptr;
  }

  static void OnEvent(uv_poll_t* handle, int status, int /*events*/) {
    auto* core = static_cast<PollCore*>(handle->data);
    if (core->owner != nullptr) core->owner->Deliver(status);
  }

 private:
  void Deliver(int status) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Object self = Value();  // held by the scope even if StopWatching lets go
    napi_value error = env.Null();
    if (status < 0) {
      // libuv stopped the watcher itself (POLLERR); mirror that.
      StopWatching();
      error = ErrnoError(env, -status, "uv_poll");
    }
    napi_value result;
    napi_status called = napi_make_callback(env, context_, self, on_readable_.Value(), 1, &error, &result);
    if (called == napi_ok) return;
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      // A throwing callback is an uncaught exception, as for any Node callback.
      napi_value exception;
      napi_get_and_clear_last_exception(env, &exception);
      napi_fatal_exception(env, exception);
    }
    // Nothing pending: the environment is stopping and cannot run JS; drop it.
  }

  void StopWatching() {
    if (!started_) return;
    uv_poll_stop(&core_->handle);
    started_ = false;
    Unref();
  }

  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (core_ == nullptr) ThrowVfioError(info.Env(), "ERR_VFIO_CLOSED", "poller is closed");
    if (started_) return info.Env().Undefined();
    int err = uv_poll_start(&core_->handle, UV_READABLE, OnEvent);
    if (err < 0) ThrowErrno(info.Env(), -err, "uv_poll_start");
    started_ = true;
    // A started poller must survive losing its last JS reference, like a
    // socket: the callback can still fire.
    Ref();
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (core_ != nullptr) StopWatching();
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (core_ != nullptr) ClosePollCore(core_);
    return info.Env().Undefined();
  }

  Napi::Value RefLoop(const Napi::CallbackInfo& info) {
    if (core_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(&core_->handle));
    return info.Env().Undefined();
  }

  Napi::Value UnrefLoop(const Napi::CallbackInfo& info) {
    if (core_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(&core_->handle));
    return info.Env().Undefined();
  }

  PollCore* core_ = nullptr;
  Napi::FunctionReference on_readable_;
  Napi::AsyncContext context_;
  bool started_ = false;
};

namespace {

// Idempotent; the core is freed in OnClosed.
void ClosePollCore(PollCore* core) {
  if (core->closing) return;
  core->closing = true;
  if (Poller* owner = core->owner) {
    core->owner = nullptr;
    owner->ForgetCore();
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&core->handle), OnClosed);
}

Napi::Value Poll(const Napi::CallbackInfo& info) {
  return State(info.Env())->poller_class.New({info[0], info[1]});
}

}  // namespace

void TearDownPollers(napi_async_cleanup_hook_handle hook, void* arg) {
  auto* state = static_cast<AddonState*>(arg);
  state->tearing_down = true;
  state->cleanup_hook = hook;
  // Copy: closing does not erase, but OnClosed later will.
  for (PollCore* core : std::unordered_set<PollCore*>(state->poll_cores)) ClosePollCore(core);
  if (state->poll_cores.empty()) napi_remove_async_cleanup_hook(hook);
}

void InitPoller(Napi::Env env, Napi::Object exports) {
  State(env)->poller_class = Napi::Persistent(Poller::Define(env));
  exports.Set("poll", Napi::Function::New(env, Poll, "poll"));
}

}  // namespace vfio
