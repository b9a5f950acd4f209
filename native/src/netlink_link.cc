// Links and IPv4 addresses: reading them, creating the vxlan device flannel
// programs (and a collect_md one for the eBPF dataplane), veth pairs, and
// the few link settings a dataplane changes.
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include <cerrno>

#include <netlink/attr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/route/addr.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/link/vxlan.h>

#include "netlink.h"

namespace weft::nl {

// BIG TCP's IPv4 limits (Linux 6.3, IFLA_GSO_IPV4_MAX_SIZE / IFLA_GRO_IPV4_MAX_SIZE): libnl neither
// sets nor parses them, and the build's <linux/if_link.h> may predate them, so their numbers are here.
constexpr int kIflaGsoMaxSize = IFLA_GSO_MAX_SIZE;
constexpr int kIflaGroMaxSize = 58;
constexpr int kIflaTsoMaxSize = 59;
constexpr int kIflaGsoIpv4MaxSize = 63;
constexpr int kIflaGroIpv4MaxSize = 64;
constexpr int kIflaSizesMax = 64;

static Napi::Object VxlanToJs(Napi::Env env, rtnl_link* l) {
  Napi::Object v = Napi::Object::New(env);
  uint32_t id = 0, link = 0, port = 0, flags = 0;
  rtnl_link_vxlan_get_id(l, &id);
  v.Set("vni", id);
  nl_addr* local = nullptr;
  bool hasLocal = rtnl_link_vxlan_get_local(l, &local) == 0 && local;
  v.Set("local", hasLocal ? Napi::Value(Napi::String::New(env, FormatAddr(local))) : env.Null());
  if (local) nl_addr_put(local);
  bool hasLink = rtnl_link_vxlan_get_link(l, &link) == 0 && link != 0;
  v.Set("link", hasLink ? Napi::Value(Napi::Number::New(env, link)) : env.Null());
  rtnl_link_vxlan_get_port(l, &port);
  v.Set("port", port);
  v.Set("learning", rtnl_link_vxlan_get_learning(l) > 0);
  rtnl_link_vxlan_get_flags(l, &flags);
  v.Set("gbp", (flags & RTNL_LINK_VXLAN_F_GBP) != 0);
  v.Set("external", rtnl_link_vxlan_get_collect_metadata(l) > 0);
  return v;
}

static Napi::Object LinkToJs(Napi::Env env, rtnl_link* l) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("index", rtnl_link_get_ifindex(l));
  const char* name = rtnl_link_get_name(l);
  o.Set("name", name ? name : "");
  const char* kind = rtnl_link_get_type(l);
  o.Set("kind", kind ? Napi::Value(Napi::String::New(env, kind)) : env.Null());
  o.Set("mtu", rtnl_link_get_mtu(l));
  nl_addr* mac = rtnl_link_get_addr(l);
  o.Set("mac", mac && nl_addr_get_len(mac) == 6 ? Napi::Value(Napi::String::New(env, FormatMac(mac))) : env.Null());
  unsigned flags = rtnl_link_get_flags(l);
  o.Set("up", (flags & IFF_UP) != 0);
  // IFF_RUNNING is the kernel's netif_oper_up(): operstate UP, or UNKNOWN
  // as vxlan and other carrier-less devices report when they are up.
  o.Set("operUp", (flags & IFF_RUNNING) != 0);
  o.Set("noarp", (flags & IFF_NOARP) != 0);
  int master = rtnl_link_get_master(l);
  o.Set("master", master > 0 ? Napi::Value(Napi::Number::New(env, master)) : env.Null());
  // IFLA_LINK_NETNSID: the other end (a veth's peer) lives in another network namespace.
  int32_t nsid = 0;
  o.Set("linkNetnsid", rtnl_link_get_link_netnsid(l, &nsid) == 0 ? Napi::Value(Napi::Number::New(env, nsid)) : env.Null());
  if (kind && std::string(kind) == "vxlan" && rtnl_link_is_vxlan(l)) o.Set("vxlan", VxlanToJs(env, l));
  return o;
}

