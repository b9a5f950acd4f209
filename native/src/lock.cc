// flock(fd): the lock a process holds for its life and the kernel drops when
// it dies, however it dies (Node has no flock of its own). The agent takes it
// on its network namespace and its pin dir, so that a second agent on the
// same host is refused instead of fighting the first over devices and maps.
#include <sys/file.h>

#include <cerrno>

#include <napi.h>

#include "errors.h"

namespace weft {

// flock(fd): LOCK_EX | LOCK_NB. true: held now; false: another open file holds it.
static Napi::Value Flock(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "flock(fd: number)");
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) return Napi::Boolean::New(env, true);
  if (errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
  ThrowErrno(env, "flock(fd " + std::to_string(fd) + ")", errno);
}

Napi::Object InitLock(Napi::Env env, Napi::Object exports) {
  exports.Set("flock", Napi::Function::New(env, Flock, "flock"));
  return exports;
}

}  // namespace weft
