// What the agent gives back once its start is over.
//
// malloc_trim(0): hands the C heap's free pages back to the kernel. Buffers
// live there, outside V8's heap: an agent's start fills it with pages of
// etcd answers and batches of map entries, and glibc keeps what they freed,
// so the start's high-water mark stayed in the agent's RSS.
//
// Isolate::LowMemoryNotification(): V8's full collection for memory, the one
// call that also shrinks the young generation back to its first size. The
// start lets it grow (a 1 MB semi-space scavenged 340 times, 0.5 s, while
// 65,536 leases were decoded; at 16 MB, 30 times and 0.25 s); once the agent
// is ready it is given back. Neither gc() nor its 'last-resort' flavour
// shrinks it on Node 20, and N-API has no such call: this one is V8's API.
#include <malloc.h>

#include <napi.h>
#include <v8.h>

namespace weft {

// mallocTrim() -> whether any memory went back to the kernel.
static Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1);
}

// lowMemoryNotification(): collects everything V8 can and shrinks its spaces.
static Napi::Value LowMemoryNotification(const Napi::CallbackInfo& info) {
  v8::Isolate::GetCurrent()->LowMemoryNotification();
  return info.Env().Undefined();
}

Napi::Object InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("mallocTrim", Napi::Function::New(env, MallocTrim, "mallocTrim"));
  exports.Set("lowMemoryNotification", Napi::Function::New(env, LowMemoryNotification, "lowMemoryNotification"));
  return exports;
}

}  // namespace weft
