// sendDatagram(path, message): one datagram to the AF_UNIX SOCK_DGRAM socket
// at path, as sd_notify(3) sends to $NOTIFY_SOCKET ("@name" is an abstract
// socket). Node has no unix datagram sockets, and a helper process would be
// the wrong sender: systemd takes READY=1 for a Type=notify unit only from the
// main PID, which it reads from the datagram's credentials.
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <napi.h>

#include "errors.h"

namespace weft {

static Napi::Value SendDatagram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString())
    throw Napi::TypeError::New(env, "sendDatagram(path: string, message: string)");
  std::string path = info[0].As<Napi::String>();
  std::string message = info[1].As<Napi::String>();
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sa.sun_path))
    throw Napi::Error::New(env, "sendDatagram: the socket path is empty or longer than " + std::to_string(sizeof(sa.sun_path) - 1) + " bytes");
  memcpy(sa.sun_path, path.data(), path.size());
  // An abstract name is its bytes after a NUL, and exactly as long as given.
  if (path[0] == '@') sa.sun_path[0] = '\0';
  socklen_t len = offsetof(struct sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1);
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(env, "socket(AF_UNIX, SOCK_DGRAM)", errno);
  ssize_t n = sendto(fd, message.data(), message.size(), MSG_NOSIGNAL, reinterpret_cast<struct sockaddr*>(&sa), len);
  int e = errno;
  close(fd);
  if (n < 0) ThrowErrno(env, "sendto(" + path + ")", e);
  return env.Undefined();
}

Napi::Object InitNotify(Napi::Env env, Napi::Object exports) {
  exports.Set("sendDatagram", Napi::Function::New(env, SendDatagram, "sendDatagram"));
  return exports;
}

}  // namespace weft
