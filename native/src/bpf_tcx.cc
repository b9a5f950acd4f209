// tcx: BPF programs attached to a device's ingress or egress as bpf links
// (Linux 6.6+), through the raw bpf() syscall: libbpf 1.1 and bookworm's uapi
// headers predate tcx, so the attribute layouts used here are written out
// from the kernel's include/uapi/linux/bpf.h. A link holds its program on the
// hook for as long as an fd or a bpffs pin refers to it; BPF_LINK_UPDATE
// swaps the program in place, keeping the link and its position.
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/bpf.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "bpf_util.h"

namespace weft {
using namespace bpfutil;

namespace {
// enum bpf_attach_type, enum bpf_link_type and the mprog flags, as of 6.6.
constexpr uint32_t kTcxIngress = 46;
constexpr uint32_t kTcxEgress = 47;
constexpr uint32_t kLinkTypeTcx = 11;
constexpr uint32_t kFlagBefore = 1u << 3;

// bpf_attr.link_create for tcx.
struct LinkCreateTcx {
  uint32_t prog_fd;
  uint32_t target_ifindex;
  uint32_t attach_type;
  uint32_t flags;
  uint32_t relative_fd;
  uint32_t pad;
  uint64_t expected_revision;
};
static_assert(sizeof(LinkCreateTcx) == 32, "bpf_attr.link_create (tcx) is 32 bytes");

// bpf_attr.link_update.
struct LinkUpdate {
  uint32_t link_fd;
  uint32_t new_prog_fd;
  uint32_t flags;
  uint32_t old_prog_fd;
};

// bpf_attr.query as of 6.6 (link_ids and revision were added for tcx).
struct Query {
  uint32_t target_ifindex;
  uint32_t attach_type;
  uint32_t query_flags;
  uint32_t attach_flags;
  uint64_t prog_ids;
  uint32_t count;
  uint32_t pad;
  uint64_t prog_attach_flags;
  uint64_t link_ids;
  uint64_t link_attach_flags;
  uint64_t revision;
};
static_assert(sizeof(Query) == 64, "bpf_attr.query is 64 bytes");

// bpf_attr.info for BPF_OBJ_GET_INFO_BY_FD.
struct InfoByFd {
  uint32_t bpf_fd;
  uint32_t info_len;
  uint64_t info;
};

// struct bpf_link_info: type, id, prog_id, then a union whose tcx member is {ifindex, attach_type}.
struct LinkInfo {
  uint32_t type;
  uint32_t id;
  uint32_t prog_id;
  uint32_t pad;
  uint32_t ifindex;
  uint32_t attach_type;
  uint8_t rest[48];
};

long Bpf(int cmd, void* attr, size_t size) { return syscall(__NR_bpf, cmd, attr, size); }

uint32_t ArgHook(const Napi::CallbackInfo& info, size_t i) {
  std::string h = ArgString(info, i, "hook");
  if (h == "ingress") return kTcxIngress;
  if (h == "egress") return kTcxEgress;
  throw Napi::TypeError::New(info.Env(), "hook must be 'ingress' or 'egress', got '" + h + "'");
}

std::string Where(uint32_t ifindex, uint32_t type) {
  return "ifindex " + std::to_string(ifindex) + ", " + (type == kTcxIngress ? "tcx ingress" : "tcx egress");
}
}  // namespace

// tcxAttach(ifindex, hook, progFd, first) -> link fd. first: at the head of
// the hook's chain (as weft's classic filter ran first at priority 1);
// otherwise appended after whatever is there.
static Napi::Value TcxAttach(const Napi::CallbackInfo& info) {
  LinkCreateTcx attr;
  memset(&attr, 0, sizeof(attr));
  attr.target_ifindex = ArgU32(info, 0, "ifindex");
  attr.attach_type = ArgHook(info, 1);
  attr.prog_fd = ArgU32(info, 2, "progFd");
  attr.flags = info.Length() > 3 && info[3].ToBoolean() ? kFlagBefore : 0;
  long fd = Bpf(BPF_LINK_CREATE, &attr, sizeof(attr));
  if (fd < 0) ThrowErrno(info.Env(), "BPF_LINK_CREATE(" + Where(attr.target_ifindex, attr.attach_type) + ")", errno);
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

// linkUpdate(linkFd, newProgFd): the link keeps its place on the hook; only its program changes.
static Napi::Value LinkUpdateProg(const Napi::CallbackInfo& info) {
  LinkUpdate attr;
  memset(&attr, 0, sizeof(attr));
  attr.link_fd = ArgU32(info, 0, "linkFd");
  attr.new_prog_fd = ArgU32(info, 1, "progFd");
  if (Bpf(BPF_LINK_UPDATE, &attr, sizeof(attr)) < 0)
    ThrowErrno(info.Env(), "BPF_LINK_UPDATE(link fd " + std::to_string(attr.link_fd) + ")", errno);
  return info.Env().Undefined();
}

// linkInfo(fd) -> { type, id, progId, ifindex?, hook? } (ifindex and hook for tcx links;
// ifindex 0 once the device is gone and the link is left defunct).
static Napi::Value LinkInfoByFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "fd");
  LinkInfo li;
  memset(&li, 0, sizeof(li));
  InfoByFd attr;
  memset(&attr, 0, sizeof(attr));
  attr.bpf_fd = static_cast<uint32_t>(fd);
  attr.info_len = sizeof(li);
  attr.info = reinterpret_cast<uint64_t>(&li);
  if (Bpf(BPF_OBJ_GET_INFO_BY_FD, &attr, sizeof(attr)) < 0)
    ThrowErrno(env, "BPF_OBJ_GET_INFO_BY_FD(" + ArgLabel(info, 1, "link fd " + std::to_string(fd)) + ")", errno);
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", li.type == kLinkTypeTcx ? std::string("tcx") : "type " + std::to_string(li.type));
  o.Set("id", li.id);
  o.Set("progId", li.prog_id);
  if (li.type == kLinkTypeTcx) {
    o.Set("ifindex", li.ifindex);
    o.Set("hook", li.attach_type == kTcxIngress ? "ingress" : "egress");
  }
  return o;
}

