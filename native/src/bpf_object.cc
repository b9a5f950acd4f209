// BPF objects (open + load with map pinning) and BPF_PROG_TEST_RUN.
// Programs and maps leave an object as dup'ed fds, so their lifetime is the
// caller's business and closing the object never pulls one out from under a
// live handle.
#include <fcntl.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "bpf_util.h"

namespace weft {
using namespace bpfutil;

namespace {
class BpfObjectWrap : public Napi::ObjectWrap<BpfObjectWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "BpfObjectNative",
                       {
                           InstanceMethod("programs", &BpfObjectWrap::Programs),
                           InstanceMethod("maps", &BpfObjectWrap::Maps),
                           InstanceMethod("programFd", &BpfObjectWrap::ProgramFd),
                           InstanceMethod("mapFd", &BpfObjectWrap::MapFd),
                           InstanceMethod("close", &BpfObjectWrap::Close),
                       });
  }

  // new BpfObjectNative(path, pinRoot?: string), or (path, External<bpf_object>) from loadAsync: the object loaded already.
  explicit BpfObjectWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObjectWrap>(info) {
    Napi::Env env = info.Env();
    path_ = ArgString(info, 0, "path");
    if (info.Length() > 1 && info[1].IsExternal()) {
      obj_ = info[1].As<Napi::External<struct bpf_object>>().Data();
      return;
    }
    std::string pinRoot;
    if (info.Length() > 1 && info[1].IsString()) pinRoot = info[1].As<Napi::String>();
    LogCapture log;
    LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pinRoot.empty() ? nullptr : pinRoot.c_str());
    obj_ = bpf_object__open_file(path_.c_str(), &opts);
    if (!obj_) {
      int err = errno ? errno : EINVAL;
      ThrowErrnoWithLog(env, "bpf_object__open_file(" + path_ + ")", err, log);
    }
    // libbpf falls back to /sys/fs/bpf for maps declared pinned; without a
    // pin root the caller asked for private maps, so drop their pin paths.
    if (pinRoot.empty()) {
      struct bpf_map* m;
      bpf_object__for_each_map(m, obj_) {
        int r = bpf_map__set_pin_path(m, nullptr);
        if (r) {
          bpf_object__close(obj_);
          obj_ = nullptr;
          ThrowErrno(env, "bpf_map__set_pin_path(" + path_ + ", " + bpf_map__name(m) + ")", -r);
        }
      }
    }
    int ret = bpf_object__load(obj_);
    if (ret) {
      bpf_object__close(obj_);
      obj_ = nullptr;
      ThrowErrnoWithLog(env, "bpf_object__load(" + path_ + ")", -ret, log);
    }
  }

  ~BpfObjectWrap() override {
    if (obj_) bpf_object__close(obj_);
  }

 private:
  struct bpf_object* Obj(Napi::Env env, const char* what) {
    if (!obj_) ThrowErrno(env, std::string(what) + "(" + path_ + ", closed object)", EBADF);
    return obj_;
  }

  // [{ name, section }]
  Napi::Value Programs(const Napi::CallbackInfo& info) {
    struct bpf_object* obj = Obj(info.Env(), "programs");
    Napi::Array out = Napi::Array::New(info.Env());
    struct bpf_program* p;
    uint32_t i = 0;
    bpf_object__for_each_program(p, obj) {
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("name", bpf_program__name(p));
      o.Set("section", bpf_program__section_name(p));
      out.Set(i++, o);
    }
    return out;
  }

  // [{ name, internal, pinPath }]; internal = .data/.rodata/.bss/.kconfig
  Napi::Value Maps(const Napi::CallbackInfo& info) {
    struct bpf_object* obj = Obj(info.Env(), "maps");
    Napi::Array out = Napi::Array::New(info.Env());
    struct bpf_map* m;
    uint32_t i = 0;
    bpf_object__for_each_map(m, obj) {
      Napi::Object o = Napi::Object::New(info.Env());
      o.Set("name", bpf_map__name(m));
      o.Set("internal", bpf_map__is_internal(m));
      const char* pin = bpf_map__pin_path(m);
      if (pin && bpf_map__is_pinned(m)) o.Set("pinPath", pin);
      out.Set(i++, o);
    }
    return out;
  }

  Napi::Value ProgramFd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name = ArgString(info, 0, "name");
    struct bpf_program* p = bpf_object__find_program_by_name(Obj(env, "programFd"), name.c_str());
    if (!p) ThrowErrno(env, "bpf_object__find_program_by_name(" + path_ + ", " + name + ")", ENOENT);
    return Dup(env, bpf_program__fd(p), "program " + name);
  }

  Napi::Value MapFd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::string name = ArgString(info, 0, "name");
    struct bpf_map* m = bpf_object__find_map_by_name(Obj(env, "mapFd"), name.c_str());
    if (!m) ThrowErrno(env, "bpf_object__find_map_by_name(" + path_ + ", " + name + ")", ENOENT);
    return Dup(env, bpf_map__fd(m), "map " + name);
  }

  Napi::Value Dup(Napi::Env env, int fd, const std::string& what) {
    if (fd < 0) ThrowErrno(env, "fd of " + what + " in " + path_, -fd);
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (nfd < 0) ThrowErrno(env, "fcntl(F_DUPFD_CLOEXEC, " + what + ")", errno);
    return Napi::Number::New(env, nfd);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (obj_) bpf_object__close(obj_);
    obj_ = nullptr;
    return info.Env().Undefined();
  }

  std::string path_;
  struct bpf_object* obj_ = nullptr;
};
}  // namespace

