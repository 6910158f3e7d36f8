// Readiness of an fd (an eventfd signalled by VFIO, an epoll fd holding many)
// delivered on the Node event loop of the environment that asked for it.
#pragma once
#include <napi.h>
#include <uv.h>

namespace vfio {

class Poller;
struct AddonState;

// The libuv half of a poller, allocated apart from the JS object because
// libuv may free a handle only in uv_close's callback, which can run after
// the JS object was collected.
struct PollCore {
  uv_poll_t handle;
  AddonState* state;  // counts the handle until its close callback ran
  Poller* owner;      // null once the JS object closed it or was collected
  bool closing = false;
  // watchEventfds: the callback reads the eventfds itself (drains).
  bool drains = false;
  // The epoll fd holding the eventfds, closed with the core; -1 when there
  // is one eventfd, watched directly (one syscall less per wake-up).
  int epoll_fd = -1;
  // The one eventfd watched directly (the caller's; never closed here).
  int drain_fd = -1;
};

// Env teardown (async cleanup hook): closes every handle and reports done
// from the last close callback, so Node keeps the loop turning until then.
void TearDownPollers(napi_async_cleanup_hook_handle hook, void* arg);

}  // namespace vfio
