// rtnetlink over libnl-route-3: the socket, kernel errors, argument and
// address helpers, dumps, and the Handle class. The calls themselves are in
// netlink_link.cc, netlink_route.cc, netlink_batch.cc and netlink_monitor.cc.
#include "netlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/nexthop.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <netlink/errno.h>
#include <netlink/msg.h>

#include "errors.h"

namespace weft::nl {

int ReadAck(const nlmsghdr* hdr, std::string* extack) {
  extack->clear();
  if (hdr->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return EBADMSG;
  auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(hdr));
  if (e->error == 0 || !(hdr->nlmsg_flags & NLM_F_ACK_TLVS)) return -e->error;
  const char* end = reinterpret_cast<const char*>(hdr) + hdr->nlmsg_len;
  const char* tlv = (hdr->nlmsg_flags & NLM_F_CAPPED)
                        ? reinterpret_cast<const char*>(e + 1)
                        : reinterpret_cast<const char*>(&e->msg) + NLMSG_ALIGN(e->msg.nlmsg_len);
  if (tlv >= end) return -e->error;
  nlattr* msg = nla_find(reinterpret_cast<const nlattr*>(tlv), static_cast<int>(end - tlv), NLMSGERR_ATTR_MSG);
  if (msg && nla_len(msg) > 0)
    extack->assign(static_cast<const char*>(nla_data(msg)), strnlen(static_cast<const char*>(nla_data(msg)), nla_len(msg)));
  return -e->error;
}

// Keeps the kernel's errno and extended-ack text; NL_STOP makes libnl return
// its own code for the same error, which ErrnoOf then ignores.
static int OnKernelError(sockaddr_nl*, nlmsgerr* e, void* arg) {
  Sock* s = static_cast<Sock*>(arg);
  auto* hdr = reinterpret_cast<const nlmsghdr*>(reinterpret_cast<char*>(e) - NLMSG_HDRLEN);
  s->kernel_errno = ReadAck(hdr, &s->extack);
  return NL_STOP;
}

void OpenSock(Napi::Env env, Sock* s, const char* what) {
  s->sk = nl_socket_alloc();
  if (!s->sk) ThrowErrnoMsg(env, std::string("nl_socket_alloc(") + what + ")", ENOMEM);
  int err = nl_connect(s->sk, NETLINK_ROUTE);
  if (err < 0) {
    nl_socket_free(s->sk);
    s->sk = nullptr;
    ThrowErrnoMsg(env, std::string("nl_connect(NETLINK_ROUTE, ") + what + ")", ErrnoOf(Sock{}, err));
  }
  int fd = nl_socket_get_fd(s->sk);
  int one = 1;
  // Extended acks carry the kernel's reason ("Nexthop has invalid gateway");
  // capped acks keep error replies small when a batch fails many requests.
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  // A batch keeps up to 1024 acks queued before it reads them.
  int rcvbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
  // Dump replies are larger than a page; peeking sizes the receive buffer.
  nl_socket_enable_msg_peek(s->sk);
  nl_socket_modify_err_cb(s->sk, NL_CB_CUSTOM, OnKernelError, s);
}

int ErrnoOf(const Sock& s, int nle) {
  if (s.kernel_errno > 0) return s.kernel_errno;
  switch (nle < 0 ? -nle : nle) {
    case NLE_NOMEM: return ENOMEM;
    case NLE_INVAL: case NLE_MISSING_ATTR: case NLE_PARSE_ERR: return EINVAL;
    case NLE_AF_MISMATCH: case NLE_AF_NOSUPPORT: return EAFNOSUPPORT;
    case NLE_MSGSIZE: return EMSGSIZE;
    case NLE_OBJ_NOTFOUND: return ENOENT;
    case NLE_EXIST: return EEXIST;
    case NLE_BUSY: return EBUSY;
    case NLE_AGAIN: return EAGAIN;
    case NLE_INTR: case NLE_DUMP_INTR: return EINTR;
    case NLE_BAD_SOCK: return EBADF;
    case NLE_OPNOTSUPP: return EOPNOTSUPP;
    case NLE_PERM: return EPERM;
    case NLE_NOACCESS: return EACCES;
    case NLE_NODEV: return ENODEV;
    case NLE_RANGE: return ERANGE;
    case NLE_PROTO_MISMATCH: return EPROTONOSUPPORT;
    default: return EIO;
  }
}

Napi::Error Error(Napi::Env env, const Sock& s, const std::string& call, int nle) {
  Napi::Error e = ErrnoError(env, call, ErrnoOf(s, nle));
  if (!s.extack.empty()) {
    // The stack's first line was written from the old message; keep them equal.
    std::string oldMsg = e.Get("message").As<Napi::String>();
    std::string newMsg = oldMsg + ": " + s.extack;
    e.Set("message", Napi::String::New(env, newMsg));
    e.Set("extack", Napi::String::New(env, s.extack));
    Napi::Value stack = e.Get("stack");
    if (stack.IsString()) {
      std::string st = stack.As<Napi::String>();
      // V8 formats the stack lazily, so it may already show the new message.
      size_t at = st.find(newMsg) == std::string::npos ? st.find(oldMsg) : std::string::npos;
      if (at != std::string::npos) st.replace(at, oldMsg.size(), newMsg);
      e.Set("stack", Napi::String::New(env, st));
    }
  }
  return e;
}

void Throw(Napi::Env env, const Sock& s, const std::string& call, int nle) { throw Error(env, s, call, nle); }

void ThrowErrnoMsg(Napi::Env env, const std::string& call, int err) { ThrowErrno(env, call, err); }

// Addresses ---------------------------------------------------------------

Addr ParseV4(Napi::Env env, const std::string& s, bool cidr, const char* field) {
  size_t slash = s.find('/');
  std::string ip = s.substr(0, slash);
  in_addr a{};
  int plen = 32;
  bool ok = inet_pton(AF_INET, ip.c_str(), &a) == 1;
  if (ok && slash != std::string::npos) {
    std::string p = s.substr(slash + 1);
    ok = !p.empty() && p.size() <= 2 && p.find_first_not_of("0123456789") == std::string::npos;
    if (ok) plen = std::stoi(p);
    ok = ok && plen <= 32;
  } else if (ok && cidr) {
    ok = false;
  }
  if (!ok)
    throw Napi::TypeError::New(env, std::string(field) + ": expected an IPv4 " + (cidr ? "CIDR like 10.244.3.0/24" : "address") + ", got '" + s + "'");
  nl_addr* out = nl_addr_build(AF_INET, &a, sizeof(a));
  if (!out) ThrowErrnoMsg(env, "nl_addr_build", ENOMEM);
  nl_addr_set_prefixlen(out, plen);
  return Addr(out);
}

Addr ParseMac(Napi::Env env, const std::string& s, const char* field) {
  unsigned b[6];
  char tail;
  if (s.size() != 17 || sscanf(s.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
    throw Napi::TypeError::New(env, std::string(field) + ": expected a MAC like aa:bb:cc:dd:ee:ff, got '" + s + "'");
  unsigned char bytes[6];
  for (int i = 0; i < 6; i++) bytes[i] = static_cast<unsigned char>(b[i]);
  nl_addr* out = nl_addr_build(AF_LLC, bytes, 6);
  if (!out) ThrowErrnoMsg(env, "nl_addr_build", ENOMEM);
  return Addr(out);
}

std::string FormatMac(nl_addr* a) {
  const unsigned char* b = static_cast<const unsigned char*>(nl_addr_get_binary_addr(a));
  unsigned len = nl_addr_get_len(a);
  std::string out;
  char part[4];
  for (unsigned i = 0; i < len; i++) {
    snprintf(part, sizeof(part), i ? ":%02x" : "%02x", b[i]);
    out += part;
  }
  return out;
}

std::string FormatAddr(nl_addr* a) {
  char buf[INET6_ADDRSTRLEN];
  unsigned len = nl_addr_get_len(a);
  const void* bin = nl_addr_get_binary_addr(a);
  if (len == 4) return inet_ntop(AF_INET, bin, buf, sizeof(buf));
  if (len == 16) return inet_ntop(AF_INET6, bin, buf, sizeof(buf));
  if (len == 0) return nl_addr_get_family(a) == AF_INET6 ? "::" : "0.0.0.0";
  return FormatMac(a);
}

// Arguments ---------------------------------------------------------------

Napi::Object ArgObject(const Napi::CallbackInfo& info, size_t i, const char* sig) {
  if (info.Length() <= i || !info[i].IsObject()) throw Napi::TypeError::New(info.Env(), sig);
  return info[i].As<Napi::Object>();
}

std::optional<std::string> OptString(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return std::nullopt;
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), std::string(key) + ": expected a string");
  return v.As<Napi::String>().Utf8Value();
}

std::string GetString(Napi::Object o, const char* key) {
  auto v = OptString(o, key);
  if (!v) throw Napi::TypeError::New(o.Env(), std::string(key) + ": required");
  return *v;
}

std::optional<uint32_t> OptU32(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return std::nullopt;
  double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (d < 0 || d > 4294967295.0 || d != static_cast<double>(static_cast<uint32_t>(d)))
    throw Napi::TypeError::New(o.Env(), std::string(key) + ": expected an unsigned 32-bit integer");
  return static_cast<uint32_t>(d);
}

uint32_t GetU32(Napi::Object o, const char* key) {
  auto v = OptU32(o, key);
  if (!v) throw Napi::TypeError::New(o.Env(), std::string(key) + ": required");
  return *v;
}

std::optional<bool> OptBool(Napi::Object o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return std::nullopt;
  if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string(key) + ": expected a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string IfName(Sock& s, int index) {
  rtnl_link* link = nullptr;
  int saved = s.kernel_errno;
  std::string saved_ext = s.extack;
  std::string name = "#" + std::to_string(index);
  if (rtnl_link_get_kernel(s.sk, index, nullptr, &link) == 0 && link) {
    if (rtnl_link_get_name(link)) name = rtnl_link_get_name(link);
    rtnl_link_put(link);
  }
  s.kernel_errno = saved;
  s.extack = saved_ext;
  return name;
}

// Dumps -------------------------------------------------------------------

int Dump(Sock& s, int type, int family, DumpFn fn, void* arg, void (*restart)(void*)) {
  // A full family header, not rtgenmsg: the legacy fdb dump rejects a 1-byte one.
  union {
    rtmsg rt;
    ndmsg nd;
    ifaddrmsg ifa;
    ifinfomsg ifi;
    nhmsg nh;
  } hdr{};
  size_t len = sizeof(rtmsg);
  switch (type) {
    case RTM_GETROUTE: hdr.rt.rtm_family = family; len = sizeof(rtmsg); break;
    case RTM_GETNEIGH: hdr.nd.ndm_family = family; len = sizeof(ndmsg); break;
    case RTM_GETADDR: hdr.ifa.ifa_family = family; len = sizeof(ifaddrmsg); break;
    case RTM_GETNEXTHOP: hdr.nh.nh_family = family; len = sizeof(nhmsg); break;
    default: hdr.ifi.ifi_family = family; len = sizeof(ifinfomsg); break;
  }
  int err = 0;
  for (int attempt = 0; attempt < 10; attempt++) {
    s.Reset();
    err = nl_send_simple(s.sk, type, NLM_F_DUMP, &hdr, len);
    if (err < 0) return err;
    nl_cb* base = nl_socket_get_cb(s.sk);
    nl_cb* cb = nl_cb_clone(base);
    nl_cb_put(base);
    if (!cb) return -NLE_NOMEM;
    nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, fn, arg);
    err = nl_recvmsgs(s.sk, cb);
    nl_cb_put(cb);
    if (err != -NLE_DUMP_INTR) return err < 0 ? err : 0;
    restart(arg);
  }
  return err;
}

