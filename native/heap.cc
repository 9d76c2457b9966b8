/*
 * reduceHeap(level): tell V8 that memory is wanted back, for src/util/heap-shrink.ts once config churn has settled
 * (Envoy's overload manager shrinks its heap the same way: a hint, at a moment the proxy chooses). V8 has no way to
 * ask for a memory-reducing GC from JavaScript short of --expose-gc; the embedder API has one,
 * Isolate::MemoryPressureNotification:
 *   level 1 (moderate): starts incremental marking with the reduce-memory flag when none is running; the marking runs
 *     in small steps and on V8's worker thread, then one pause finishes it (and compacts the pages it picked).
 *   level 2 (critical): one atomic memory-reducing full GC now (a pause as long as marking the whole heap).
 * The pressure level is set back to none at once: only the GC started here is memory-reducing, the heap's growth
 * heuristics stay as they were. Also, with glibc, mallocTrim(): malloc_trim(0), returning free malloc memory.
 *
 *   reduceHeap(level: 1 | 2): void
 *   mallocTrim(): boolean   whether memory was released (false without glibc)
 */
#include <node_api.h>
#include <v8.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

extern "C" napi_value reduce_heap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t level = 1;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) == napi_ok && argc >= 1) napi_get_value_int32(env, argv[0], &level);
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr) {
    isolate->MemoryPressureNotification(level >= 2 ? v8::MemoryPressureLevel::kCritical : v8::MemoryPressureLevel::kModerate);
    isolate->MemoryPressureNotification(v8::MemoryPressureLevel::kNone);
  }
  return nullptr;
}

extern "C" napi_value malloc_trim_now(napi_env env, napi_callback_info info) {
  (void)info;
  bool released = false;
#if defined(__GLIBC__)
  released = malloc_trim(0) != 0;
#endif
  napi_value out;
  napi_get_boolean(env, released, &out);
  return out;
}
