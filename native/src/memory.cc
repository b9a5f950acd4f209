// malloc_trim(0): hands the C heap's free pages back to the kernel. Buffers
// live there, outside V8's heap: an agent's start fills it with pages of
// etcd answers and batches of map entries, and glibc keeps what they freed,
// so the start's high-water mark stayed in the agent's RSS.
#include <malloc.h>

#include <napi.h>

namespace weft {

// mallocTrim() -> whether any memory went back to the kernel.
static Napi::Value MallocTrim(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), malloc_trim(0) == 1);
}

Napi::Object InitMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("mallocTrim", Napi::Function::New(env, MallocTrim, "mallocTrim"));
  return exports;
}

}  // namespace weft
