// Memory the addon maps into JS (mmap of an fd, or anonymous DMA memory),
// exposed as external ArrayBuffers and released either explicitly (detach,
// then munmap) or by the buffer's finalizer, never both.
#pragma once
#include <napi.h>

#include <cstddef>
#include <memory>

namespace vfio {

enum class MappingKind { kFile, kDma, kAny };

struct Mapping {
  void* addr;
  size_t length;
  int prot;
  MappingKind kind;
  bool released = false;  // munmapped; set by whichever of free/finalizer ran first
};
using MappingPtr = std::shared_ptr<Mapping>;

// The longest mapping that can become one ArrayBuffer (AddonState's
// max_mapping_length). mmap and allocDma refuse longer ones before any
// syscall, as an argument out of range.
size_t MaxMappingLength(Napi::Env env);
void SetMaxMappingLength(Napi::Env env, size_t length);

// Wraps a fresh mapping in an external ArrayBuffer and registers it. On
// failure the mapping is unmapped before the exception leaves.
Napi::ArrayBuffer ExposeMapping(Napi::Env env, void* addr, size_t length, int prot,
                                MappingKind kind);

// The live mapping behind argument `index`, or a TypeError naming `name`.
MappingPtr LiveMappingArg(const Napi::CallbackInfo& info, size_t index, const char* name,
                          MappingKind kind);

// Detaches the buffer at argument `index` (views then throw instead of
// touching unmapped memory), then munmaps it.
void ReleaseMappingArg(const Napi::CallbackInfo& info, size_t index, const char* name,
                       MappingKind kind);

}  // namespace vfio