Napi::Value Handle::Links(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  nl_cache* cache = nullptr;
  int err = rtnl_link_alloc_cache(s.sk, AF_UNSPEC, &cache);
  if (err < 0) Throw(env, s, "rtnl_link_alloc_cache(links)", err);
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  for (nl_object* o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o))
    out.Set(i++, LinkToJs(env, reinterpret_cast<rtnl_link*>(o)));
  nl_cache_free(cache);
  return out;
}

// null when absent; other errors throw.
static Napi::Value GetLink(Napi::Env env, Sock& s, int index, const char* name) {
  rtnl_link* l = nullptr;
  int err = rtnl_link_get_kernel(s.sk, index, name, &l);
  if (err < 0) {
    int e = ErrnoOf(s, err);
    if (e == ENODEV || e == ENOENT) return env.Null();
    Throw(env, s, std::string("rtnl_link_get_kernel(") + (name ? name : "#" + std::to_string(index)) + ")", err);
  }
  LinkPtr owned(l);
  return LinkToJs(env, l);
}

Napi::Value Handle::Link(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  if (info.Length() >= 1 && info[0].IsNumber()) return GetLink(env, s, info[0].As<Napi::Number>().Int32Value(), nullptr);
  if (info.Length() >= 1 && info[0].IsString()) {
    std::string name = info[0].As<Napi::String>();
    return GetLink(env, s, 0, name.c_str());
  }
  throw Napi::TypeError::New(env, "link(nameOrIndex: string | number)");
}

Napi::Value Handle::LinkAddVxlan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  Napi::Object o = ArgObject(info, 0, "linkAddVxlan({ name, vni, port, learning, ... })");
  std::string name = GetString(o, "name");
  uint32_t vni = GetU32(o, "vni");
  uint32_t port = GetU32(o, "port");
  auto learning = OptBool(o, "learning");
  if (!learning) throw Napi::TypeError::New(env, "learning: required");
  auto local = OptString(o, "local");
  auto underlay = OptU32(o, "link");
  bool gbp = OptBool(o, "gbp").value_or(false);
  bool external = OptBool(o, "external").value_or(false);
  auto mtu = OptU32(o, "mtu");
  auto mac = OptString(o, "mac");
  if (port == 0 || port > 65535) throw Napi::TypeError::New(env, "port: expected 1..65535");

  LinkPtr l(rtnl_link_vxlan_alloc());
  if (!l) ThrowErrnoMsg(env, "rtnl_link_vxlan_alloc", ENOMEM);
  rtnl_link_set_name(l.get(), name.c_str());
  std::string desc = "vxlan " + name;
  // A collect_md device takes its VNI from each packet's tunnel key; the
  // kernel refuses a fixed one alongside it.
  if (!external || vni != 0) {
    rtnl_link_vxlan_set_id(l.get(), vni);
    desc += " id " + std::to_string(vni);
  }
  if (local) {
    Addr a = ParseV4(env, *local, false, "local");
    rtnl_link_vxlan_set_local(l.get(), a.get());
    desc += " local " + *local;
  }
  if (underlay) {
    rtnl_link_vxlan_set_link(l.get(), *underlay);
    desc += " dev " + IfName(s, static_cast<int>(*underlay));
  }
  rtnl_link_vxlan_set_port(l.get(), port);
  desc += " dstport " + std::to_string(port);
  rtnl_link_vxlan_set_learning(l.get(), *learning ? 1 : 0);
  if (!*learning) desc += " nolearning";
  if (gbp) {
    rtnl_link_vxlan_set_flags(l.get(), RTNL_LINK_VXLAN_F_GBP, 1);
    desc += " gbp";
  }
  if (external) {
    rtnl_link_vxlan_set_collect_metadata(l.get(), 1);
    desc += " external";
  }
  if (mtu) rtnl_link_set_mtu(l.get(), *mtu);
  if (mac) {
    Addr m = ParseMac(env, *mac, "mac");
    rtnl_link_set_addr(l.get(), m.get());
  }
  s.Reset();
  int err = rtnl_link_add(s.sk, l.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (err < 0) Throw(env, s, "rtnl_link_add(" + desc + ")", err);
  Napi::Value made = GetLink(env, s, 0, name.c_str());
  if (made.IsNull()) ThrowErrnoMsg(env, "rtnl_link_get_kernel(" + name + ", just created)", ENODEV);
  return made;
}

