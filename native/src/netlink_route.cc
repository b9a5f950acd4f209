// IPv4 routes and nexthop objects. Writes are "replace" (create or
// overwrite) so a reconcile loop can apply the desired state without reading
// it first; deletes report whether there was something to delete.
//
// Nexthop objects exist for scale: the kernel hashes a classic route's
// fib_info by device, not by gateway, so N peer routes via N gateways on one
// vxlan device cost O(N^2) to insert (10,000 take ~2 s on this kernel); a
// route pointing at a nexthop id (RTA_NH_ID) hashes by that id. libnl 3.7
// has no nexthop API, so those requests are built here from nlmsg/nla calls.
#include <arpa/inet.h>
#include <linux/nexthop.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/route/nexthop.h>

#include "netlink.h"

namespace weft::nl {

// Routes ------------------------------------------------------------------

Msg RouteMsg(Napi::Env env, Sock& s, Napi::Object o, bool del) {
  Addr dst = ParseV4(env, GetString(o, "dst"), true, "dst");
  auto gateway = OptString(o, "gateway");
  auto index = OptU32(o, "index");
  auto table = OptU32(o, "table");
  auto nhid = OptU32(o, "nhid");
  if (nhid && (gateway || index))
    throw Napi::TypeError::New(env, "nhid: a route names either a nexthop id or a gateway and device, not both");
  RoutePtr r(rtnl_route_alloc());
  if (!r) ThrowErrnoMsg(env, "rtnl_route_alloc", ENOMEM);
  rtnl_route_set_family(r.get(), AF_INET);
  rtnl_route_set_dst(r.get(), dst.get());
  rtnl_route_set_table(r.get(), table.value_or(RT_TABLE_MAIN));
  bool onlink = false;
  if (del) {
    // Zero protocol and type, scope NOWHERE: the kernel's wildcards, so a
    // route is found whoever installed it.
    rtnl_route_set_protocol(r.get(), RTPROT_UNSPEC);
    rtnl_route_set_type(r.get(), RTN_UNSPEC);
    rtnl_route_set_scope(r.get(), RT_SCOPE_NOWHERE);
  } else {
    if (!index && !nhid) throw Napi::TypeError::New(env, "index: required (or nhid)");
    rtnl_route_set_protocol(r.get(), OptU32(o, "protocol").value_or(RTPROT_BOOT));
    rtnl_route_set_type(r.get(), RTN_UNICAST);
    // libnl would guess "link" for a route without a gateway of its own.
    if (nhid) rtnl_route_set_scope(r.get(), RT_SCOPE_UNIVERSE);
    onlink = OptBool(o, "onlink").value_or(false);
    if (auto src = OptString(o, "src")) {
      Addr a = ParseV4(env, *src, false, "src");
      rtnl_route_set_pref_src(r.get(), a.get());
    }
    if (auto mtu = OptU32(o, "mtu")) rtnl_route_set_metric(r.get(), RTAX_MTU, *mtu);
  }
  if (gateway || index) {
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    if (!nh) ThrowErrnoMsg(env, "rtnl_route_nh_alloc", ENOMEM);
    if (index) rtnl_route_nh_set_ifindex(nh, static_cast<int>(*index));
    if (gateway) {
      Addr gw = ParseV4(env, *gateway, false, "gateway");
      rtnl_route_nh_set_gateway(nh, gw.get());
    }
    if (onlink) rtnl_route_nh_set_flags(nh, RTNH_F_ONLINK);
    rtnl_route_add_nexthop(r.get(), nh);
  }
  // libnl copies a lone nexthop's flags into rtm_flags only in some
  // versions; setting both is what the kernel reads either way.
  if (onlink) rtnl_route_set_flags(r.get(), RTNH_F_ONLINK);
  nl_msg* m = nullptr;
  int err = del ? rtnl_route_build_del_request(r.get(), 0, &m) : rtnl_route_build_add_request(r.get(), NLM_F_REPLACE, &m);
  if (err < 0) Throw(env, s, "rtnl_route_build_request(" + DescribeRoute(s, o) + ")", err);
  Msg msg(m);
  if (nhid && nla_put_u32(m, RTA_NH_ID, *nhid) < 0) ThrowErrnoMsg(env, "nla_put_u32(RTA_NH_ID)", EMSGSIZE);
  return msg;
}

std::string DescribeRoute(Sock& s, Napi::Object o) {
  std::string d = o.Get("dst").ToString();
  Napi::Value gw = o.Get("gateway"), index = o.Get("index"), table = o.Get("table"), nhid = o.Get("nhid");
  if (nhid.IsNumber()) d += " nhid " + std::to_string(nhid.As<Napi::Number>().Uint32Value());
  if (gw.IsString()) d += " via " + gw.As<Napi::String>().Utf8Value();
  if (index.IsNumber()) d += " dev " + IfName(s, index.As<Napi::Number>().Int32Value());
  if (o.Get("onlink").ToBoolean()) d += " onlink";
  if (table.IsNumber() && table.As<Napi::Number>().Uint32Value() != RT_TABLE_MAIN)
    d += " table " + std::to_string(table.As<Napi::Number>().Uint32Value());
  return d;
}

struct RouteDump {
  Napi::Env env;
  Napi::Array out;
  uint32_t n;
  uint32_t table;
};

static Napi::Value U32OrNull(Napi::Env env, bool present, uint32_t v) {
  return present ? Napi::Value(Napi::Number::New(env, v)) : env.Null();
}

static int OnRoute(nl_msg* msg, void* arg) {
  auto* d = static_cast<RouteDump*>(arg);
  rtnl_route* raw = nullptr;
  if (rtnl_route_parse(nlmsg_hdr(msg), &raw) < 0 || !raw) return NL_SKIP;
  RoutePtr r(raw);
  if (rtnl_route_get_family(raw) != AF_INET || rtnl_route_get_table(raw) != d->table) return NL_OK;
  Napi::Env env = d->env;
  Napi::Object o = Napi::Object::New(env);
  nl_addr* dst = rtnl_route_get_dst(raw);
  o.Set("dst", (dst ? FormatAddr(dst) : "0.0.0.0") + "/" + std::to_string(dst ? nl_addr_get_prefixlen(dst) : 0));
  Napi::Value gateway = env.Null(), index = env.Null();
  unsigned flags = rtnl_route_get_flags(raw);
  if (rtnl_route_get_nnexthops(raw) >= 1) {
    // Multipath routes report their first nexthop; flannel installs none.
    rtnl_nexthop* nh = rtnl_route_nexthop_n(raw, 0);
    if (nl_addr* gw = rtnl_route_nh_get_gateway(nh)) gateway = Napi::String::New(env, FormatAddr(gw));
    if (int ifi = rtnl_route_nh_get_ifindex(nh)) index = Napi::Number::New(env, ifi);
    flags |= rtnl_route_nh_get_flags(nh);
  }
  o.Set("gateway", gateway);
  o.Set("index", index);
  nl_addr* src = rtnl_route_get_pref_src(raw);
  o.Set("src", src ? Napi::Value(Napi::String::New(env, FormatAddr(src))) : env.Null());
  o.Set("onlink", (flags & RTNH_F_ONLINK) != 0);
  o.Set("table", rtnl_route_get_table(raw));
  o.Set("protocol", rtnl_route_get_protocol(raw));
  o.Set("scope", rtnl_route_get_scope(raw));
  o.Set("type", rtnl_route_get_type(raw));
  uint32_t mtu = 0;
  bool hasMtu = rtnl_route_get_metric(raw, RTAX_MTU, &mtu) == 0 && mtu != 0;
  o.Set("mtu", U32OrNull(env, hasMtu, mtu));
  // libnl 3.7 does not parse RTA_NH_ID.
  nlattr* nh = nlmsg_find_attr(nlmsg_hdr(msg), sizeof(rtmsg), RTA_NH_ID);
  o.Set("nhid", U32OrNull(env, nh && nla_len(nh) >= 4, nh ? nla_get_u32(nh) : 0));
  d->out.Set(d->n++, o);
  return NL_OK;
}

template <typename T>
static void RestartDump(void* arg) {
  auto* d = static_cast<T*>(arg);
  d->out = Napi::Array::New(d->env);
  d->n = 0;
}

Napi::Value Handle::Routes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  uint32_t table = RT_TABLE_MAIN;
  if (info.Length() >= 1 && info[0].IsObject()) table = OptU32(info[0].As<Napi::Object>(), "table").value_or(RT_TABLE_MAIN);
  RouteDump d{env, Napi::Array::New(env), 0, table};
  int err = Dump(s, RTM_GETROUTE, AF_INET, OnRoute, &d, RestartDump<RouteDump>);
  if (err < 0) Throw(env, s, "rtnl_route_dump(table " + std::to_string(table) + ")", err);
  return d.out;
}