int Exec(Sock& s, nl_msg* msg) {
  s.Reset();
  int err = nl_send_auto(s.sk, msg);
  if (err < 0) return err;
  return nl_wait_for_ack(s.sk);
}

// Handle ------------------------------------------------------------------

Napi::Function Handle::Define(Napi::Env env) {
  return DefineClass(env, "NetlinkHandle",
                     {
                         InstanceMethod("close", &Handle::Close),
                         InstanceMethod("links", &Handle::Links),
                         InstanceMethod("link", &Handle::Link),
                         InstanceMethod("linkAddVxlan", &Handle::LinkAddVxlan),
                         InstanceMethod("linkAddVeth", &Handle::LinkAddVeth),
                         InstanceMethod("linkSet", &Handle::LinkSet),
                         InstanceMethod("linkSizes", &Handle::LinkSizes),
                         InstanceMethod("linkDel", &Handle::LinkDel),
                         InstanceMethod("addrs", &Handle::Addrs),
                         InstanceMethod("addrAdd", &Handle::AddrAdd),
                         InstanceMethod("addrDel", &Handle::AddrDel),
                         InstanceMethod("routes", &Handle::Routes),
                         InstanceMethod("routeReplace", &Handle::RouteReplace),
                         InstanceMethod("routeDel", &Handle::RouteDel),
                         InstanceMethod("nexthops", &Handle::Nexthops),
                         InstanceMethod("nexthopReplace", &Handle::NexthopReplace),
                         InstanceMethod("nexthopDel", &Handle::NexthopDel),
                         InstanceMethod("neighs", &Handle::Neighs),
                         InstanceMethod("neighReplace", &Handle::NeighReplace),
                         InstanceMethod("neighDel", &Handle::NeighDel),
                         InstanceMethod("fdbs", &Handle::Fdbs),
                         InstanceMethod("fdbReplace", &Handle::FdbReplace),
                         InstanceMethod("fdbDel", &Handle::FdbDel),
                         InstanceMethod("batch", &Handle::Batch),
                         InstanceMethod("monitor", &Handle::Monitor),
                     });
}

