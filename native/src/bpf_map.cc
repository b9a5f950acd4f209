// Map access by fd. Sizes are checked in TypeScript (it knows key/value sizes
// and the per-CPU layout); here the buffers are passed through as they are.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "bpf_util.h"

namespace weft {
using namespace bpfutil;

// The kernel's internal "operation not supported" (include/linux/errno.h), which bpf() returns to user space.
constexpr int kENOTSUPP = 524;

// mapLookup(fd, key, valueLen, label) -> Buffer | null
static Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "fd");
  Napi::Buffer<uint8_t> key = ArgBuffer(info, 1, "key");
  uint32_t len = ArgU32(info, 2, "valueLen");
  std::string label = ArgLabel(info, 3, "map fd " + std::to_string(fd));
  std::vector<uint8_t> value(len ? len : 1);
  int ret = bpf_map_lookup_elem(fd, key.Data(), value.data());
  if (ret == -ENOENT) return env.Null();
  if (ret) ThrowErrno(env, "bpf_map_lookup_elem(" + label + ")", -ret);
  return Napi::Buffer<uint8_t>::Copy(env, value.data(), len);
}

// mapPresentUntil(fd, keys, keySize, from, valueLen, label) -> index of the first of
// the packed keys, from `from` on, that the map does not hold (the key count when
// it holds them all): one call for a run of lookups, at the syscall's own cost.
static Napi::Value MapPresentUntil(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "fd");
  Napi::Buffer<uint8_t> keys = ArgBuffer(info, 1, "keys");
  uint32_t keySize = ArgU32(info, 2, "keySize");
  uint32_t from = ArgU32(info, 3, "from");
  uint32_t len = ArgU32(info, 4, "valueLen");
  std::string label = ArgLabel(info, 5, "map fd " + std::to_string(fd));
  if (keySize == 0 || keys.Length() % keySize) ThrowErrno(env, "mapPresentUntil(" + label + "): keys are not a whole number of keys", EINVAL);
  size_t count = keys.Length() / keySize;
  std::vector<uint8_t> value(len ? len : 1);
  size_t i = from;
  for (; i < count; i++) {
    int ret = bpf_map_lookup_elem(fd, keys.Data() + i * keySize, value.data());
    if (ret == -ENOENT) break;
    if (ret) ThrowErrno(env, "bpf_map_lookup_elem(" + label + ")", -ret);
  }
  return Napi::Number::New(env, static_cast<double>(i));
}

// mapUpdate(fd, key, value, flags, label)
static Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "fd");
  Napi::Buffer<uint8_t> key = ArgBuffer(info, 1, "key");
  Napi::Buffer<uint8_t> value = ArgBuffer(info, 2, "value");
  uint32_t flags = ArgU32(info, 3, "flags");
  std::string label = ArgLabel(info, 4, "map fd " + std::to_string(fd));
  int ret = bpf_map_update_elem(fd, key.Data(), value.Data(), flags);
  if (ret) ThrowErrno(env, "bpf_map_update_elem(" + label + ")", -ret);
  return env.Undefined();
}

// mapDelete(fd, key, label) -> false when the key was not there
static Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "fd");
  Napi::Buffer<uint8_t> key = ArgBuffer(info, 1, "key");
  std::string label = ArgLabel(info, 2, "map fd " + std::to_string(fd));
  int ret = bpf_map_delete_elem(fd, key.Data());
  if (ret == -ENOENT) return Napi::Boolean::New(env, false);
  if (ret) ThrowErrno(env, "bpf_map_delete_elem(" + label + ")", -ret);
  return Napi::Boolean::New(env, true);
}

// mapKeys(fd, keySize, label) -> Buffer[] (the whole bpf_map_get_next_key walk)
static Napi::Value MapKeys(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "fd");
  uint32_t keySize = ArgU32(info, 1, "keySize");
  std::string label = ArgLabel(info, 2, "map fd " + std::to_string(fd));
  std::vector<uint8_t> cur(keySize ? keySize : 1), next(keySize ? keySize : 1);
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  const void* prev = nullptr;
  for (;;) {
    int ret = bpf_map_get_next_key(fd, prev, next.data());
    if (ret == -ENOENT) break;
    if (ret) ThrowErrno(env, "bpf_map_get_next_key(" + label + ")", -ret);
    out.Set(n++, Napi::Buffer<uint8_t>::Copy(env, next.data(), keySize));
    cur.swap(next);
    prev = cur.data();
  }
  return out;
}

