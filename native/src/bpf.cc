// The libbpf half of weft_native: version facts, fd plumbing and info
// queries here; objects and test runs in bpf_object.cc, map access in
// bpf_map.cc, TC attachment in bpf_tc.cc (clsact) and
// bpf_tcx.cc (bpf links). Everything is synchronous and every
// failure is an ErrnoError naming the call and the object.
#include <fcntl.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bpf_util.h"

namespace weft {
namespace bpfutil {

// libbpf prints the whole verifier log (up to 16 MiB) in one message; only the
// tail is ever shown, so the buffer keeps at most this much.
static const size_t kLogKeep = 256 * 1024;
// Per thread: objects load on libuv threads (loadAsync, checkLoad) while the
// main thread may call libbpf, and each capture must hold only its own calls.
static thread_local std::string g_log;
static thread_local int g_capturing = 0;
static bool g_debug = false;

static int PrintCallback(enum libbpf_print_level level, const char* fmt, va_list ap) {
  if (g_capturing == 0 && !g_debug) return 0;
  if (level == LIBBPF_DEBUG && !g_debug) return 0;
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  if (n <= 0) return 0;
  std::string msg(static_cast<size_t>(n) + 1, '\0');
  vsnprintf(&msg[0], msg.size(), fmt, ap);
  msg.resize(static_cast<size_t>(n));
  if (g_debug) fputs(msg.c_str(), stderr);
  if (g_capturing > 0) {
    g_log += msg;
    if (g_log.size() > kLogKeep) g_log.erase(0, g_log.size() - kLogKeep);
  }
  return n;
}

void InstallPrintCallback() {
  const char* d = getenv("WEFT_LIBBPF_DEBUG");
  g_debug = d && *d && strcmp(d, "0") != 0;
  libbpf_set_print(PrintCallback);
}

LogCapture::LogCapture() {
  if (g_capturing++ == 0) g_log.clear();
}
LogCapture::~LogCapture() { g_capturing--; }

std::string LogCapture::Tail(size_t n) const {
  std::vector<std::string> lines;
  size_t end = g_log.size();
  while (end > 0 && lines.size() < n) {
    size_t start = g_log.rfind('\n', end - 1);
    size_t from = start == std::string::npos ? 0 : start + 1;
    std::string line = g_log.substr(from, end - from);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (!line.empty()) lines.push_back(line);
    if (start == std::string::npos) break;
    end = start;
  }
  std::string out;
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    if (!out.empty()) out += '\n';
    out += *it;
  }
  return out;
}

Napi::Error ErrnoErrorWithDetail(Napi::Env env, const std::string& call, int err,
                                 const std::string& detail) {
  Napi::Error base = ErrnoError(env, call, err);
  if (detail.empty()) return base;
  // A fresh Error so that the stack's header carries the full message too.
  std::string msg = base.Message() + "\n" + detail;
  Napi::Error e = Napi::Error::New(env, msg);
  for (const char* k : {"code", "errno", "syscall"}) e.Set(k, base.Get(k));
  return e;
}

void ThrowErrnoWithLog(Napi::Env env, const std::string& call, int err, const LogCapture& log,
                       size_t lines) {
  throw ErrnoErrorWithDetail(env, call, err, log.Tail(lines));
}

int32_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (v < 0 || v > 4294967295.0 || v != static_cast<double>(static_cast<uint32_t>(v)))
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be an integer in 0..2^32-1");
  return static_cast<uint32_t>(v);
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  return info[i].As<Napi::String>();
}

std::string ArgLabel(const Napi::CallbackInfo& info, size_t i, const std::string& fallback) {
  if (info.Length() > i && info[i].IsString()) return info[i].As<Napi::String>();
  return fallback;
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsBuffer())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

std::string Hex(const uint8_t* p, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

static std::string TypeName(const char* s, unsigned t) {
  return s ? std::string(s) : "unknown(" + std::to_string(t) + ")";
}

Napi::Object ProgInfoObject(Napi::Env env, int fd, const std::string& label) {
  struct bpf_prog_info pi;
  memset(&pi, 0, sizeof(pi));
  __u32 len = sizeof(pi);
  int ret = bpf_obj_get_info_by_fd(fd, &pi, &len);
  if (ret) ThrowErrno(env, "bpf_obj_get_info_by_fd(" + label + ")", -ret);
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", pi.id);
  o.Set("name", std::string(pi.name));
  o.Set("tag", Hex(pi.tag, sizeof(pi.tag)));
  o.Set("type", TypeName(libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(pi.type)), pi.type));
  // Counted only while someone holds BPF_ENABLE_STATS (enableRunStats).
  o.Set("runTimeNs", Napi::Number::New(env, static_cast<double>(pi.run_time_ns)));
  o.Set("runCnt", Napi::Number::New(env, static_cast<double>(pi.run_cnt)));
  // The maps it uses: a second query with room for their ids (`weft bpf programs` compares them with the pins).
  std::vector<__u32> ids(pi.nr_map_ids);
  if (!ids.empty()) {
    struct bpf_prog_info q;
    memset(&q, 0, sizeof(q));
    q.nr_map_ids = ids.size();
    q.map_ids = reinterpret_cast<__u64>(ids.data());
    __u32 qlen = sizeof(q);
    ret = bpf_obj_get_info_by_fd(fd, &q, &qlen);
    if (ret) ThrowErrno(env, "bpf_obj_get_info_by_fd(" + label + ", map ids)", -ret);
    if (q.nr_map_ids < ids.size()) ids.resize(q.nr_map_ids);
  }
  Napi::Array maps = Napi::Array::New(env, ids.size());
  for (size_t i = 0; i < ids.size(); i++) maps.Set(i, ids[i]);
  o.Set("mapIds", maps);
  return o;
}

