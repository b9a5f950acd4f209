#include <napi.h>

#include "errors.h"

namespace weft {
Napi::Object InitNetlink(Napi::Env env, Napi::Object exports) { return exports; }
}  // namespace weft
