// TC attachment through clsact with libbpf's classic bpf_tc_* API, plus a raw
// RTM_GETTFILTER dump, because libbpf can query one (handle, priority) slot
// but cannot list what else sits on a hook. All of it acts in the calling
// thread's network namespace (see withNetns).
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>

#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "bpf_util.h"

namespace weft {
using namespace bpfutil;

static enum bpf_tc_attach_point ArgHook(const Napi::CallbackInfo& info, size_t i) {
  std::string h = ArgString(info, i, "hook");
  if (h == "ingress") return BPF_TC_INGRESS;
  if (h == "egress") return BPF_TC_EGRESS;
  throw Napi::TypeError::New(info.Env(), "hook must be 'ingress' or 'egress', got '" + h + "'");
}

static std::string Where(int ifindex, enum bpf_tc_attach_point hook) {
  std::string s = "ifindex " + std::to_string(ifindex);
  if (hook == BPF_TC_INGRESS) s += ", ingress";
  if (hook == BPF_TC_EGRESS) s += ", egress";
  return s;
}

// tcHookCreate(ifindex) -> true if created, false if clsact was already there
static Napi::Value TcHookCreate(const Napi::CallbackInfo& info) {
  int ifindex = ArgInt(info, 0, "ifindex");
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  LogCapture log;
  int ret = bpf_tc_hook_create(&hook);
  if (ret == -EEXIST) return Napi::Boolean::New(info.Env(), false);
  if (ret) ThrowErrnoWithLog(info.Env(), "bpf_tc_hook_create(ifindex " + std::to_string(ifindex) + ")", -ret, log, 5);
  return Napi::Boolean::New(info.Env(), true);
}

// tcHookDestroy(ifindex): deletes the clsact qdisc and with it every filter on both hooks.
static Napi::Value TcHookDestroy(const Napi::CallbackInfo& info) {
  int ifindex = ArgInt(info, 0, "ifindex");
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
              .attach_point = static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  LogCapture log;
  int ret = bpf_tc_hook_destroy(&hook);
  if (ret) ThrowErrnoWithLog(info.Env(), "bpf_tc_hook_destroy(ifindex " + std::to_string(ifindex) + ")", -ret, log, 5);
  return info.Env().Undefined();
}

// tcAttach(ifindex, hook, progFd, handle, priority, replace) -> prog id
static Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  int ifindex = ArgInt(info, 0, "ifindex");
  enum bpf_tc_attach_point point = ArgHook(info, 1);
  int progFd = ArgInt(info, 2, "progFd");
  uint32_t handle = ArgU32(info, 3, "handle");
  uint32_t priority = ArgU32(info, 4, "priority");
  bool replace = info.Length() > 5 && info[5].ToBoolean();
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
  LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = progFd, .flags = replace ? static_cast<__u32>(BPF_TC_F_REPLACE) : 0u,
              .handle = handle, .priority = priority);
  LogCapture log;
  int ret = bpf_tc_attach(&hook, &opts);
  if (ret) ThrowErrnoWithLog(info.Env(), "bpf_tc_attach(" + Where(ifindex, point) + ")", -ret, log, 5);
  return Napi::Number::New(info.Env(), opts.prog_id);
}

// tcDetach(ifindex, hook, handle, priority)
static Napi::Value TcDetach(const Napi::CallbackInfo& info) {
  int ifindex = ArgInt(info, 0, "ifindex");
  enum bpf_tc_attach_point point = ArgHook(info, 1);
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = ArgU32(info, 2, "handle"), .priority = ArgU32(info, 3, "priority"));
  LogCapture log;
  int ret = bpf_tc_detach(&hook, &opts);
  if (ret) ThrowErrnoWithLog(info.Env(), "bpf_tc_detach(" + Where(ifindex, point) + ")", -ret, log, 5);
  return info.Env().Undefined();
}

