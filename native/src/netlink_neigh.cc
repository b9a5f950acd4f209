// ARP neighbours and bridge FDB entries: with the onlink route, what flannel's
// vxlan backend programs per peer (`ip neigh replace … nud permanent`,
// `bridge fdb replace … self permanent dst PublicIP`).
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>

#include <netlink/errno.h>
#include <netlink/msg.h>

#include "netlink.h"

namespace weft::nl {

static std::string NudText(int state) {
  static const std::pair<int, const char*> names[] = {
      {NUD_INCOMPLETE, "INCOMPLETE"}, {NUD_REACHABLE, "REACHABLE"}, {NUD_STALE, "STALE"},
      {NUD_DELAY, "DELAY"},           {NUD_PROBE, "PROBE"},         {NUD_FAILED, "FAILED"},
      {NUD_NOARP, "NOARP"},           {NUD_PERMANENT, "PERMANENT"},
  };
  std::string out;
  for (auto& [bit, name] : names)
    if (state & bit) out += std::string(out.empty() ? "" : ",") + name;
  return out.empty() ? "NONE" : out;
}

static NeighPtr BuildNeigh(Napi::Env env, Napi::Object o, bool forDelete) {
  uint32_t index = GetU32(o, "index");
  Addr ip = ParseV4(env, GetString(o, "ip"), false, "ip");
  NeighPtr n(rtnl_neigh_alloc());
  if (!n) ThrowErrnoMsg(env, "rtnl_neigh_alloc", ENOMEM);
  rtnl_neigh_set_ifindex(n.get(), static_cast<int>(index));
  rtnl_neigh_set_dst(n.get(), ip.get());
  if (!forDelete && OptBool(o, "managed").value_or(false)) {
    // `ip neigh replace IP dev X managed`: the kernel resolves the entry and
    // keeps it resolved (NTF_EXT_MANAGED, added in NeighMsg); no lladdr, and
    // a managed entry must not be PERMANENT or NOARP.
    rtnl_neigh_set_state(n.get(), NUD_NONE);
  } else if (!forDelete) {
    Addr mac = ParseMac(env, GetString(o, "mac"), "mac");
    rtnl_neigh_set_lladdr(n.get(), mac.get());
    auto permanent = OptBool(o, "permanent");
    if (!permanent) throw Napi::TypeError::New(env, "permanent: required");
    // A non-permanent entry starts REACHABLE and ages like a learned one.
    rtnl_neigh_set_state(n.get(), *permanent ? NUD_PERMANENT : NUD_REACHABLE);
  }
  return n;
}

std::string DescribeNeigh(Sock& s, Napi::Object o) {
  std::string d = o.Get("ip").ToString();
  Napi::Value mac = o.Get("mac"), index = o.Get("index");
  if (mac.IsString()) d += " lladdr " + mac.As<Napi::String>().Utf8Value();
  if (index.IsNumber()) d += " dev " + IfName(s, index.As<Napi::Number>().Int32Value());
  if (o.Get("permanent").ToBoolean()) d += " nud permanent";
  if (o.Get("managed").ToBoolean()) d += " managed";
  return d;
}

static NeighPtr BuildFdb(Napi::Env env, Napi::Object o, bool forDelete) {
  uint32_t index = GetU32(o, "index");
  Addr mac = ParseMac(env, GetString(o, "mac"), "mac");
  auto dst = forDelete ? OptString(o, "dst") : std::optional<std::string>(GetString(o, "dst"));
  NeighPtr n(rtnl_neigh_alloc());
  if (!n) ThrowErrnoMsg(env, "rtnl_neigh_alloc", ENOMEM);
  rtnl_neigh_set_ifindex(n.get(), static_cast<int>(index));
  rtnl_neigh_set_lladdr(n.get(), mac.get());
  if (dst) {
    // libnl takes the family from NDA_DST's address; AF_BRIDGE is set after
    // it so the request goes to the FDB with the IPv4 remote as NDA_DST.
    Addr a = ParseV4(env, *dst, false, "dst");
    rtnl_neigh_set_dst(n.get(), a.get());
  }
  rtnl_neigh_set_family(n.get(), AF_BRIDGE);
  rtnl_neigh_set_flags(n.get(), NTF_SELF);
  rtnl_neigh_set_state(n.get(), NUD_PERMANENT);
  return n;
}

static Msg NeighRequest(Napi::Env env, Sock& s, NeighPtr n, bool del, const std::string& what) {
  nl_msg* m = nullptr;
  int err = del ? rtnl_neigh_build_delete_request(n.get(), 0, &m)
                : rtnl_neigh_build_add_request(n.get(), NLM_F_CREATE | NLM_F_REPLACE, &m);
  if (err < 0) Throw(env, s, "rtnl_neigh_build_request(" + what + ")", err);
  return Msg(m);
}

Msg NeighMsg(Napi::Env env, Sock& s, Napi::Object o, bool del) {
  Msg m = NeighRequest(env, s, BuildNeigh(env, o, del), del, o.Get("ip").ToString());
  if (!del && o.Get("managed").ToBoolean() && nla_put_u32(m.get(), NDA_FLAGS_EXT, NTF_EXT_MANAGED) < 0)
    ThrowErrnoMsg(env, "nla_put(NDA_FLAGS_EXT)", ENOBUFS);
  return m;
}

Msg FdbMsg(Napi::Env env, Sock& s, Napi::Object o, bool del) {
  return NeighRequest(env, s, BuildFdb(env, o, del), del, "fdb " + o.Get("mac").ToString().Utf8Value());
}

std::string DescribeFdb(Sock& s, Napi::Object o) {
  std::string d = o.Get("mac").ToString();
  Napi::Value dst = o.Get("dst"), index = o.Get("index");
  if (index.IsNumber()) d += " dev " + IfName(s, index.As<Napi::Number>().Int32Value());
  if (dst.IsString()) d += " dst " + dst.As<Napi::String>().Utf8Value();
  return d + " self";
}

struct NeighDump {
  Napi::Env env;
  Napi::Array out;
  uint32_t n;
  int family;
  int index;
};

static int OnNeigh(nl_msg* msg, void* arg) {
  auto* d = static_cast<NeighDump*>(arg);
  rtnl_neigh* raw = nullptr;
  if (rtnl_neigh_parse(nlmsg_hdr(msg), &raw) < 0 || !raw) return NL_SKIP;
  NeighPtr n(raw);
  if (rtnl_neigh_get_family(raw) != d->family) return NL_OK;
  if (d->index && rtnl_neigh_get_ifindex(raw) != d->index) return NL_OK;
  Napi::Env env = d->env;
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", rtnl_neigh_get_ifindex(raw));
  nl_addr* mac = rtnl_neigh_get_lladdr(raw);
  nl_addr* dst = rtnl_neigh_get_dst(raw);
  int state = rtnl_neigh_get_state(raw);
  if (d->family == AF_INET) {
    o.Set("ip", dst ? FormatAddr(dst) : "");
    o.Set("mac", mac ? Napi::Value(Napi::String::New(env, FormatMac(mac))) : env.Null());
    Napi::Array states = Napi::Array::New(env);
    std::string text = NudText(state);
    uint32_t k = 0;
    for (size_t at = 0; at <= text.size();) {
      size_t comma = text.find(',', at);
      if (comma == std::string::npos) comma = text.size();
      states.Set(k++, text.substr(at, comma - at));
      at = comma + 1;
    }
    o.Set("state", states);
  } else {
    o.Set("mac", mac ? FormatMac(mac) : "");
    o.Set("dst", dst ? Napi::Value(Napi::String::New(env, FormatAddr(dst))) : env.Null());
    o.Set("self", (rtnl_neigh_get_flags(raw) & NTF_SELF) != 0);
    o.Set("permanent", (state & NUD_PERMANENT) != 0);
  }
  d->out.Set(d->n++, o);
  return NL_OK;
}

template <typename T>
static void RestartDump(void* arg) {
  auto* d = static_cast<T*>(arg);
  d->out = Napi::Array::New(d->env);
  d->n = 0;
}

static Napi::Value DumpNeighs(const Napi::CallbackInfo& info, Sock& s, int family) {
  Napi::Env env = info.Env();
  int index = info.Length() >= 1 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  NeighDump d{env, Napi::Array::New(env), 0, family, index};
  int err = Dump(s, RTM_GETNEIGH, family, OnNeigh, &d, RestartDump<NeighDump>);
  if (err < 0) Throw(env, s, family == AF_BRIDGE ? "rtnl_neigh_dump(fdb)" : "rtnl_neigh_dump(arp)", err);
  return d.out;
}

Napi::Value Handle::Neighs(const Napi::CallbackInfo& info) { return DumpNeighs(info, S(info.Env()), AF_INET); }
Napi::Value Handle::Fdbs(const Napi::CallbackInfo& info) { return DumpNeighs(info, S(info.Env()), AF_BRIDGE); }

Napi::Value Handle::NeighReplace(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  Napi::Object o = ArgObject(info, 0, "neighReplace({ index, ip, mac, permanent })");
  Msg m = NeighMsg(env, s, o, false);
  int err = Exec(s, m.get());
  if (err < 0) Throw(env, s, "rtnl_neigh_add(" + DescribeNeigh(s, o) + ")", err);
  return env.Undefined();
}

Napi::Value Handle::NeighDel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  Napi::Object o = ArgObject(info, 0, "neighDel({ index, ip })");
  Msg m = NeighMsg(env, s, o, true);
  int err = Exec(s, m.get());
  if (err < 0 && ErrnoOf(s, err) == ENOENT) return Napi::Boolean::New(env, false);
  if (err < 0) Throw(env, s, "rtnl_neigh_delete(" + DescribeNeigh(s, o) + ")", err);
  return Napi::Boolean::New(env, true);
}

Napi::Value Handle::FdbReplace(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  Napi::Object o = ArgObject(info, 0, "fdbReplace({ index, mac, dst })");
  Msg m = FdbMsg(env, s, o, false);
  int err = Exec(s, m.get());
  if (err < 0) Throw(env, s, "rtnl_neigh_add(fdb " + DescribeFdb(s, o) + ")", err);
  return env.Undefined();
}

Napi::Value Handle::FdbDel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  Napi::Object o = ArgObject(info, 0, "fdbDel({ index, mac, dst? })");
  Msg m = FdbMsg(env, s, o, true);
  int err = Exec(s, m.get());
  if (err < 0 && ErrnoOf(s, err) == ENOENT) return Napi::Boolean::New(env, false);
  if (err < 0) Throw(env, s, "rtnl_neigh_delete(fdb " + DescribeFdb(s, o) + ")", err);
  return Napi::Boolean::New(env, true);
}

}  // namespace weft::nl