// progTestRun(fd, data, dataSizeOut, repeat, ctx | null, label)
//   -> { retval, data, durationNs, ctx? }
static Napi::Value ProgTestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "fd");
  Napi::Buffer<uint8_t> data = ArgBuffer(info, 1, "data");
  uint32_t outSize = ArgU32(info, 2, "dataSizeOut");
  uint32_t repeat = ArgU32(info, 3, "repeat");
  bool hasCtx = info.Length() > 4 && info[4].IsBuffer();
  std::string label = ArgLabel(info, 5, "prog fd " + std::to_string(fd));

  std::vector<uint8_t> out(outSize);
  std::vector<uint8_t> ctxIn, ctxOut;
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  opts.data_in = data.Data();
  opts.data_size_in = static_cast<__u32>(data.Length());
  opts.data_out = out.data();
  opts.data_size_out = outSize;
  opts.repeat = static_cast<int>(repeat);
  if (hasCtx) {
    Napi::Buffer<uint8_t> ctx = info[4].As<Napi::Buffer<uint8_t>>();
    ctxIn.assign(ctx.Data(), ctx.Data() + ctx.Length());
    ctxOut.resize(ctxIn.size());
    opts.ctx_in = ctxIn.data();
    opts.ctx_size_in = static_cast<__u32>(ctxIn.size());
    opts.ctx_out = ctxOut.data();
    opts.ctx_size_out = static_cast<__u32>(ctxOut.size());
  }
  LogCapture log;
  int ret = bpf_prog_test_run_opts(fd, &opts);
  if (ret) {
    std::string detail;
    if (-ret == ENOSPC)
      detail = "output is " + std::to_string(opts.data_size_out) + " bytes, dataSizeOut was " +
               std::to_string(outSize);
    throw ErrnoErrorWithDetail(env, "bpf_prog_test_run_opts(" + label + ")", -ret, detail);
  }
  Napi::Object r = Napi::Object::New(env);
  r.Set("retval", opts.retval);
  r.Set("data", Napi::Buffer<uint8_t>::Copy(env, out.data(), opts.data_size_out));
  r.Set("durationNs", opts.duration);
  if (hasCtx) r.Set("ctx", Napi::Buffer<uint8_t>::Copy(env, ctxOut.data(), opts.ctx_size_out));
  return r;
}

namespace {
// Opens and loads an object with its maps pinned under pinRoot (or private)
// on a libuv thread, then hands it to a new BpfObjectNative: the verifier
// runs while the event loop goes on. The constructor comes from the caller,
// so nothing here is global to the process (worker threads load the addon too).
class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, std::string path, std::string pinRoot, Napi::Function ctor)
      : Napi::AsyncWorker(env),
        path_(std::move(path)),
        pinRoot_(std::move(pinRoot)),
        ctor_(Napi::Persistent(ctor)),
        deferred_(Napi::Promise::Deferred::New(env)) {}

  ~LoadWorker() override {
    if (obj_) bpf_object__close(obj_);
  }

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    LogCapture log;
    LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pinRoot_.empty() ? nullptr : pinRoot_.c_str());
    obj_ = bpf_object__open_file(path_.c_str(), &opts);
    if (!obj_) {
      Fail(errno ? errno : EINVAL, "bpf_object__open_file(" + path_ + ")", log);
      return;
    }
    if (pinRoot_.empty()) {
      struct bpf_map* m;
      bpf_object__for_each_map(m, obj_) {
        int r = bpf_map__set_pin_path(m, nullptr);
        if (r) {
          Fail(-r, "bpf_map__set_pin_path(" + path_ + ", " + bpf_map__name(m) + ")", log);
          return;
        }
      }
    }
    int ret = bpf_object__load(obj_);
    if (ret) Fail(-ret, "bpf_object__load(" + path_ + ")", log);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (err_) {
      deferred_.Reject(ErrnoErrorWithDetail(env, call_, err_, detail_).Value());
      return;
    }
    struct bpf_object* obj = obj_;
    obj_ = nullptr;  // the wrap owns it from here
    deferred_.Resolve(ctor_.New({Napi::String::New(env, path_), Napi::External<struct bpf_object>::New(env, obj)}));
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  void Fail(int err, std::string call, LogCapture& log) {
    err_ = err;
    call_ = std::move(call);
    detail_ = log.Tail(30);
    if (obj_) bpf_object__close(obj_);
    obj_ = nullptr;
  }

  std::string path_;
  std::string pinRoot_;
  Napi::FunctionReference ctor_;
  Napi::Promise::Deferred deferred_;
  struct bpf_object* obj_ = nullptr;
  int err_ = 0;
  std::string call_;
  std::string detail_;
};
}  // namespace

// loadAsync(path, pinRoot: string ('' for private maps), BpfObjectNative) -> Promise<BpfObjectNative>
static Napi::Value LoadAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info, 0, "path");
  std::string pinRoot = ArgString(info, 1, "pinRoot");
  if (info.Length() < 3 || !info[2].IsFunction()) ThrowErrno(env, "loadAsync(" + path + "): no constructor", EINVAL);
  auto* w = new LoadWorker(env, path, pinRoot, info[2].As<Napi::Function>());
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

Napi::Object InitBpfObject(Napi::Env env, Napi::Object exports) {
  exports.Set("loadAsync", Napi::Function::New(env, LoadAsync, "loadAsync"));
  exports.Set("BpfObjectNative", BpfObjectWrap::Define(env));
  exports.Set("progTestRun", Napi::Function::New(env, ProgTestRun, "progTestRun"));
  return exports;
}

}  // namespace weft
