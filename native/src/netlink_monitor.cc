// monitor(): rtnetlink change notifications (links, IPv4 addresses, IPv4
// routes, nexthop objects, ARP neighbours and FDB entries) read on Node's event loop, so a
// reconcile loop hears when someone deletes a route or device by hand.
// The socket lives in the namespace of the Handle that made it, whatever
// namespace the caller is in; after close() it keeps nothing alive.
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/nexthop.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <memory>
#include <vector>

#include "errors.h"
#include "netlink.h"

namespace weft::nl {

struct Event {
  const char* kind;   // link | addr | route | nexthop | neigh | overflow
  bool isNew;
  int index;          // 0 when the message names none
  bool fdb;           // neigh: an AF_BRIDGE (FDB) entry rather than ARP
  bool own;           // caused by a request on the monitor's Handle
  uint32_t table;     // route only
};

struct MonitorState {
  explicit MonitorState(Napi::Env e) : env(e) {}
  Napi::Env env;
  nl_sock* sk = nullptr;
  uv_poll_t* poll = nullptr;
  Napi::FunctionReference cb;
  std::unique_ptr<Napi::AsyncContext> ctx;
  uint32_t ownPort = 0;
  bool closed = false;
  std::vector<char> buf = std::vector<char>(256 * 1024);
};
using StatePtr = std::shared_ptr<MonitorState>;

static bool Classify(const nlmsghdr* h, uint32_t ownPort, Event* ev) {
  *ev = Event{nullptr, false, 0, false, h->nlmsg_pid != 0 && h->nlmsg_pid == ownPort, 0};
  switch (h->nlmsg_type) {
    case RTM_NEWLINK: case RTM_DELLINK: {
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return false;
      auto* m = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
      *ev = Event{"link", h->nlmsg_type == RTM_NEWLINK, m->ifi_index, false, ev->own, 0};
      return true;
    }
    case RTM_NEWADDR: case RTM_DELADDR: {
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ifaddrmsg))) return false;
      auto* m = static_cast<const ifaddrmsg*>(NLMSG_DATA(h));
      if (m->ifa_family != AF_INET) return false;
      *ev = Event{"addr", h->nlmsg_type == RTM_NEWADDR, static_cast<int>(m->ifa_index), false, ev->own, 0};
      return true;
    }
    case RTM_NEWROUTE: case RTM_DELROUTE: {
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(rtmsg))) return false;
      auto* m = static_cast<const rtmsg*>(NLMSG_DATA(h));
      if (m->rtm_family != AF_INET) return false;
      *ev = Event{"route", h->nlmsg_type == RTM_NEWROUTE, 0, false, ev->own, m->rtm_table};
      int len = static_cast<int>(RTM_PAYLOAD(h));
      for (auto* a = RTM_RTA(m); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) >= 4) ev->index = *static_cast<int*>(RTA_DATA(a));
        if (a->rta_type == RTA_TABLE && RTA_PAYLOAD(a) >= 4) ev->table = *static_cast<uint32_t*>(RTA_DATA(a));
      }
      return true;
    }
    case RTM_NEWNEIGH: case RTM_DELNEIGH: {
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(ndmsg))) return false;
      auto* m = static_cast<const ndmsg*>(NLMSG_DATA(h));
      if (m->ndm_family != AF_INET && m->ndm_family != AF_BRIDGE) return false;
      *ev = Event{"neigh", h->nlmsg_type == RTM_NEWNEIGH, m->ndm_ifindex, m->ndm_family == AF_BRIDGE, ev->own, 0};
      return true;
    }
    case RTM_NEWNEXTHOP: case RTM_DELNEXTHOP:
      // Deleting a nexthop removes the routes using it without a route
      // notification for each, so a reconcile loop must hear of it.
      *ev = Event{"nexthop", h->nlmsg_type == RTM_NEWNEXTHOP, 0, false, ev->own, 0};
      return true;
    default:
      return false;
  }
}

static Napi::Object EventToJs(Napi::Env env, const Event& e) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("kind", e.kind);
  if (std::string(e.kind) == "overflow") return o;
  o.Set("action", e.isNew ? "new" : "del");
  o.Set("index", e.index ? Napi::Value(Napi::Number::New(env, e.index)) : env.Null());
  o.Set("own", e.own);
  if (std::string(e.kind) == "neigh") o.Set("fdb", e.fdb);
  if (std::string(e.kind) == "route") o.Set("table", e.table);
  return o;
}

