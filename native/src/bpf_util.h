// Shared by the bpf_*.cc files: argument helpers, libbpf log capture, and
// errors that carry libbpf's own explanation (verifier log, netlink extack).
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

#include "errors.h"

namespace weft {
namespace bpfutil {

// libbpf reports through one global print callback. While a LogCapture is
// alive, everything libbpf prints is collected so that a failing call can put
// the interesting part in its error; outside captures, messages are dropped
// unless WEFT_LIBBPF_DEBUG is set (then they go to stderr).
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  // Last n non-empty lines captured so far, newline-separated.
  std::string Tail(size_t n) const;
};
void InstallPrintCallback();

// ErrnoError (code/errno/syscall) whose message has `detail` appended on the
// following lines; detail may be empty.
Napi::Error ErrnoErrorWithDetail(Napi::Env env, const std::string& call, int err,
                                 const std::string& detail);
[[noreturn]] void ThrowErrnoWithLog(Napi::Env env, const std::string& call, int err,
                                    const LogCapture& log, size_t lines = 30);

int32_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* what);
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* what);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what);
// Optional trailing label naming the object in error messages ("map weft_peers").
std::string ArgLabel(const Napi::CallbackInfo& info, size_t i, const std::string& fallback);
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* what);

std::string Hex(const uint8_t* p, size_t n);
Napi::Object ProgInfoObject(Napi::Env env, int fd, const std::string& label);
Napi::Object MapInfoObject(Napi::Env env, int fd, const std::string& label);

}  // namespace bpfutil

Napi::Object InitBpfMap(Napi::Env env, Napi::Object exports);
Napi::Object InitBpfTc(Napi::Env env, Napi::Object exports);
Napi::Object InitBpfObject(Napi::Env env, Napi::Object exports);
Napi::Object InitBpfTcx(Napi::Env env, Napi::Object exports);
Napi::Object InitBpfRingbuf(Napi::Env env, Napi::Object exports);

}  // namespace weft