// The arguments of mapUpdateBatch and mapUpdateBatchAsync: (fd, keys, values, count, flags, label).
struct UpdateBatchArgs {
  int fd;
  Napi::Buffer<uint8_t> keys;
  Napi::Buffer<uint8_t> values;
  uint32_t count;
  uint32_t flags;
  // What a failure names: "bpf_map_update_batch(<label>, <count> entries)".
  std::string call;
};

static UpdateBatchArgs ReadUpdateBatchArgs(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  UpdateBatchArgs a{fd, ArgBuffer(info, 1, "keys"), ArgBuffer(info, 2, "values"), ArgU32(info, 3, "count"), ArgU32(info, 4, "flags"), ""};
  a.call = "bpf_map_update_batch(" + ArgLabel(info, 5, "map fd " + std::to_string(fd)) + ", " + std::to_string(a.count) + " entries)";
  return a;
}

// One bpf_map_update_batch: 0, or the errno; *n is the count updated.
static int UpdateBatch(int fd, const void* keys, const void* values, uint32_t count, uint32_t flags, uint32_t* n) {
  LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
  __u32 done = count;
  int ret = bpf_map_update_batch(fd, keys, values, &done, &opts);
  *n = done;
  return ret ? -ret : 0;
}

// mapUpdateBatch(fd, keys, values, count, flags, label) -> count updated.
// No partial count on failure: the kernel leaves it untouched when it rejects
// the call up front (ENOTSUPP for map types without batch ops), so it would lie.
static Napi::Value MapUpdateBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  UpdateBatchArgs a = ReadUpdateBatchArgs(info);
  uint32_t n = 0;
  int err = UpdateBatch(a.fd, a.keys.Data(), a.values.Data(), a.count, a.flags, &n);
  if (err) ThrowErrno(env, a.call, err);
  return Napi::Number::New(env, n);
}

