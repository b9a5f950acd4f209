// The rtnetlink half of the addon, over libnl-route-3: one Handle per route
// socket (bound to the namespace it was opened in) and a Monitor for change
// notifications. Shared helpers for the netlink_*.cc files live here.
#pragma once
#include <napi.h>

#include <netlink/addr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>

#include <memory>
#include <optional>
#include <string>

namespace weft::nl {

// A route socket plus what the kernel said in its last error ack: libnl folds
// kernel errnos into its own NLE_* codes, losing ESRCH vs ENOENT and the
// extended ack text, so an error callback keeps them here.
struct Sock {
  nl_sock* sk = nullptr;
  int kernel_errno = 0;
  std::string extack;
  void Reset() {
    kernel_errno = 0;
    extack.clear();
  }
};

// The errno and extended-ack text of an NLMSG_ERROR message (0 for an ack).
int ReadAck(const nlmsghdr* h, std::string* extack);

// Opens a NETLINK_ROUTE socket in the calling thread's namespace with the
// error callback installed; throws on failure.
void OpenSock(Napi::Env env, Sock* s, const char* what);

// The errno behind a libnl return code: the kernel's when it sent one.
int ErrnoOf(const Sock& s, int nle);
Napi::Error Error(Napi::Env env, const Sock& s, const std::string& call, int nle);
[[noreturn]] void Throw(Napi::Env env, const Sock& s, const std::string& call, int nle);
// An error not from the kernel or libnl (bad argument, missing object).
[[noreturn]] void ThrowErrnoMsg(Napi::Env env, const std::string& call, int err);

struct AddrPut {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
using Addr = std::unique_ptr<nl_addr, AddrPut>;
struct LinkPut {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
using LinkPtr = std::unique_ptr<rtnl_link, LinkPut>;
struct RoutePut {
  void operator()(rtnl_route* r) const { rtnl_route_put(r); }
};
using RoutePtr = std::unique_ptr<rtnl_route, RoutePut>;
struct NeighPut {
  void operator()(rtnl_neigh* n) const { rtnl_neigh_put(n); }
};
using NeighPtr = std::unique_ptr<rtnl_neigh, NeighPut>;

// "10.1.2.3" or "10.1.2.0/24" (prefix required when cidr); TypeError otherwise.
Addr ParseV4(Napi::Env env, const std::string& s, bool cidr, const char* field);
Addr ParseMac(Napi::Env env, const std::string& s, const char* field);
// Address bytes as text (IPv4, IPv6 or MAC by length), without prefix.
std::string FormatAddr(nl_addr* a);
std::string FormatMac(nl_addr* a);

// Reading plain-object arguments.
Napi::Object ArgObject(const Napi::CallbackInfo& info, size_t i, const char* sig);
std::string GetString(Napi::Object o, const char* key);
std::optional<std::string> OptString(Napi::Object o, const char* key);
uint32_t GetU32(Napi::Object o, const char* key);
std::optional<uint32_t> OptU32(Napi::Object o, const char* key);
std::optional<bool> OptBool(Napi::Object o, const char* key);

// "flannel.1", or "#7" when the kernel cannot say; for error messages.
std::string IfName(Sock& s, int index);

// One rtnetlink dump (RTM_GET* with NLM_F_DUMP), each message handed to fn;
// restart(arg) discards what fn gathered before a retry.
// Retries when the kernel reports the dump was interrupted by a change.
using DumpFn = int (*)(nl_msg* msg, void* arg);
int Dump(Sock& s, int type, int family, DumpFn fn, void* arg, void (*restart)(void*));

class Handle : public Napi::ObjectWrap<Handle> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Handle(const Napi::CallbackInfo& info);
  ~Handle() override;

 private:
  Sock s_;
  int netns_fd_ = -1;  // the namespace this socket lives in, for monitor()
  Sock& S(Napi::Env env);

  Napi::Value Close(const Napi::CallbackInfo& info);
  // netlink_link.cc
  Napi::Value Links(const Napi::CallbackInfo& info);
  Napi::Value Link(const Napi::CallbackInfo& info);
  Napi::Value LinkAddVxlan(const Napi::CallbackInfo& info);
  Napi::Value LinkAddVeth(const Napi::CallbackInfo& info);
  Napi::Value LinkSet(const Napi::CallbackInfo& info);
  Napi::Value LinkSizes(const Napi::CallbackInfo& info);
  Napi::Value LinkDel(const Napi::CallbackInfo& info);
  Napi::Value Addrs(const Napi::CallbackInfo& info);
  Napi::Value AddrAdd(const Napi::CallbackInfo& info);
  Napi::Value AddrDel(const Napi::CallbackInfo& info);
  // netlink_route.cc
  Napi::Value Routes(const Napi::CallbackInfo& info);
  Napi::Value RouteReplace(const Napi::CallbackInfo& info);
  Napi::Value RouteDel(const Napi::CallbackInfo& info);
  Napi::Value Nexthops(const Napi::CallbackInfo& info);
  Napi::Value NexthopReplace(const Napi::CallbackInfo& info);
  Napi::Value NexthopDel(const Napi::CallbackInfo& info);
  // netlink_neigh.cc
  Napi::Value Neighs(const Napi::CallbackInfo& info);
  Napi::Value NeighReplace(const Napi::CallbackInfo& info);
  Napi::Value NeighDel(const Napi::CallbackInfo& info);
  Napi::Value Fdbs(const Napi::CallbackInfo& info);
  Napi::Value FdbReplace(const Napi::CallbackInfo& info);
  Napi::Value FdbDel(const Napi::CallbackInfo& info);
  // netlink_batch.cc
  Napi::Value Batch(const Napi::CallbackInfo& info);
  // netlink_monitor.cc
  Napi::Value Monitor(const Napi::CallbackInfo& info);
};

// Request builders shared by the single calls and batch(): each returns a
// complete request (TypeError for a bad argument), and Describe* the text
// that names its object in an error, looked up only when one is thrown.
struct MsgFree {
  void operator()(nl_msg* m) const { nlmsg_free(m); }
};
using Msg = std::unique_ptr<nl_msg, MsgFree>;
Msg RouteMsg(Napi::Env env, Sock& s, Napi::Object r, bool del);
Msg NexthopMsg(Napi::Env env, Sock& s, Napi::Object n, bool del);
Msg NeighMsg(Napi::Env env, Sock& s, Napi::Object n, bool del);
Msg FdbMsg(Napi::Env env, Sock& s, Napi::Object f, bool del);
std::string DescribeRoute(Sock& s, Napi::Object r);
std::string DescribeNexthop(Sock& s, Napi::Object n);
std::string DescribeNeigh(Sock& s, Napi::Object n);
std::string DescribeFdb(Sock& s, Napi::Object f);

// Sends one request and waits for its ack: 0 or a negative libnl code, with
// the kernel's errno in s.kernel_errno.
int Exec(Sock& s, nl_msg* msg);

// ownPort: the Handle socket's port id, so events it caused are marked own.
Napi::Value NewMonitor(Napi::Env env, int netns_fd, uint32_t ownPort, Napi::Function cb);

}  // namespace weft::nl