Napi::Value Handle::RouteReplace(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  Napi::Object o = ArgObject(info, 0, "routeReplace({ dst, gateway?, index, onlink?, src?, mtu?, protocol?, table?, nhid? })");
  Msg m = RouteMsg(env, s, o, false);
  int err = Exec(s, m.get());
  if (err < 0) Throw(env, s, "rtnl_route_add(" + DescribeRoute(s, o) + ")", err);
  return env.Undefined();
}

Napi::Value Handle::RouteDel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  Napi::Object o = ArgObject(info, 0, "routeDel({ dst, index?, gateway?, table?, nhid? })");
  Msg m = RouteMsg(env, s, o, true);
  int err = Exec(s, m.get());
  if (err < 0 && ErrnoOf(s, err) == ESRCH) return Napi::Boolean::New(env, false);
  if (err < 0) Throw(env, s, "rtnl_route_delete(" + DescribeRoute(s, o) + ")", err);
  return Napi::Boolean::New(env, true);
}

// Nexthop objects ---------------------------------------------------------

Msg NexthopMsg(Napi::Env env, Sock& s, Napi::Object o, bool del) {
  uint32_t id = GetU32(o, "id");
  if (id == 0) throw Napi::TypeError::New(env, "id: expected a nexthop id >= 1");
  nl_msg* m = nlmsg_alloc_simple(del ? RTM_DELNEXTHOP : RTM_NEWNEXTHOP, del ? 0 : NLM_F_CREATE | NLM_F_REPLACE);
  if (!m) ThrowErrnoMsg(env, "nlmsg_alloc_simple", ENOMEM);
  Msg msg(m);
  nhmsg h{};
  h.nh_family = AF_INET;
  std::optional<uint32_t> index;
  std::optional<std::string> gateway;
  if (!del) {
    index = GetU32(o, "index");
    gateway = OptString(o, "gateway");
    h.nh_protocol = static_cast<unsigned char>(OptU32(o, "protocol").value_or(RTPROT_BOOT));
    if (OptBool(o, "onlink").value_or(false)) h.nh_flags = RTNH_F_ONLINK;
  }
  bool ok = nlmsg_append(m, &h, sizeof(h), NLMSG_ALIGNTO) == 0 && nla_put_u32(m, NHA_ID, id) == 0;
  if (ok && index) ok = nla_put_u32(m, NHA_OIF, *index) == 0;
  if (ok && gateway) {
    Addr gw = ParseV4(env, *gateway, false, "gateway");
    ok = nla_put(m, NHA_GATEWAY, 4, nl_addr_get_binary_addr(gw.get())) == 0;
  }
  if (!ok) ThrowErrnoMsg(env, "nexthop request (" + DescribeNexthop(s, o) + ")", EMSGSIZE);
  return msg;
}

