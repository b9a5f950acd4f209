// weft_native: a thin binding over libbpf (bpf.cc), libnl-route-3 (netlink.cc), flock (lock.cc) and malloc_trim (memory.cc).
// Policy lives in TypeScript; this layer only translates calls and errors.
#include <napi.h>

namespace weft {
Napi::Object InitBpf(Napi::Env env, Napi::Object exports);
Napi::Object InitNetlink(Napi::Env env, Napi::Object exports);
Napi::Object InitNetns(Napi::Env env, Napi::Object exports);
Napi::Object InitNetlinkCt(Napi::Env env, Napi::Object exports);
Napi::Object InitLock(Napi::Env env, Napi::Object exports);
Napi::Object InitMemory(Napi::Env env, Napi::Object exports);
Napi::Object InitNotify(Napi::Env env, Napi::Object exports);
}  // namespace weft

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Object bpf = Napi::Object::New(env);
  Napi::Object netlink = Napi::Object::New(env);
  exports.Set("bpf", weft::InitBpf(env, bpf));
  exports.Set("netlink", weft::InitNetlink(env, netlink));
  exports.Set("netns", weft::InitNetns(env, Napi::Object::New(env)));
  exports.Set("conntrack", weft::InitNetlinkCt(env, Napi::Object::New(env)));
  exports.Set("lock", weft::InitLock(env, Napi::Object::New(env)));
  exports.Set("memory", weft::InitMemory(env, Napi::Object::New(env)));
  exports.Set("notify", weft::InitNotify(env, Napi::Object::New(env)));
  return exports;
}

NODE_API_MODULE(weft_native, Init)
