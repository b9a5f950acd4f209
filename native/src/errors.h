// Errors reach TypeScript as Error objects that name the call, the errno and
// the object: "bpf_tc_attach(ifindex 7, ingress): EEXIST (File exists)", with
// .code = "EEXIST", .errno = 17, .syscall = "bpf_tc_attach".
#pragma once
#include <napi.h>
#include <string>

namespace weft {
// err is a positive errno value (libbpf returns -errno; pass -ret).
Napi::Error ErrnoError(Napi::Env env, const std::string& call, int err);
[[noreturn]] void ThrowErrno(Napi::Env env, const std::string& call, int err);
const char* ErrnoName(int err);
}  // namespace weft