// tcxQuery(ifindex, hook) -> { revision, programs: [{ progId, linkId }] } in the order they run;
// linkId 0 for a program attached without a link. Throws EINVAL on kernels without tcx.
static Napi::Value TcxQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t ifindex = ArgU32(info, 0, "ifindex");
  uint32_t type = ArgHook(info, 1);
  std::vector<uint32_t> progs(64), links(64);
  Query q;
  for (;;) {
    memset(&q, 0, sizeof(q));
    q.target_ifindex = ifindex;
    q.attach_type = type;
    q.prog_ids = reinterpret_cast<uint64_t>(progs.data());
    q.link_ids = reinterpret_cast<uint64_t>(links.data());
    q.count = static_cast<uint32_t>(progs.size());
    if (Bpf(BPF_PROG_QUERY, &q, sizeof(q)) == 0) break;
    // ENOSPC: more programs than room; count now says how many.
    if (errno == ENOSPC && q.count > progs.size()) {
      progs.resize(q.count);
      links.resize(q.count);
      continue;
    }
    ThrowErrno(env, "BPF_PROG_QUERY(" + Where(ifindex, type) + ")", errno);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("revision", Napi::Number::New(env, static_cast<double>(q.revision)));
  Napi::Array arr = Napi::Array::New(env, q.count);
  for (uint32_t i = 0; i < q.count; i++) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("progId", progs[i]);
    p.Set("linkId", links[i]);
    arr.Set(i, p);
  }
  o.Set("programs", arr);
  return o;
}

// linkDetach(linkFd): detaches the link's program from its hook now, whoever else holds the link
// (a pin or another process's fd keeps only a defunct link).
static Napi::Value LinkDetach(const Napi::CallbackInfo& info) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.link_detach.link_fd = ArgU32(info, 0, "linkFd");
  if (Bpf(BPF_LINK_DETACH, &attr, sizeof(attr)) < 0)
    ThrowErrno(info.Env(), "BPF_LINK_DETACH(link fd " + std::to_string(attr.link_detach.link_fd) + ")", errno);
  return info.Env().Undefined();
}

// linkGetFdById(id) -> fd
static Napi::Value LinkGetFdById(const Napi::CallbackInfo& info) {
  union bpf_attr attr;
  memset(&attr, 0, sizeof(attr));
  attr.link_id = ArgU32(info, 0, "id");
  long fd = Bpf(BPF_LINK_GET_FD_BY_ID, &attr, sizeof(attr));
  if (fd < 0) ThrowErrno(info.Env(), "BPF_LINK_GET_FD_BY_ID(" + std::to_string(attr.link_id) + ")", errno);
  return Napi::Number::New(info.Env(), static_cast<double>(fd));
}

Napi::Object InitBpfTcx(Napi::Env env, Napi::Object exports) {
  exports.Set("tcxAttach", Napi::Function::New(env, TcxAttach, "tcxAttach"));
  exports.Set("linkUpdate", Napi::Function::New(env, LinkUpdateProg, "linkUpdate"));
  exports.Set("linkInfoByFd", Napi::Function::New(env, LinkInfoByFd, "linkInfoByFd"));
  exports.Set("tcxQuery", Napi::Function::New(env, TcxQuery, "tcxQuery"));
  exports.Set("linkDetach", Napi::Function::New(env, LinkDetach, "linkDetach"));
  exports.Set("linkGetFdById", Napi::Function::New(env, LinkGetFdById, "linkGetFdById"));
  return exports;
}

}  // namespace weft