// Local to this file: netlink*.cc share namespace weft and may have their own.
namespace {
struct Filter {
  uint32_t handle = 0, priority = 0, protocol = 0, progId = 0;
  bool hasProgId = false, directAction = false;
  std::string kind, name, tag;
};

class NetlinkSocket {
 public:
  NetlinkSocket() { fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE); }
  ~NetlinkSocket() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};
}  // namespace

static std::string AttrString(const struct rtattr* a) {
  const char* d = static_cast<const char*>(RTA_DATA(a));
  return std::string(d, strnlen(d, RTA_PAYLOAD(a)));
}

static uint32_t AttrU32(const struct rtattr* a) {
  uint32_t v = 0;
  if (RTA_PAYLOAD(a) >= sizeof(v)) memcpy(&v, RTA_DATA(a), sizeof(v));
  return v;
}

static void ParseFilter(const struct nlmsghdr* nh, std::vector<Filter>& out) {
  const struct tcmsg* t = static_cast<const struct tcmsg*>(NLMSG_DATA(nh));
  // The dump also lists each (priority, protocol) filter chain head with
  // handle 0 and no options; it is not a filter of its own.
  if (t->tcm_handle == 0) return;
  Filter f;
  f.handle = t->tcm_handle;
  f.priority = TC_H_MAJ(t->tcm_info) >> 16;
  f.protocol = ntohs(static_cast<uint16_t>(TC_H_MIN(t->tcm_info)));
  int len = static_cast<int>(nh->nlmsg_len) - NLMSG_LENGTH(sizeof(*t));
  for (const struct rtattr* a = TCA_RTA(t); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    int type = a->rta_type & NLA_TYPE_MASK;
    if (type == TCA_KIND) f.kind = AttrString(a);
    if (type != TCA_OPTIONS) continue;
    int olen = static_cast<int>(RTA_PAYLOAD(a));
    for (const struct rtattr* o = static_cast<const struct rtattr*>(RTA_DATA(a)); RTA_OK(o, olen); o = RTA_NEXT(o, olen)) {
      switch (o->rta_type & NLA_TYPE_MASK) {
        case TCA_BPF_ID:
          f.progId = AttrU32(o);
          f.hasProgId = true;
          break;
        case TCA_BPF_NAME:
          f.name = AttrString(o);
          break;
        case TCA_BPF_TAG:
          f.tag = Hex(static_cast<const uint8_t*>(RTA_DATA(o)), RTA_PAYLOAD(o));
          break;
        case TCA_BPF_FLAGS:
          f.directAction = (AttrU32(o) & TCA_BPF_FLAG_ACT_DIRECT) != 0;
          break;
      }
    }
  }
  out.push_back(f);
}

// Every filter on one clsact hook, from an RTM_GETTFILTER dump (all chains).
static std::vector<Filter> DumpFilters(Napi::Env env, int ifindex, enum bpf_tc_attach_point point) {
  std::string call = "RTM_GETTFILTER(" + Where(ifindex, point) + ")";
  // The kernel answers a dump for a missing device with an empty list; say so instead.
  char ifname[IF_NAMESIZE];
  if (!if_indextoname(static_cast<unsigned>(ifindex), ifname)) ThrowErrno(env, call, ENODEV);

  NetlinkSocket sock;
  if (sock.fd() < 0) ThrowErrno(env, "socket(NETLINK_ROUTE)", errno);
  struct {
    struct nlmsghdr nh;
    struct tcmsg t;
  } req;
  memset(&req, 0, sizeof(req));
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.t));
  req.nh.nlmsg_type = RTM_GETTFILTER;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nh.nlmsg_seq = 1;
  req.t.tcm_family = AF_UNSPEC;
  req.t.tcm_ifindex = ifindex;
  req.t.tcm_parent = TC_H_MAKE(TC_H_CLSACT, point == BPF_TC_INGRESS ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof(kernel));
  kernel.nl_family = AF_NETLINK;
  if (sendto(sock.fd(), &req, req.nh.nlmsg_len, 0, reinterpret_cast<struct sockaddr*>(&kernel), sizeof(kernel)) < 0)
    ThrowErrno(env, call, errno);

  std::vector<Filter> out;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    ssize_t got = recv(sock.fd(), buf.data(), buf.size(), 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      ThrowErrno(env, call, errno);
    }
    int len = static_cast<int>(got);
    for (struct nlmsghdr* nh = reinterpret_cast<struct nlmsghdr*>(buf.data()); NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
      if (nh->nlmsg_seq != req.nh.nlmsg_seq) continue;
      if (nh->nlmsg_type == NLMSG_DONE) {
        int err = 0;
        if (nh->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) memcpy(&err, NLMSG_DATA(nh), sizeof(err));
        if (err < 0) ThrowErrno(env, call, -err);
        return out;
      }
      if (nh->nlmsg_type == NLMSG_ERROR) {
        const struct nlmsgerr* e = static_cast<const struct nlmsgerr*>(NLMSG_DATA(nh));
        if (e->error) ThrowErrno(env, call, -e->error);
        continue;
      }
      if (nh->nlmsg_type == RTM_NEWTFILTER) ParseFilter(nh, out);
    }
  }
}

