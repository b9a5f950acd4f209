#include <napi.h>

#include "errors.h"

namespace weft {
Napi::Object InitBpf(Napi::Env env, Napi::Object exports) { return exports; }
}  // namespace weft