namespace {
// mapUpdateBatch on a libuv thread: the kernel inserts while the event loop
// goes on (an agent's start writes 65,536 peers in batches beside the list
// it is still applying). The worker holds its own fd and both buffers until
// it is done, so neither a close nor the collector can pull them away.
class UpdateBatchWorker : public Napi::AsyncWorker {
 public:
  UpdateBatchWorker(Napi::Env env, const UpdateBatchArgs& a)
      : Napi::AsyncWorker(env),
        fd_(fcntl(a.fd, F_DUPFD_CLOEXEC, 0)),
        dupErr_(fd_ < 0 ? errno : 0),
        keysRef_(Napi::Persistent(a.keys)),
        valuesRef_(Napi::Persistent(a.values)),
        keys_(a.keys.Data()),
        values_(a.values.Data()),
        count_(a.count),
        flags_(a.flags),
        call_(a.call),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  ~UpdateBatchWorker() override {
    if (fd_ >= 0) close(fd_);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    if (!dupErr_) err_ = UpdateBatch(fd_, keys_, values_, count_, flags_, &n_);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (dupErr_) deferred_.Reject(ErrnoError(env, "fcntl(F_DUPFD_CLOEXEC) for " + call_, dupErr_).Value());
    else if (err_) deferred_.Reject(ErrnoError(env, call_, err_).Value());
    else deferred_.Resolve(Napi::Number::New(env, n_));
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  int fd_;
  int dupErr_;
  Napi::Reference<Napi::Buffer<uint8_t>> keysRef_;
  Napi::Reference<Napi::Buffer<uint8_t>> valuesRef_;
  const uint8_t* keys_;
  const uint8_t* values_;
  uint32_t count_;
  uint32_t flags_;
  std::string call_;
  int err_ = 0;
  uint32_t n_ = 0;
  Napi::Promise::Deferred deferred_;
};
}  // namespace

// mapUpdateBatchAsync(fd, keys, values, count, flags, label) -> Promise of the count updated.
static Napi::Value MapUpdateBatchAsync(const Napi::CallbackInfo& info) {
  auto* w = new UpdateBatchWorker(info.Env(), ReadUpdateBatchArgs(info));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// The map's entries, walked key by key (bpf_map_get_next_key, then a lookup):
// for kernels or map types without batch lookups. Appends to keys and values.
static void WalkEntries(Napi::Env env, int fd, uint32_t keySize, uint32_t valueLen, const std::string& label, std::vector<uint8_t>& keys,
                        std::vector<uint8_t>& values, size_t& n) {
  std::vector<uint8_t> cur(keySize ? keySize : 1), next(keySize ? keySize : 1), value(valueLen ? valueLen : 1);
  const void* prev = nullptr;
  for (;;) {
    int ret = bpf_map_get_next_key(fd, prev, next.data());
    if (ret == -ENOENT) return;
    if (ret) ThrowErrno(env, "bpf_map_get_next_key(" + label + ")", -ret);
    cur.swap(next);
    prev = cur.data();
    ret = bpf_map_lookup_elem(fd, cur.data(), value.data());
    if (ret == -ENOENT) continue;  // deleted between the two calls
    if (ret) ThrowErrno(env, "bpf_map_lookup_elem(" + label + ")", -ret);
    keys.insert(keys.end(), cur.begin(), cur.begin() + keySize);
    values.insert(values.end(), value.begin(), value.begin() + valueLen);
    n++;
  }
}

// mapEntriesPacked(fd, keySize, valueLen, label[, chunk]) -> { keys: Buffer, values: Buffer, count, batched }:
// every entry, keys and values each laid end to end. bpf_map_lookup_batch
// reads thousands of entries a system call (65,536 peers: two calls a key and
// a Buffer each through mapKeys and mapLookup were most of a restart's sync);
// a map type or kernel without it (EINVAL, ENOTSUPP) is walked key by key.
static Napi::Value MapEntriesPacked(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "fd");
  uint32_t keySize = ArgU32(info, 1, "keySize");
  uint32_t valueLen = ArgU32(info, 2, "valueLen");
  std::string label = ArgLabel(info, 3, "map fd " + std::to_string(fd));
  // Entries per call (a test asks for a few, to read a small map in several calls).
  const __u32 chunk = info.Length() > 4 && info[4].IsNumber() ? ArgU32(info, 4, "chunk") : 4096;
  if (chunk == 0) ThrowErrno(env, "mapEntriesPacked(" + label + "): chunk 0", EINVAL);
  std::vector<uint8_t> keys, values;
  size_t n = 0;
  bool batched = true;
  // The batch token: the last key for most map types, a bucket number (4 bytes) for hash maps.
  size_t tokenSize = keySize > 8 ? keySize : 8;
  std::vector<uint8_t> token(tokenSize), nextToken(tokenSize);
  void* in = nullptr;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  for (;;) {
    keys.resize((n + chunk) * keySize);
    values.resize((n + chunk) * valueLen);
    __u32 got = chunk;
    int ret = bpf_map_lookup_batch(fd, in, nextToken.data(), keys.data() + n * keySize, values.data() + n * valueLen, &got, &opts);
    if (ret && ret != -ENOENT) {
      if (in == nullptr && (ret == -EINVAL || ret == -kENOTSUPP || ret == -EOPNOTSUPP)) {
        n = 0;
        keys.clear();
        values.clear();
        batched = false;
        WalkEntries(env, fd, keySize, valueLen, label, keys, values, n);
        break;
      }
      ThrowErrno(env, "bpf_map_lookup_batch(" + label + ")", -ret);
    }
    n += got;
    if (ret == -ENOENT) break;
    token.swap(nextToken);
    in = token.data();
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), n * keySize));
  out.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), n * valueLen));
  out.Set("count", Napi::Number::New(env, static_cast<double>(n)));
  out.Set("batched", Napi::Boolean::New(env, batched));
  return out;
}

Napi::Object InitBpfMap(Napi::Env env, Napi::Object exports) {
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup, "mapLookup"));
  exports.Set("mapPresentUntil", Napi::Function::New(env, MapPresentUntil, "mapPresentUntil"));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate, "mapUpdate"));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete, "mapDelete"));
  exports.Set("mapKeys", Napi::Function::New(env, MapKeys, "mapKeys"));
  exports.Set("mapUpdateBatch", Napi::Function::New(env, MapUpdateBatch, "mapUpdateBatch"));
  exports.Set("mapUpdateBatchAsync", Napi::Function::New(env, MapUpdateBatchAsync, "mapUpdateBatchAsync"));
  exports.Set("mapEntriesPacked", Napi::Function::New(env, MapEntriesPacked, "mapEntriesPacked"));
  return exports;
}

}  // namespace weft