// tcQuery(ifindex, hook, handle, priority) -> prog id, or null if the slot is empty
static Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  int ifindex = ArgInt(info, 0, "ifindex");
  enum bpf_tc_attach_point point = ArgHook(info, 1);
  uint32_t handle = ArgU32(info, 2, "handle"), priority = ArgU32(info, 3, "priority");
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = point);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);
  LogCapture log;
  int ret = bpf_tc_query(&hook, &opts);
  if (ret == -ENOENT) return info.Env().Null();
  if (ret == -EINVAL) {
    // The kernel says EINVAL, not ENOENT, when no filter of that priority
    // exists yet ("Cannot find specified filter chain") or there is no clsact
    // qdisc; the dump tells those apart from a real error.
    std::vector<Filter> all = DumpFilters(info.Env(), ifindex, point);
    bool occupied = false;
    for (const Filter& f : all) occupied |= f.handle == handle && f.priority == priority;
    if (!occupied) return info.Env().Null();
  }
  if (ret) ThrowErrnoWithLog(info.Env(), "bpf_tc_query(" + Where(ifindex, point) + ")", -ret, log, 5);
  return Napi::Number::New(info.Env(), opts.prog_id);
}

// tcFilters(ifindex, hook) -> [{ handle, priority, protocol, kind, progId?, name?, tag?, directAction }]
static Napi::Value TcFilters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<Filter> all = DumpFilters(env, ArgInt(info, 0, "ifindex"), ArgHook(info, 1));
  Napi::Array out = Napi::Array::New(env, all.size());
  for (size_t i = 0; i < all.size(); i++) {
    const Filter& f = all[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("handle", f.handle);
    o.Set("priority", f.priority);
    o.Set("protocol", f.protocol);
    o.Set("kind", f.kind);
    if (f.hasProgId) o.Set("progId", f.progId);
    if (!f.name.empty()) o.Set("name", f.name);
    if (!f.tag.empty()) o.Set("tag", f.tag);
    o.Set("directAction", f.directAction);
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

Napi::Object InitBpfTc(Napi::Env env, Napi::Object exports) {
  exports.Set("tcHookCreate", Napi::Function::New(env, TcHookCreate, "tcHookCreate"));
  exports.Set("tcHookDestroy", Napi::Function::New(env, TcHookDestroy, "tcHookDestroy"));
  exports.Set("tcAttach", Napi::Function::New(env, TcAttach, "tcAttach"));
  exports.Set("tcDetach", Napi::Function::New(env, TcDetach, "tcDetach"));
  exports.Set("tcQuery", Napi::Function::New(env, TcQuery, "tcQuery"));
  exports.Set("tcFilters", Napi::Function::New(env, TcFilters, "tcFilters"));
  return exports;
}

}  // namespace weft