Napi::Value Handle::LinkAddVeth(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString())
    throw Napi::TypeError::New(env, "linkAddVeth(name: string, peer: string, o?: { mtu?: number })");
  std::string name = info[0].As<Napi::String>(), peerName = info[1].As<Napi::String>();
  std::optional<uint32_t> mtu;
  if (info.Length() >= 3 && info[2].IsObject()) mtu = OptU32(info[2].As<Napi::Object>(), "mtu");
  rtnl_link* l = rtnl_link_veth_alloc();
  if (!l) ThrowErrnoMsg(env, "rtnl_link_veth_alloc", ENOMEM);
  rtnl_link* peer = rtnl_link_veth_get_peer(l);
  rtnl_link_set_name(l, name.c_str());
  rtnl_link_set_name(peer, peerName.c_str());
  if (mtu) {
    rtnl_link_set_mtu(l, *mtu);
    rtnl_link_set_mtu(peer, *mtu);
  }
  rtnl_link_put(peer);
  s.Reset();
  int err = rtnl_link_add(s.sk, l, NLM_F_CREATE | NLM_F_EXCL);
  rtnl_link_veth_release(l);
  if (err < 0) Throw(env, s, "rtnl_link_add(veth " + name + " peer " + peerName + ")", err);
  return env.Undefined();
}

Napi::Value Handle::LinkSet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsObject())
    throw Napi::TypeError::New(env, "linkSet(index: number, o: { up?, mtu?, mac?, noarp? })");
  int index = info[0].As<Napi::Number>().Int32Value();
  Napi::Object o = info[1].As<Napi::Object>();
  auto up = OptBool(o, "up");
  auto noarp = OptBool(o, "noarp");
  auto mtu = OptU32(o, "mtu");
  auto mac = OptString(o, "mac");
  auto gso4 = OptU32(o, "gsoIpv4MaxSize");
  auto gro4 = OptU32(o, "groIpv4MaxSize");
  if (gso4 || gro4) {
    // A request of our own: rtnl_link_change has no field for these.
    nl_msg* m = nlmsg_alloc_simple(RTM_NEWLINK, NLM_F_ACK);
    if (!m) ThrowErrnoMsg(env, "nlmsg_alloc_simple", ENOMEM);
    Msg msg(m);
    ifinfomsg h{};
    h.ifi_family = AF_UNSPEC;
    h.ifi_index = index;
    std::string sizes;
    bool ok = nlmsg_append(m, &h, sizeof(h), NLMSG_ALIGNTO) == 0;
    if (ok && gso4) ok = nla_put_u32(m, kIflaGsoIpv4MaxSize, *gso4) == 0, sizes += " gso_ipv4_max_size " + std::to_string(*gso4);
    if (ok && gro4) ok = nla_put_u32(m, kIflaGroIpv4MaxSize, *gro4) == 0, sizes += " gro_ipv4_max_size " + std::to_string(*gro4);
    if (!ok) ThrowErrnoMsg(env, "link request (" + IfName(s, index) + sizes + ")", EMSGSIZE);
    int err = Exec(s, m);
    if (err < 0) Throw(env, s, "RTM_NEWLINK(" + IfName(s, index) + sizes + ")", err);
  }
  LinkPtr ch(rtnl_link_alloc());
  if (!ch) ThrowErrnoMsg(env, "rtnl_link_alloc", ENOMEM);
  rtnl_link_set_ifindex(ch.get(), index);
  std::string desc;
  if (up) {
    *up ? rtnl_link_set_flags(ch.get(), IFF_UP) : rtnl_link_unset_flags(ch.get(), IFF_UP);
    desc += *up ? " up" : " down";
  }
  if (noarp) {
    *noarp ? rtnl_link_set_flags(ch.get(), IFF_NOARP) : rtnl_link_unset_flags(ch.get(), IFF_NOARP);
    desc += *noarp ? " arp off" : " arp on";
  }
  if (mtu) {
    rtnl_link_set_mtu(ch.get(), *mtu);
    desc += " mtu " + std::to_string(*mtu);
  }
  if (mac) {
    Addr m = ParseMac(env, *mac, "mac");
    rtnl_link_set_addr(ch.get(), m.get());
    desc += " address " + *mac;
  }
  if (desc.empty()) return env.Undefined();
  // The template doubles as "orig": flags are sent as a change mask, so the
  // device's other flags are left alone without reading them first.
  int err = rtnl_link_change(s.sk, ch.get(), ch.get(), 0);
  if (err < 0) Throw(env, s, "rtnl_link_change(" + IfName(s, index) + desc + ")", err);
  return env.Undefined();
}

