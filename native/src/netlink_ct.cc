// ctnetlink: the one change weft asks of conntrack. A TCP entry's windows
// tracked liberally in both directions (IP_CT_TCP_FLAG_BE_LIBERAL, as the
// kernel's flowtable marks the flows it offloads), so that established
// packets may skip the host's forward path without leaving conntrack's window
// behind (bpf/include/conntrack.h). An update of an existing entry only:
// IPCTNL_MSG_CT_NEW without NLM_F_CREATE. Acts in the calling thread's
// network namespace.
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>

#include <napi.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "errors.h"

namespace weft {

namespace {
// include/uapi/linux/netfilter/nf_conntrack_tcp.h
constexpr uint8_t kTcpFlagBeLiberal = 0x08;
struct TcpFlags {
  uint8_t flags;
  uint8_t mask;
};

class Msg {
 public:
  explicit Msg(uint16_t type, uint16_t flags) : buf_(NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg)), 0) {
    auto* nh = reinterpret_cast<nlmsghdr*>(buf_.data());
    nh->nlmsg_type = type;
    nh->nlmsg_flags = flags;
    nh->nlmsg_seq = 1;
    auto* g = reinterpret_cast<nfgenmsg*>(buf_.data() + NLMSG_HDRLEN);
    g->nfgen_family = AF_INET;
    g->version = NFNETLINK_V0;
  }
  size_t Begin(uint16_t type) { return Put(type | NLA_F_NESTED, nullptr, 0); }
  void End(size_t at) { reinterpret_cast<nlattr*>(buf_.data() + at)->nla_len = static_cast<uint16_t>(buf_.size() - at); }
  size_t Put(uint16_t type, const void* data, size_t len) {
    size_t at = buf_.size();
    buf_.resize(at + NLA_ALIGN(NLA_HDRLEN + len), 0);
    auto* a = reinterpret_cast<nlattr*>(buf_.data() + at);
    a->nla_type = type;
    a->nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
    if (len) memcpy(buf_.data() + at + NLA_HDRLEN, data, len);
    return at;
  }
  template <typename T>
  void PutValue(uint16_t type, T v) { Put(type, &v, sizeof(v)); }
  std::vector<char>& Finish() {
    reinterpret_cast<nlmsghdr*>(buf_.data())->nlmsg_len = static_cast<uint32_t>(buf_.size());
    return buf_;
  }

 private:
  std::vector<char> buf_;
};

// Sends one request and waits for its ack; returns 0 or a positive errno.
int Transact(std::vector<char>& req) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) return errno;
  sockaddr_nl kernel;
  memset(&kernel, 0, sizeof(kernel));
  kernel.nl_family = AF_NETLINK;
  int err = 0;
  if (sendto(fd, req.data(), req.size(), 0, reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel)) < 0) {
    err = errno;
  } else {
    char buf[4096];
    for (;;) {
      ssize_t got = recv(fd, buf, sizeof(buf), 0);
      if (got < 0) {
        if (errno == EINTR) continue;
        err = errno;
        break;
      }
      int len = static_cast<int>(got);
      bool done = false;
      for (auto* nh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
        if (nh->nlmsg_type == NLMSG_ERROR) {
          err = -reinterpret_cast<nlmsgerr*>(NLMSG_DATA(nh))->error;
          done = true;
        }
      }
      if (done) break;
    }
  }
  close(fd);
  return err;
}

uint32_t ArgAddr(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsBuffer() || info[i].As<Napi::Buffer<uint8_t>>().Length() != 4)
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a 4-byte Buffer (IPv4, network order)");
  uint32_t v;
  memcpy(&v, info[i].As<Napi::Buffer<uint8_t>>().Data(), 4);
  return v;
}

uint16_t ArgPort(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  uint32_t v = info[i].As<Napi::Number>().Uint32Value();
  if (v > 0xffff) throw Napi::TypeError::New(info.Env(), std::string(what) + " must fit 16 bits");
  return htons(static_cast<uint16_t>(v));
}
}  // namespace

// ctSetTcpLiberal(saddr, daddr, sport, dport, on = true) -> errno (0; ENOENT when the entry is gone).
// The tuple as a packet of the flow carries it, in either direction: ctnetlink finds the entry by it.
// on false clears the flag (conntrack marks entries that ctnetlink creates liberal; tests need one that is not).
static Napi::Value CtSetTcpLiberal(const Napi::CallbackInfo& info) {
  uint32_t src = ArgAddr(info, 0, "saddr"), dst = ArgAddr(info, 1, "daddr");
  uint16_t sport = ArgPort(info, 2, "sport"), dport = ArgPort(info, 3, "dport");
  bool on = info.Length() < 5 || info[4].ToBoolean();
  Msg m((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW, NLM_F_REQUEST | NLM_F_ACK);
  size_t tuple = m.Begin(CTA_TUPLE_ORIG);
  size_t ip = m.Begin(CTA_TUPLE_IP);
  m.PutValue(CTA_IP_V4_SRC, src);
  m.PutValue(CTA_IP_V4_DST, dst);
  m.End(ip);
  size_t proto = m.Begin(CTA_TUPLE_PROTO);
  m.PutValue<uint8_t>(CTA_PROTO_NUM, IPPROTO_TCP);
  m.PutValue(CTA_PROTO_SRC_PORT, sport);
  m.PutValue(CTA_PROTO_DST_PORT, dport);
  m.End(proto);
  m.End(tuple);
  size_t pi = m.Begin(CTA_PROTOINFO);
  size_t tcp = m.Begin(CTA_PROTOINFO_TCP);
  TcpFlags f = {on ? kTcpFlagBeLiberal : uint8_t{0}, kTcpFlagBeLiberal};
  m.Put(CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, &f, sizeof(f));
  m.Put(CTA_PROTOINFO_TCP_FLAGS_REPLY, &f, sizeof(f));
  m.End(tcp);
  m.End(pi);
  int err = Transact(m.Finish());
  // ENOENT for a tuple that is the reply direction's: ctnetlink looks both up, so it means gone.
  if (err && err != ENOENT) ThrowErrno(info.Env(), "ctnetlink IPCTNL_MSG_CT_NEW (update)", err);
  return Napi::Number::New(info.Env(), err);
}

Napi::Object InitNetlinkCt(Napi::Env env, Napi::Object exports) {
  exports.Set("ctSetTcpLiberal", Napi::Function::New(env, CtSetTcpLiberal, "ctSetTcpLiberal"));
  return exports;
}

}  // namespace weft