static void OnClosed(uv_handle_t* h) {
  auto* holder = static_cast<StatePtr*>(h->data);
  if ((*holder)->sk) nl_socket_free((*holder)->sk);
  (*holder)->sk = nullptr;
  delete reinterpret_cast<uv_poll_t*>(h);
  delete holder;
}

static void CloseState(const StatePtr& st) {
  if (st->closed) return;
  st->closed = true;
  uv_poll_stop(st->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(st->poll), OnClosed);
  st->poll = nullptr;
  st->cb.Reset();
  st->ctx.reset();
}

static void OnReadable(uv_poll_t* h, int status, int events) {
  StatePtr st = *static_cast<StatePtr*>(h->data);
  if (st->closed) return;
  std::vector<Event> batch;
  int fd = nl_socket_get_fd(st->sk);
  for (;;) {
    ssize_t n = recv(fd, st->buf.data(), st->buf.size(), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ENOBUFS) {
      // The kernel dropped notifications: only a full resync is safe now.
      batch.push_back(Event{"overflow", false, 0, false, false, 0});
      continue;
    }
    if (n <= 0) break;
    int len = static_cast<int>(n);
    for (auto* m = reinterpret_cast<nlmsghdr*>(st->buf.data()); NLMSG_OK(m, len); m = NLMSG_NEXT(m, len)) {
      Event ev;
      if (Classify(m, st->ownPort, &ev)) batch.push_back(ev);
    }
  }
  if (batch.empty()) return;
  Napi::Env env = st->env;
  Napi::HandleScope scope(env);
  for (const Event& ev : batch) {
    if (st->closed) break;  // the callback may close the monitor
    try {
      st->cb.MakeCallback(env.Global(), {EventToJs(env, ev)}, *st->ctx);
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
      break;
    }
  }
}

// Creates the socket in the namespace netns_fd names; the calling thread is
// returned to its own namespace before anything can throw past us.
static nl_sock* OpenInNetns(Napi::Env env, int netns_fd) {
  struct stat want {}, have {};
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) ThrowErrno(env, "open(/proc/thread-self/ns/net)", errno);
  bool move = fstat(netns_fd, &want) == 0 && fstat(self, &have) == 0 &&
              (want.st_ino != have.st_ino || want.st_dev != have.st_dev);
  if (move && setns(netns_fd, CLONE_NEWNET) < 0) {
    int e = errno;
    close(self);
    ThrowErrno(env, "setns(monitor's namespace)", e);
  }
  nl_sock* sk = nl_socket_alloc();
  int err = sk ? nl_connect(sk, NETLINK_ROUTE) : -NLE_NOMEM;
  if (err == 0)
    err = nl_socket_add_memberships(sk, RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE, RTNLGRP_NEIGH,
                                    RTNLGRP_NEXTHOP, 0);
  if (move) setns(self, CLONE_NEWNET);
  close(self);
  if (err < 0) {
    if (sk) nl_socket_free(sk);
    ThrowErrno(env, "nl_connect(NETLINK_ROUTE, monitor)", ErrnoOf(Sock{}, err));
  }
  return sk;
}

Napi::Value NewMonitor(Napi::Env env, int netns_fd, uint32_t ownPort, Napi::Function cb) {
  auto st = std::make_shared<MonitorState>(env);
  st->sk = OpenInNetns(env, netns_fd);
  st->ownPort = ownPort;
  int fd = nl_socket_get_fd(st->sk);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  nl_socket_set_nonblocking(st->sk);
  // Programming thousands of peers makes thousands of notifications; a big
  // buffer (root may exceed rmem_max) makes an overflow rare.
  int size = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
  st->cb = Napi::Persistent(cb);
  st->ctx = std::make_unique<Napi::AsyncContext>(env, "weft.netlink.monitor");
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
    nl_socket_free(st->sk);
    throw Napi::Error::New(env, "monitor: no libuv loop");
  }
  st->poll = new uv_poll_t;
  int rc = uv_poll_init(loop, st->poll, fd);
  if (rc == 0) {
    st->poll->data = new StatePtr(st);
    rc = uv_poll_start(st->poll, UV_READABLE, OnReadable);
    if (rc < 0) {
      CloseState(st);
      ThrowErrno(env, "uv_poll_start(monitor)", -rc);
    }
  } else {
    delete st->poll;
    nl_socket_free(st->sk);
    ThrowErrno(env, "uv_poll_init(monitor)", -rc);
  }
  Napi::Object m = Napi::Object::New(env);
  m.Set("close", Napi::Function::New(env, [st](const Napi::CallbackInfo& info) {
          CloseState(st);
          return info.Env().Undefined();
        }, "close"));
  return m;
}

}  // namespace weft::nl