Handle::Handle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Handle>(info) {
  Napi::Env env = info.Env();
  netns_fd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (netns_fd_ < 0) ThrowErrno(env, "open(/proc/thread-self/ns/net)", errno);
  try {
    OpenSock(env, &s_, "route");
  } catch (...) {
    close(netns_fd_);
    netns_fd_ = -1;
    throw;
  }
}

Handle::~Handle() {
  if (s_.sk) nl_socket_free(s_.sk);
  if (netns_fd_ >= 0) close(netns_fd_);
}

Sock& Handle::S(Napi::Env env) {
  if (!s_.sk) throw Napi::Error::New(env, "netlink handle is closed");
  s_.Reset();
  return s_;
}

Napi::Value Handle::Close(const Napi::CallbackInfo& info) {
  if (s_.sk) nl_socket_free(s_.sk);
  s_.sk = nullptr;
  if (netns_fd_ >= 0) close(netns_fd_);
  netns_fd_ = -1;
  return info.Env().Undefined();
}

Napi::Value Handle::Monitor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  S(env);
  if (info.Length() < 1 || !info[0].IsFunction()) throw Napi::TypeError::New(env, "monitor(cb: (event) => void)");
  return NewMonitor(env, netns_fd_, nl_socket_get_local_port(s_.sk), info[0].As<Napi::Function>());
}

}  // namespace weft::nl

namespace weft {
Napi::Object InitNetlink(Napi::Env env, Napi::Object exports) {
  exports.Set("Handle", nl::Handle::Define(env));
  return exports;
}
}  // namespace weft
