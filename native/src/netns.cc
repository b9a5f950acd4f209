// withNetns(path, fn): runs fn synchronously with the calling thread in the
// network namespace at path, then returns the thread to its own namespace.
// Sockets created during fn (netlink, the ones libbpf opens for TC) stay bound
// to that namespace. Only the main thread moves; fn must not await.
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <napi.h>

#include "errors.h"

namespace weft {

static Napi::Value WithNetns(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsFunction())
    throw Napi::TypeError::New(env, "withNetns(path: string, fn: () => T)");
  std::string path = info[0].As<Napi::String>();
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) ThrowErrno(env, "open(/proc/thread-self/ns/net)", errno);
  int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    int e = errno;
    close(self);
    ThrowErrno(env, "open(" + path + ")", e);
  }
  if (setns(target, CLONE_NEWNET) < 0) {
    int e = errno;
    close(self);
    close(target);
    ThrowErrno(env, "setns(" + path + ")", e);
  }
  close(target);
  Napi::Value result;
  try {
    result = info[1].As<Napi::Function>().Call({});
  } catch (...) {
    setns(self, CLONE_NEWNET);
    close(self);
    throw;
  }
  int back = setns(self, CLONE_NEWNET);
  int e = errno;
  close(self);
  if (back < 0) ThrowErrno(env, "setns(back to own namespace)", e);
  return result;
}

Napi::Object InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("withNetns", Napi::Function::New(env, WithNetns, "withNetns"));
  return exports;
}

}  // namespace weft
