// Node-API addon of teleboot-agent, called once when its boot is over
// (agent/boot-memory.ts says why):
//   lowMemoryNotification()   V8's own "shrink now": full collections that
//                             give back the boot's young generation at once
//   dropResidentPages(s, n)   madvise(MADV_DONTNEED) on a range the agent
//                             chose: read-only mappings of its executable
//                             with no private copy of a page. The pages stay
//                             in the page cache; the process maps them again
//                             at its next touch.
// The first is V8's C++ API, so the addon is built against the very Node.js
// the single executable is made of (packaging/build/addon.ts).
#define NAPI_VERSION 8
#include <errno.h>
#include <node_api.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <v8.h>

static napi_value DropResidentPages(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint64_t start = 0, length = 0;
  bool lossless = false;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) != napi_ok || argc != 2 ||
      napi_get_value_bigint_uint64(env, argv[0], &start, &lossless) != napi_ok || !lossless ||
      napi_get_value_bigint_uint64(env, argv[1], &length, &lossless) != napi_ok || !lossless) {
    napi_throw_type_error(env, nullptr, "dropResidentPages(start: bigint, length: bigint)");
    return nullptr;
  }
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (start % page != 0 || length % page != 0 || length == 0) {
    napi_throw_range_error(env, nullptr, "dropResidentPages: start and length must be whole pages");
    return nullptr;
  }
  if (madvise(reinterpret_cast<void *>(static_cast<uintptr_t>(start)), static_cast<size_t>(length), MADV_DONTNEED) != 0) {
    napi_throw_error(env, nullptr, strerror(errno));
    return nullptr;
  }
  return nullptr;
}

static napi_value LowMemoryNotification(napi_env, napi_callback_info) {
  v8::Isolate::GetCurrent()->LowMemoryNotification();
  return nullptr;
}

static bool Export(napi_env env, napi_value exports, const char *name, napi_callback fn) {
  napi_value value;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, nullptr, &value) == napi_ok &&
         napi_set_named_property(env, exports, name, value) == napi_ok;
}

NAPI_MODULE_INIT() {
  if (!Export(env, exports, "dropResidentPages", DropResidentPages) ||
      !Export(env, exports, "lowMemoryNotification", LowMemoryNotification))
    return nullptr;
  return exports;
}
