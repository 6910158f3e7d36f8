#include "mapping.h"

#include <sys/mman.h>

#include <string>

#include "args.h"
#include "errors.h"
#include "state.h"

namespace vfio {

namespace {

// Drops table entries whose buffers were collected (finalizer ran), once the
// table has doubled since the last sweep, so it stays proportional to the
// live mappings without the finalizer ever touching it.
void SweepReleased(AddonState* state) {
  if (state->mappings.size() < state->sweep_at) return;
  for (auto it = state->mappings.begin(); it != state->mappings.end();) {
    it = it->second->released ? state->mappings.erase(it) : std::next(it);
  }
  state->sweep_at = 2 * state->mappings.size() + 64;
}

const char* KindName(MappingKind kind) {
  switch (kind) {
    case MappingKind::kFile: return "a live mapping from mmap()";
    case MappingKind::kDma: return "live memory from allocDma()";
    case MappingKind::kAny: return "a live mapping from mmap() or allocDma()";
  }
  return "";
}

// The buffer's finalizer: `hint` is a heap-held reference to the mapping,
// so the finalizer works whether or not the table (instance data) still
// exists when the buffer is collected, and whoever unmaps first wins.
void FinalizeMapping(napi_env, void*, void* hint) {
  auto* holder = static_cast<MappingPtr*>(hint);
  Mapping& mapping = **holder;
  if (!mapping.released) {
    mapping.released = true;
    ::munmap(mapping.addr, mapping.length);
  }
  delete holder;
}

}  // namespace

size_t MaxMappingLength(Napi::Env env) { return State(env)->max_mapping_length; }

void SetMaxMappingLength(Napi::Env env, size_t length) { State(env)->max_mapping_length = length; }

Napi::ArrayBuffer ExposeMapping(Napi::Env env, void* addr, size_t length, int prot,
                                MappingKind kind) {
  auto mapping = std::make_shared<Mapping>(Mapping{addr, length, prot, kind});
  // The plain Node-API call, not Napi::ArrayBuffer::New with a finalizer:
  // when Node refuses the buffer (a length over Buffer's limit) it has
  // already run the finalizer, and node-addon-api then deletes the
  // finalizer's data a second time, which crashed the process (issue #12,
  // an 8 GiB BAR). Once handed over, `holder` is Node's to delete; a
  // refusal that never runs the finalizer leaves only the holder behind.
  auto* holder = new MappingPtr(mapping);
  napi_value value;
  napi_status status =
      napi_create_external_arraybuffer(env, addr, length, FinalizeMapping, holder, &value);
  if (status != napi_ok) {
    Napi::Error error = Napi::Error::New(env);  // Node's pending exception, else the status
    if (!mapping->released) {
      mapping->released = true;
      ::munmap(addr, length);
    }
    throw error;
  }
  AddonState* state = State(env);
  SweepReleased(state);
  // An address can repeat only after the old mapping was unmapped, so
  // replacing a stale entry is right.
  state->mappings[addr] = mapping;
  return Napi::ArrayBuffer(env, value);
}

MappingPtr LiveMappingArg(const Napi::CallbackInfo& info, size_t index, const char* name,
                          MappingKind kind) {
  Napi::ArrayBuffer buffer = ArrayBufferArg(info, index, name);
  AddonState* state = State(info.Env());
  // A detached buffer has no data and length 0, so it is never found.
  auto it = state->mappings.find(buffer.Data());
  bool live = it != state->mappings.end() && !it->second->released &&
              it->second->length == buffer.ByteLength() &&
              (kind == MappingKind::kAny || it->second->kind == kind);
  if (!live) {
    ThrowTypeError(info.Env(),
                   std::string("The \"") + name + "\" argument must be " + KindName(kind) +
                       " (it was never mapped, or already unmapped or freed)",
                   "ERR_INVALID_ARG_VALUE");
  }
  return it->second;
}

void ReleaseMappingArg(const Napi::CallbackInfo& info, size_t index, const char* name,
                       MappingKind kind) {
  MappingPtr mapping = LiveMappingArg(info, index, name, kind);
  Napi::ArrayBuffer buffer = info[index].As<Napi::ArrayBuffer>();
  // Detach first: afterwards every view on the buffer throws instead of
  // reading or writing memory that is about to disappear.
  buffer.Detach();
  mapping->released = true;  // the finalizer, which still runs, must not unmap again
  State(info.Env())->mappings.erase(mapping->addr);
  if (::munmap(mapping->addr, mapping->length) < 0) ThrowErrno(info.Env(), errno, "munmap");
}

}  // namespace vfio
