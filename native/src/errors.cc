#include "errors.h"

#include <cerrno>
#include <cstring>

namespace weft {

const char* ErrnoName(int err) {
  switch (err) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(ENOEXEC) E(EBADF)
    E(ECHILD) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV)
    E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(EFBIG) E(ENOSPC)
    E(ESPIPE) E(EROFS) E(EMLINK) E(EPIPE) E(ERANGE) E(ENAMETOOLONG) E(ENOSYS) E(ENOTEMPTY)
    E(ELOOP) E(ENOMSG) E(ENODATA) E(ETIME) E(EPROTO) E(EBADMSG) E(EOVERFLOW) E(EOPNOTSUPP)
    E(EAFNOSUPPORT) E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETDOWN) E(ENETUNREACH) E(ECONNREFUSED)
    E(EHOSTUNREACH) E(ETIMEDOUT) E(ENOBUFS)
#undef E
    default: return "E?";
  }
}

Napi::Error ErrnoError(Napi::Env env, const std::string& call, int err) {
  if (err < 0) err = -err;
  std::string name = ErrnoName(err);
  if (name == "E?") name = "errno " + std::to_string(err);
  std::string msg = call + ": " + name + " (" + std::strerror(err) + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, name));
  e.Set("errno", Napi::Number::New(env, err));
  std::string syscall = call.substr(0, call.find('('));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

void ThrowErrno(Napi::Env env, const std::string& call, int err) {
  throw ErrnoError(env, call, err);
}

}  // namespace weft
