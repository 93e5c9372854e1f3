/*
 * One-frame zstd compression of a chunk into a caller's buffer (Debian libzstd-dev), inline or on
 * a libuv thread-pool thread. Each thread keeps its own compression context: contexts are costly
 * to create and must never be shared between threads.
 */
#include <node_api.h>
#include <zstd.h>
#include <zstd_errors.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "napi_util.h"
#include "zstd_chunk.h"

/* The context of each thread, freed when the thread exits (worker threads come and go). */
static pthread_key_t cctx_key;
static pthread_once_t cctx_key_once = PTHREAD_ONCE_INIT;

static void free_cctx(void *cctx) { ZSTD_freeCCtx(cctx); }
static void make_cctx_key(void) { pthread_key_create(&cctx_key, free_cctx); }

static ZSTD_CCtx *thread_cctx(void) {
  pthread_once(&cctx_key_once, make_cctx_key);
  ZSTD_CCtx *cctx = pthread_getspecific(cctx_key);
  if (!cctx) {
    cctx = ZSTD_createCCtx();
    if (cctx) pthread_setspecific(cctx_key, cctx);
  }
  return cctx;
}

/* Compressed length, 0 when the frame does not fit in dst, or -1 for another zstd failure. */
static int64_t compress_frame(const void *src, size_t src_len, void *dst, size_t dst_len, int level) {
  ZSTD_CCtx *cctx = thread_cctx();
  if (!cctx) return -1;
  size_t n = ZSTD_compressCCtx(cctx, dst, dst_len, src, src_len, level);
  if (ZSTD_isError(n)) return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? 0 : -1;
  return (int64_t)n;
}

static int compress_args(napi_env env, napi_callback_info info, napi_value *argv, void **src, size_t *src_len, void **dst, size_t *dst_len, int32_t *level) {
  size_t argc = 3;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || !u8_arg(env, argv[0], src, src_len) || !u8_arg(env, argv[1], dst, dst_len)) return 0;
  if (napi_get_value_int32(env, argv[2], level) != napi_ok) return 0;
  return *level >= ZSTD_minCLevel() && *level <= ZSTD_maxCLevel();
}

static napi_value number(napi_env env, int64_t n) {
  napi_value v;
  napi_create_int64(env, n, &v);
  return v;
}

/* zstdCompressInto(src, dst, level): compressed length, 0 when it does not fit, -1 on failure */
static napi_value compress_sync(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  void *src, *dst;
  size_t src_len, dst_len;
  int32_t level;
  if (!compress_args(env, info, argv, &src, &src_len, &dst, &dst_len, &level)) return throw_error(env, "zstdCompressInto(src, dst, level): bad arguments");
  return number(env, compress_frame(src, src_len, dst, dst_len, level));
}

/*
 * A batch: chunk i is src[bounds[i] .. bounds[i+1]), compressed into dst at the same offset with
 * room for one byte less than the chunk (so a frame that does not shrink reports 0).
 */
typedef struct {
  AsyncJob job;
  uint8_t *src, *dst;
  size_t src_len, dst_len;
  uint32_t *bounds;
  int32_t *results;
  size_t count;
  int level;
} BatchJob;

static void batch_execute(napi_env env, void *data) {
  (void)env;
  BatchJob *j = data;
  for (size_t i = 0; i < j->count; i++) {
    uint32_t off = j->bounds[i], size = j->bounds[i + 1] - off;
    j->results[i] = size < 2 ? 0 : (int32_t)compress_frame(j->src + off, size, j->dst + off, size - 1, j->level);
  }
}

static void batch_complete(napi_env env, napi_status status, void *data) {
  BatchJob *j = data;
  if (status == napi_ok) {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, j->job.deferred, undefined);
  } else {
    reject_cancelled(env, j->job.deferred, "zstd compression cancelled");
  }
  async_job_release(env, &j->job);
  free(j);
}

/* zstdCompressBatchAsync(src, dst, bounds: Uint32Array, results: Int32Array, level): Promise<void>;
 * results[i] as zstdCompressInto returns for chunk i. Every array must stay untouched until the
 * promise settles. */
static napi_value batch_async(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *src, *dst, *bounds, *results;
  size_t src_len, dst_len, bounds_len, results_len;
  int32_t level;
  if (argc < 5 || !typed_arg(env, argv[0], napi_uint8_array, &src, &src_len) || !typed_arg(env, argv[1], napi_uint8_array, &dst, &dst_len) ||
      !typed_arg(env, argv[2], napi_uint32_array, &bounds, &bounds_len) || !typed_arg(env, argv[3], napi_int32_array, &results, &results_len) ||
      napi_get_value_int32(env, argv[4], &level) != napi_ok || level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
    return throw_error(env, "zstdCompressBatchAsync(src, dst, bounds, results, level): bad arguments");
  if (bounds_len < 1 || results_len < bounds_len - 1) return throw_error(env, "zstdCompressBatchAsync: results shorter than the batch");
  const uint32_t *b = bounds;
  for (size_t i = 0; i + 1 < bounds_len; i++)
    if (b[i] > b[i + 1]) return throw_error(env, "zstdCompressBatchAsync: bounds must not decrease");
  /* Each chunk needs one byte less of dst than of src: the last one bounds them all. */
  if (b[bounds_len - 1] > src_len || (b[bounds_len - 1] > 0 && b[bounds_len - 1] - 1 > dst_len)) return throw_error(env, "zstdCompressBatchAsync: bounds beyond the buffers");
  BatchJob *j = calloc(1, sizeof(BatchJob));
  if (!j) return throw_error(env, "zstd: out of memory");
  j->src = src;
  j->dst = dst;
  j->src_len = src_len;
  j->dst_len = dst_len;
  j->bounds = bounds;
  j->results = results;
  j->count = bounds_len - 1;
  j->level = level;
  return async_job_queue(env, &j->job, argv, 4, "nydus:zstdCompressBatch", batch_execute, batch_complete);
}

void register_zstd_chunk(napi_env env, napi_value exports) {
  export_function(env, exports, "zstdCompressInto", compress_sync);
  export_function(env, exports, "zstdCompressBatchAsync", batch_async);
}
