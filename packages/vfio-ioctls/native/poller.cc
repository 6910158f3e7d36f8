#include "poller.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <vector>

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

  // new Poller(fd, onReadable), or new Poller([eventfds], onWake) for the
  // draining epoll form: created stopped.
  explicit Poller(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Poller>(info), context_(info.Env(), "VfioPoller") {
    Napi::Env env = info.Env();
    bool many = info[0].IsArray();
    int fd = many ? -1 : FdArg(info, 0, "fd");
    on_readable_ = Napi::Persistent(FunctionArg(info, 1, many ? "onWake" : "onReadable"));
    int single = -1;
    if (many) fd = EpollOf(env, info[0].As<Napi::Array>(), &single);
    // The loop of this environment: a worker thread has its own.
    uv_loop_t* loop = nullptr;
    NAPI_THROW_IF_FAILED_VOID(env, napi_get_uv_event_loop(env, &loop));
    auto* core = new PollCore{{}, State(env), this};
    // uv_poll_init also makes the fd non-blocking, and refuses fds epoll
    // cannot watch (regular files: EPERM).
    int err = uv_poll_init(loop, &core->handle, fd);
    if (err < 0) {
      delete core;
      if (many && single < 0) ::close(fd);
      ThrowErrno(env, -err, "uv_poll_init");
    }
    core->drains = many;
    if (many && single < 0) core->epoll_fd = fd;
    if (many && single >= 0) core->drain_fd = single;
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
    if (core->owner == nullptr) return;
    if (core->drains && status >= 0) {
      core->owner->DeliverDrained();
    } else {
      core->owner->Deliver(status);
    }
  }

 private:
  // An epoll fd watching each of `fds` for EPOLLIN, its position in the
  // array and the fd packed into the event's data (position high, fd low).
  // A single fd is returned as is (also in *single), to be watched directly.
  static int EpollOf(Napi::Env env, Napi::Array fds, int* single) {
    uint32_t length = fds.Length();
    std::vector<int> numbers;
    for (uint32_t i = 0; i < length; i++) {
      Napi::Value value = fds.Get(i);
      if (!value.IsNumber()) ThrowArgType(value, "fds", "number");
      double d = value.As<Napi::Number>().DoubleValue();
      if (!(d >= 0 && d <= INT32_MAX && std::floor(d) == d)) {
        ThrowRangeError(env, "The value of \"fds[" + std::to_string(i) + "]\" is out of range. It must be an fd (0 to 2147483647). Received " +
                                 value.ToString().Utf8Value());
      }
      numbers.push_back(static_cast<int>(d));
    }
    if (length == 1) {
      *single = numbers[0];
      return numbers[0];
    }
    int epfd = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) ThrowErrno(env, errno, "epoll_create1");
    for (uint32_t i = 0; i < length; i++) {
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.u64 = (uint64_t{i} << 32) | static_cast<uint32_t>(numbers[i]);
      if (::epoll_ctl(epfd, EPOLL_CTL_ADD, numbers[i], &event) < 0) {
        int err = errno;
        ::close(epfd);
        ThrowErrno(env, err, "epoll_ctl");
      }
    }
    return epfd;
  }

  // One wake-up of the epoll fd: every ready eventfd is read (which resets
  // its counter) here, and JavaScript hears of all of them in one call:
  // onWake(error, positions, counts). Level-triggered, so ready fds beyond
  // one batch wake the loop again on its next turn.
  void DeliverDrained() {
    constexpr int kBatch = 256;
    epoll_event events[kBatch];
    int ready = 1;
    if (core_->epoll_fd >= 0) {
      do ready = ::epoll_wait(core_->epoll_fd, events, kBatch, 0);
      while (ready < 0 && errno == EINTR);
    } else {
      events[0].data.u64 = static_cast<uint32_t>(core_->drain_fd);  // position 0
    }
    int failure = ready < 0 ? errno : 0;
    const char* failed_call = "epoll_wait";
    uint32_t positions[kBatch];
    double counts[kBatch];
    uint32_t drained = 0;
    for (int i = 0; i < ready; i++) {
      int fd = static_cast<int>(static_cast<uint32_t>(events[i].data.u64));
      uint64_t count = 0;
      ssize_t n;
      do n = ::read(fd, &count, sizeof count);
      while (n < 0 && errno == EINTR);
      if (n == sizeof count && count > 0) {
        positions[drained] = static_cast<uint32_t>(events[i].data.u64 >> 32);
        counts[drained] = static_cast<double>(count);
        drained++;
      } else if (n < 0 && errno != EAGAIN && failure == 0) {
        // EAGAIN: another reader took the count first. Anything else is reported.
        failure = errno;
        failed_call = "read";
      }
    }
    if (drained == 0 && failure == 0) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Object self = Value();
    Napi::Array keys = Napi::Array::New(env, drained);
    Napi::Array values = Napi::Array::New(env, drained);
    for (uint32_t i = 0; i < drained; i++) {
      keys.Set(i, Napi::Number::New(env, positions[i]));
      values.Set(i, Napi::Number::New(env, counts[i]));
    }
    napi_value args[3] = {failure != 0 ? ErrnoError(env, failure, failed_call) : env.Null(), keys, values};
    Call(self, 3, args);
  }
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
    Call(self, 1, &error);
  }

  void Call(Napi::Object self, size_t argc, const napi_value* argv) {
    Napi::Env env = Env();
    napi_value result;
    napi_status called = napi_make_callback(env, context_, self, on_readable_.Value(), argc, argv, &result);
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
  // uv_close stopped watching at once, so the epoll fd can go now rather than
  // a loop turn later (callers count their fds right after close()).
  if (core->epoll_fd >= 0) {
    ::close(core->epoll_fd);
    core->epoll_fd = -1;
  }
}

Napi::Value Poll(const Napi::CallbackInfo& info) {
  return State(info.Env())->poller_class.New({info[0], info[1]});
}

// watchEventfds(fds, onWake): the array form of the Poller.
Napi::Value WatchEventfds(const Napi::CallbackInfo& info) {
  if (!info[0].IsArray()) ThrowArgType(info[0], "fds", "an array");
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
  exports.Set("watchEventfds", Napi::Function::New(env, WatchEventfds, "watchEventfds"));
}

}  // namespace vfio
