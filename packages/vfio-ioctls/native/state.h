// Per-environment state (env.SetInstanceData): the main thread and every
// worker thread that loads the addon get their own, so nothing is shared
// across isolates or event loops.
#pragma once
#include <napi.h>

#include <cstddef>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "mapping.h"

namespace vfio {

struct PollCore;

struct AddonState {
  Napi::FunctionReference error_class;  // VfioError, once native.ts set it
  Napi::FunctionReference poller_class;

  // Live mmap/allocDma buffers by address. Entries whose buffer was collected
  // are marked released by the finalizer and swept later; the finalizer never
  // touches this table, so it may run in any order at teardown.
  std::unordered_map<void*, MappingPtr> mappings;
  size_t sweep_at = 64;
  // The longest mapping ExposeMapping can hand out as one ArrayBuffer. Node
  // builds a Node-API external ArrayBuffer through a Buffer, so Buffer's
  // limit holds (buffer.constants.MAX_LENGTH): 2^32 on Node 20, the lowest
  // of the supported versions, until native.ts sets this Node's value.
  size_t max_mapping_length = size_t{1} << 32;

  // uv_poll handles not yet through uv_close's callback.
  std::unordered_set<PollCore*> poll_cores;
  napi_async_cleanup_hook_handle cleanup_hook = nullptr;
  bool tearing_down = false;

  ~AddonState();
};

inline AddonState* State(Napi::Env env) { return env.GetInstanceData<AddonState>(); }

}  // namespace vfio