struct SizesArg {
  int index;
  bool found = false;
  uint32_t v[5] = {};
};

static int SizesCb(nl_msg* msg, void* arg) {
  auto* a = static_cast<SizesArg*>(arg);
  nlmsghdr* hdr = nlmsg_hdr(msg);
  if (hdr->nlmsg_type != RTM_NEWLINK) return NL_SKIP;
  auto* ifi = static_cast<ifinfomsg*>(nlmsg_data(hdr));
  if (ifi->ifi_index != a->index) return NL_SKIP;
  nlattr* tb[kIflaSizesMax + 1] = {};
  if (nlmsg_parse(hdr, sizeof(ifinfomsg), tb, kIflaSizesMax, nullptr) < 0) return NL_SKIP;
  const int ids[5] = {kIflaGsoMaxSize, kIflaGroMaxSize, kIflaTsoMaxSize, kIflaGsoIpv4MaxSize, kIflaGroIpv4MaxSize};
  for (int i = 0; i < 5; i++) a->v[i] = tb[ids[i]] && nla_len(tb[ids[i]]) >= 4 ? nla_get_u32(tb[ids[i]]) : 0;
  a->found = true;
  return NL_OK;
}

// The device's GSO/GRO/TSO size limits, read from the kernel (0 where it does not report one); null when absent.
Napi::Value Handle::LinkSizes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "linkSizes(index: number)");
  SizesArg a{info[0].As<Napi::Number>().Int32Value()};
  nl_msg* m = nlmsg_alloc_simple(RTM_GETLINK, 0);
  if (!m) ThrowErrnoMsg(env, "nlmsg_alloc_simple", ENOMEM);
  Msg msg(m);
  ifinfomsg h{};
  h.ifi_family = AF_UNSPEC;
  h.ifi_index = a.index;
  if (nlmsg_append(m, &h, sizeof(h), NLMSG_ALIGNTO) < 0) ThrowErrnoMsg(env, "nlmsg_append", EMSGSIZE);
  s.Reset();
  int err = nl_send_auto(s.sk, m);
  if (err >= 0) {
    nl_cb* base = nl_socket_get_cb(s.sk);
    nl_cb* cb = nl_cb_clone(base);
    nl_cb_put(base);
    if (!cb) ThrowErrnoMsg(env, "nl_cb_clone", ENOMEM);
    nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, SizesCb, &a);
    err = nl_recvmsgs(s.sk, cb);
    nl_cb_put(cb);
    // The socket asks for acks (libnl's default): the reply is followed by one, which must not be left for the next call.
    if (err >= 0) err = nl_wait_for_ack(s.sk);
  }
  if (err == -NLE_NODEV || err == -NLE_OBJ_NOTFOUND) return env.Null();
  if (err < 0) Throw(env, s, "RTM_GETLINK(ifindex " + std::to_string(a.index) + ")", err);
  if (!a.found) return env.Null();
  Napi::Object o = Napi::Object::New(env);
  o.Set("gsoMaxSize", a.v[0]);
  o.Set("groMaxSize", a.v[1]);
  o.Set("tsoMaxSize", a.v[2]);
  o.Set("gsoIpv4MaxSize", a.v[3]);
  o.Set("groIpv4MaxSize", a.v[4]);
  return o;
}