std::string DescribeNexthop(Sock& s, Napi::Object o) {
  std::string d = "id " + o.Get("id").ToString().Utf8Value();
  Napi::Value gw = o.Get("gateway"), index = o.Get("index");
  if (gw.IsString()) d += " via " + gw.As<Napi::String>().Utf8Value();
  if (index.IsNumber()) d += " dev " + IfName(s, index.As<Napi::Number>().Int32Value());
  if (o.Get("onlink").ToBoolean()) d += " onlink";
  return d;
}

struct NexthopDump {
  Napi::Env env;
  Napi::Array out;
  uint32_t n;
};

static int OnNexthop(nl_msg* msg, void* arg) {
  auto* d = static_cast<NexthopDump*>(arg);
  nlmsghdr* hdr = nlmsg_hdr(msg);
  if (hdr->nlmsg_len < NLMSG_LENGTH(sizeof(nhmsg))) return NL_SKIP;
  auto* h = static_cast<nhmsg*>(nlmsg_data(hdr));
  if (h->nh_family != AF_INET) return NL_OK;  // groups are AF_UNSPEC; weft makes none
  nlattr* tb[NHA_MAX + 1];
  if (nlmsg_parse(hdr, sizeof(nhmsg), tb, NHA_MAX, nullptr) < 0 || !tb[NHA_ID]) return NL_SKIP;
  Napi::Env env = d->env;
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", nla_get_u32(tb[NHA_ID]));
  bool hasGw = tb[NHA_GATEWAY] && nla_len(tb[NHA_GATEWAY]) == 4;
  char buf[INET_ADDRSTRLEN] = "";
  if (hasGw) inet_ntop(AF_INET, nla_data(tb[NHA_GATEWAY]), buf, sizeof(buf));
  o.Set("gateway", hasGw ? Napi::Value(Napi::String::New(env, buf)) : env.Null());
  o.Set("index", U32OrNull(env, tb[NHA_OIF] != nullptr, tb[NHA_OIF] ? nla_get_u32(tb[NHA_OIF]) : 0));
  o.Set("onlink", (h->nh_flags & RTNH_F_ONLINK) != 0);
  o.Set("protocol", h->nh_protocol);
  d->out.Set(d->n++, o);
  return NL_OK;
}

Napi::Value Handle::Nexthops(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  NexthopDump d{env, Napi::Array::New(env), 0};
  int err = Dump(s, RTM_GETNEXTHOP, AF_UNSPEC, OnNexthop, &d, RestartDump<NexthopDump>);
  if (err < 0) Throw(env, s, "RTM_GETNEXTHOP(dump)", err);
  return d.out;
}

Napi::Value Handle::NexthopReplace(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  Napi::Object o = ArgObject(info, 0, "nexthopReplace({ id, gateway?, index, onlink?, protocol? })");
  Msg m = NexthopMsg(env, s, o, false);
  int err = Exec(s, m.get());
  if (err < 0) Throw(env, s, "RTM_NEWNEXTHOP(" + DescribeNexthop(s, o) + ")", err);
  return env.Undefined();
}

Napi::Value Handle::NexthopDel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "nexthopDel(id: number)");
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", info[0]);
  Msg m = NexthopMsg(env, s, o, true);
  int err = Exec(s, m.get());
  if (err < 0 && ErrnoOf(s, err) == ENOENT) return Napi::Boolean::New(env, false);
  if (err < 0) Throw(env, s, "RTM_DELNEXTHOP(" + DescribeNexthop(s, o) + ")", err);
  return Napi::Boolean::New(env, true);
}

}  // namespace weft::nl
