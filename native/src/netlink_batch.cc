// batch(): many route / neighbour / FDB requests sent back to back, their
// acks collected afterwards. One call per request costs a send and a receive
// each; a batch packs a window of requests into one send and then reads the
// acks, so programming thousands of peers is bounded by the kernel's work.
// Every request gets its own result: a failure does not stop the others.
#include <linux/netlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include <netlink/errno.h>
#include <netlink/msg.h>

#include "netlink.h"

namespace weft::nl {

// Requests in flight at once: their acks must fit the socket's receive
// buffer, at up to 2 KiB of kernel memory each (an ack's skb truesize is
// under 1 KiB on x86-64). 4 MiB (root) allows the maximum; the default
// 208 KiB about 200.
static constexpr size_t kMaxWindow = 1024;
static constexpr size_t kMinWindow = 32;

static size_t WindowFor(int fd) {
  int rcvbuf = 0;
  socklen_t len = sizeof(rcvbuf);
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len) < 0 || rcvbuf <= 0) return kMinWindow;
  return std::clamp(static_cast<size_t>(rcvbuf) / 2048, kMinWindow, kMaxWindow);
}

// After a failed window, acks still queued would confuse the next request.
static void Drain(int fd) {
  char buf[8192];
  while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0 || errno == EINTR || errno == ENOBUFS) {
  }
}
// Bytes per send: below the socket's default send buffer.
static constexpr size_t kSendChunk = 64 * 1024;

enum class Op { RouteReplace, RouteDel, NexthopReplace, NexthopDel, NeighReplace, NeighDel, FdbReplace, FdbDel };

struct Request {
  Op op;
  Napi::Object arg;
  std::vector<char> bytes;  // the complete netlink message
  int err = -1;             // -1 until its ack arrives
  std::string extack;
};

static Op ParseOp(Napi::Env env, const std::string& name) {
  if (name == "routeReplace") return Op::RouteReplace;
  if (name == "routeDel") return Op::RouteDel;
  if (name == "nexthopReplace") return Op::NexthopReplace;
  if (name == "nexthopDel") return Op::NexthopDel;
  if (name == "neighReplace") return Op::NeighReplace;
  if (name == "neighDel") return Op::NeighDel;
  if (name == "fdbReplace") return Op::FdbReplace;
  if (name == "fdbDel") return Op::FdbDel;
  throw Napi::TypeError::New(env, "batch: unknown op '" + name + "'");
}

static bool IsDelete(Op op) {
  return op == Op::RouteDel || op == Op::NexthopDel || op == Op::NeighDel || op == Op::FdbDel;
}

static Msg BuildMessage(Napi::Env env, Sock& s, const Request& r) {
  switch (r.op) {
    case Op::RouteReplace: return RouteMsg(env, s, r.arg, false);
    case Op::RouteDel: return RouteMsg(env, s, r.arg, true);
    case Op::NexthopReplace: return NexthopMsg(env, s, r.arg, false);
    case Op::NexthopDel: return NexthopMsg(env, s, r.arg, true);
    case Op::NeighReplace: return NeighMsg(env, s, r.arg, false);
    case Op::NeighDel: return NeighMsg(env, s, r.arg, true);
    case Op::FdbReplace: return FdbMsg(env, s, r.arg, false);
    case Op::FdbDel: return FdbMsg(env, s, r.arg, true);
  }
  throw Napi::TypeError::New(env, "batch: unknown op");
}

static std::string CallName(Sock& s, const Request& r) {
  switch (r.op) {
    case Op::RouteReplace: return "rtnl_route_add(" + DescribeRoute(s, r.arg) + ")";
    case Op::RouteDel: return "rtnl_route_delete(" + DescribeRoute(s, r.arg) + ")";
    case Op::NexthopReplace: return "RTM_NEWNEXTHOP(" + DescribeNexthop(s, r.arg) + ")";
    case Op::NexthopDel: return "RTM_DELNEXTHOP(" + DescribeNexthop(s, r.arg) + ")";
    case Op::NeighReplace: return "rtnl_neigh_add(" + DescribeNeigh(s, r.arg) + ")";
    case Op::NeighDel: return "rtnl_neigh_delete(" + DescribeNeigh(s, r.arg) + ")";
    case Op::FdbReplace: return "rtnl_neigh_add(fdb " + DescribeFdb(s, r.arg) + ")";
    case Op::FdbDel: return "rtnl_neigh_delete(fdb " + DescribeFdb(s, r.arg) + ")";
  }
  return "batch";
}