Napi::Value Handle::LinkDel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "linkDel(index: number)");
  int index = info[0].As<Napi::Number>().Int32Value();
  std::string name = IfName(s, index);
  LinkPtr l(rtnl_link_alloc());
  if (!l) ThrowErrnoMsg(env, "rtnl_link_alloc", ENOMEM);
  rtnl_link_set_ifindex(l.get(), index);
  s.Reset();
  int err = rtnl_link_delete(s.sk, l.get());
  if (err < 0) Throw(env, s, "rtnl_link_delete(" + name + ")", err);
  return env.Undefined();
}

// Addresses ---------------------------------------------------------------

Napi::Value Handle::Addrs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Sock& s = S(env);
  int only = info.Length() >= 1 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 0;
  nl_cache* cache = nullptr;
  int err = rtnl_addr_alloc_cache(s.sk, &cache);
  if (err < 0) Throw(env, s, "rtnl_addr_alloc_cache(addresses)", err);
  Napi::Array out = Napi::Array::New(env);
  uint32_t i = 0;
  for (nl_object* obj = nl_cache_get_first(cache); obj; obj = nl_cache_get_next(obj)) {
    auto* a = reinterpret_cast<rtnl_addr*>(obj);
    if (rtnl_addr_get_family(a) != AF_INET) continue;
    if (only && rtnl_addr_get_ifindex(a) != only) continue;
    nl_addr* local = rtnl_addr_get_local(a);
    if (!local) continue;
    Napi::Object o = Napi::Object::New(env);
    o.Set("index", rtnl_addr_get_ifindex(a));
    o.Set("address", FormatAddr(local));
    o.Set("prefixLen", rtnl_addr_get_prefixlen(a));
    out.Set(i++, o);
  }
  nl_cache_free(cache);
  return out;
}

static void AddrOp(const Napi::CallbackInfo& info, Sock& s, bool add) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsString())
    throw Napi::TypeError::New(env, add ? "addrAdd(index: number, cidr: string)" : "addrDel(index: number, cidr: string)");
  int index = info[0].As<Napi::Number>().Int32Value();
  std::string cidr = info[1].As<Napi::String>();
  Addr local = ParseV4(env, cidr, true, "cidr");
  rtnl_addr* a = rtnl_addr_alloc();
  if (!a) ThrowErrnoMsg(env, "rtnl_addr_alloc", ENOMEM);
  rtnl_addr_set_ifindex(a, index);
  rtnl_addr_set_local(a, local.get());
  rtnl_addr_set_prefixlen(a, nl_addr_get_prefixlen(local.get()));
  s.Reset();
  int err = add ? rtnl_addr_add(s.sk, a, 0) : rtnl_addr_delete(s.sk, a, 0);
  rtnl_addr_put(a);
  if (err < 0 && !(add && ErrnoOf(s, err) == EEXIST))
    Throw(env, s, std::string(add ? "rtnl_addr_add(" : "rtnl_addr_delete(") + cidr + " dev " + IfName(s, index) + ")", err);
}

Napi::Value Handle::AddrAdd(const Napi::CallbackInfo& info) {
  AddrOp(info, S(info.Env()), true);
  return info.Env().Undefined();
}

Napi::Value Handle::AddrDel(const Napi::CallbackInfo& info) {
  AddrOp(info, S(info.Env()), false);
  return info.Env().Undefined();
}

}  // namespace weft::nl