Napi::Object MapInfoObject(Napi::Env env, int fd, const std::string& label) {
  struct bpf_map_info mi;
  memset(&mi, 0, sizeof(mi));
  __u32 len = sizeof(mi);
  int ret = bpf_obj_get_info_by_fd(fd, &mi, &len);
  if (ret) ThrowErrno(env, "bpf_obj_get_info_by_fd(" + label + ")", -ret);
  Napi::Object o = Napi::Object::New(env);
  o.Set("id", mi.id);
  o.Set("name", std::string(mi.name));
  o.Set("type", TypeName(libbpf_bpf_map_type_str(static_cast<bpf_map_type>(mi.type)), mi.type));
  o.Set("typeId", mi.type);
  o.Set("keySize", mi.key_size);
  o.Set("valueSize", mi.value_size);
  o.Set("maxEntries", mi.max_entries);
  o.Set("flags", mi.map_flags);
  return o;
}

}  // namespace bpfutil

using namespace bpfutil;

// enableRunStats() -> fd: the kernel counts every program's run time and runs while it is open.
static Napi::Value EnableRunStats(const Napi::CallbackInfo& info) {
  int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd < 0) ThrowErrno(info.Env(), "BPF_ENABLE_STATS(BPF_STATS_RUN_TIME)", -fd);
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value LibbpfVersion(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), libbpf_version_string());
}

static Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  int n = libbpf_num_possible_cpus();
  if (n < 0) ThrowErrno(info.Env(), "libbpf_num_possible_cpus", -n);
  return Napi::Number::New(info.Env(), n);
}

static Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  if (fd >= 0 && close(fd) < 0) ThrowErrno(info.Env(), "close(fd " + std::to_string(fd) + ")", errno);
  return info.Env().Undefined();
}

static Napi::Value DupFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (nfd < 0) ThrowErrno(info.Env(), "fcntl(F_DUPFD_CLOEXEC, fd " + std::to_string(fd) + ")", errno);
  return Napi::Number::New(info.Env(), nfd);
}

static Napi::Value ObjGet(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(info.Env(), "bpf_obj_get(" + path + ")", -fd);
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value ObjPin(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  std::string path = ArgString(info, 1, "path");
  std::string label = ArgLabel(info, 2, "fd " + std::to_string(fd));
  int ret = bpf_obj_pin(fd, path.c_str());
  if (ret) ThrowErrno(info.Env(), "bpf_obj_pin(" + label + ", " + path + ")", -ret);
  return info.Env().Undefined();
}

static Napi::Value ProgGetFdById(const Napi::CallbackInfo& info) {
  uint32_t id = ArgU32(info, 0, "id");
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) ThrowErrno(info.Env(), "bpf_prog_get_fd_by_id(" + std::to_string(id) + ")", -fd);
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value MapGetFdById(const Napi::CallbackInfo& info) {
  uint32_t id = ArgU32(info, 0, "id");
  int fd = bpf_map_get_fd_by_id(id);
  if (fd < 0) ThrowErrno(info.Env(), "bpf_map_get_fd_by_id(" + std::to_string(id) + ")", -fd);
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value ProgInfoByFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  return ProgInfoObject(info.Env(), fd, ArgLabel(info, 1, "prog fd " + std::to_string(fd)));
}

static Napi::Value MapInfoByFd(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  return MapInfoObject(info.Env(), fd, ArgLabel(info, 1, "map fd " + std::to_string(fd)));
}

Napi::Object InitBpf(Napi::Env env, Napi::Object exports) {
  InstallPrintCallback();
  exports.Set("libbpfVersion", Napi::Function::New(env, LibbpfVersion, "libbpfVersion"));
  exports.Set("enableRunStats", Napi::Function::New(env, EnableRunStats, "enableRunStats"));
  exports.Set("numPossibleCpus", Napi::Function::New(env, NumPossibleCpus, "numPossibleCpus"));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("dupFd", Napi::Function::New(env, DupFd, "dupFd"));
  exports.Set("objGet", Napi::Function::New(env, ObjGet, "objGet"));
  exports.Set("objPin", Napi::Function::New(env, ObjPin, "objPin"));
  exports.Set("progGetFdById", Napi::Function::New(env, ProgGetFdById, "progGetFdById"));
  exports.Set("mapGetFdById", Napi::Function::New(env, MapGetFdById, "mapGetFdById"));
  exports.Set("progInfoByFd", Napi::Function::New(env, ProgInfoByFd, "progInfoByFd"));
  exports.Set("mapInfoByFd", Napi::Function::New(env, MapInfoByFd, "mapInfoByFd"));
  InitBpfObject(env, exports);
  InitBpfMap(env, exports);
  InitBpfTc(env, exports);
  InitBpfTcx(env, exports);
  InitBpfRingbuf(env, exports);
  return exports;
}

}  // namespace weft