// Sends reqs[from, to) and reads their acks. Sequence numbers come from a
// range libnl never uses (high bit set), so libnl's own bookkeeping for the
// single calls on this socket stays in step.
static int RunWindow(Sock& s, std::vector<Request>& reqs, size_t from, size_t to, uint32_t seqBase) {
  int fd = nl_socket_get_fd(s.sk);
  std::vector<char> out;
  out.reserve(kSendChunk);
  auto flush = [&]() -> int {
    size_t off = 0;
    while (off < out.size()) {
      ssize_t n = send(fd, out.data() + off, out.size() - off, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno;
      off += static_cast<size_t>(n);
    }
    out.clear();
    return 0;
  };
  for (size_t i = from; i < to; i++) {
    auto* h = reinterpret_cast<nlmsghdr*>(reqs[i].bytes.data());
    h->nlmsg_seq = seqBase + static_cast<uint32_t>(i - from);
    if (out.size() + reqs[i].bytes.size() > kSendChunk) {
      if (int e = flush()) return e;
    }
    out.insert(out.end(), reqs[i].bytes.begin(), reqs[i].bytes.end());
  }
  if (int e = flush()) return e;

  size_t pending = to - from;
  std::vector<char> buf(64 * 1024);
  while (pending > 0) {
    ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    int len = static_cast<int>(n);
    for (auto* m = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(m, len); m = NLMSG_NEXT(m, len)) {
      if (m->nlmsg_type != NLMSG_ERROR) continue;
      uint32_t k = m->nlmsg_seq - seqBase;
      if (m->nlmsg_seq < seqBase || k >= to - from) continue;  // not ours: a stale reply
      Request& r = reqs[from + k];
      if (r.err != -1) continue;
      r.err = ReadAck(m, &r.extack);
      pending--;
    }
  }
  return 0;
}

Napi::Value Handle::Batch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "batch(ops: { op, arg }[])");
  Napi::Array ops = info[0].As<Napi::Array>();
  std::vector<Request> reqs(ops.Length());
  // Everything is built before anything is sent: a malformed request throws
  // a TypeError and leaves the kernel untouched.
  for (uint32_t i = 0; i < ops.Length(); i++) {
    Napi::Value v = ops.Get(i);
    if (!v.IsObject()) throw Napi::TypeError::New(env, "batch: op " + std::to_string(i) + " is not an object");
    Napi::Object o = v.As<Napi::Object>();
    reqs[i].op = ParseOp(env, GetString(o, "op"));
    Napi::Value arg = o.Get("arg");
    if (!arg.IsObject()) throw Napi::TypeError::New(env, "batch: op " + std::to_string(i) + ": arg is not an object");
    reqs[i].arg = arg.As<Napi::Object>();
    Msg msg = BuildMessage(env, s, reqs[i]);
    nlmsghdr* h = nlmsg_hdr(msg.get());
    h->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    h->nlmsg_pid = nl_socket_get_local_port(s.sk);
    const char* p = reinterpret_cast<const char*>(h);
    reqs[i].bytes.assign(p, p + NLMSG_ALIGN(h->nlmsg_len));
  }
  size_t window = WindowFor(nl_socket_get_fd(s.sk));
  for (size_t from = 0; from < reqs.size(); from += window) {
    size_t to = std::min(reqs.size(), from + window);
    uint32_t seqBase = 0x80000000u | static_cast<uint32_t>(from & 0x3fffffff);
    int e = RunWindow(s, reqs, from, to, seqBase);
    if (e) {
      Drain(nl_socket_get_fd(s.sk));
      s.Reset();
      s.kernel_errno = e;
      Throw(env, s, "batch(send/recv, requests " + std::to_string(from) + ".." + std::to_string(to - 1) + ")", -NLE_FAILURE);
    }
  }
  Napi::Array out = Napi::Array::New(env, reqs.size());
  for (uint32_t i = 0; i < reqs.size(); i++) {
    const Request& r = reqs[i];
    if (r.err == 0) {
      out.Set(i, true);
    } else if (IsDelete(r.op) && (r.err == ESRCH || r.err == ENOENT)) {
      out.Set(i, false);
    } else {
      std::string call = CallName(s, r);
      Sock e;
      e.kernel_errno = r.err;
      e.extack = r.extack;
      out.Set(i, Error(env, e, call, -NLE_FAILURE).Value());
    }
  }
  return out;
}

}  // namespace weft::nl
