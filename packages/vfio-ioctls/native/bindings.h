// The functions each file exports to JS, gathered by addon.cc.
#pragma once
#include <napi.h>

namespace vfio {

void InitFile(Napi::Env env, Napi::Object exports);     // open, close, pread, pwrite
void InitIoctl(Napi::Env env, Napi::Object exports);    // ioctl
void InitMmap(Napi::Env env, Napi::Object exports);     // mmap, munmap, setMaxMappingLength
void InitMmio(Napi::Env env, Napi::Object exports);     // mmioRead*/mmioWrite*
void InitDma(Napi::Env env, Napi::Object exports);      // allocDma, freeDma, addressOf, pageSize, mlock, munlock
void InitEventfd(Napi::Env env, Napi::Object exports);  // eventfd, eventfdRead, eventfdWrite
void InitMemfd(Napi::Env env, Napi::Object exports);    // memfd, memfdDup
void InitPoller(Napi::Env env, Napi::Object exports);   // poll
void InitStream(Napi::Env env, Napi::Object exports);   // read, write

}  // namespace vfio
