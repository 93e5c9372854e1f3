/*
 * zstd with the system library (Debian libzstd-dev) in both directions: one-frame compression of
 * a chunk into a caller's buffer (inline or on a libuv thread-pool thread), decompression of a
 * chunk into a caller's buffer, and streaming decompression of a layer. Each thread keeps its
 * own contexts: contexts are costly to create and must never be shared between threads.
 */
#include <node_api.h>
#include <zstd.h>
#include <zstd_errors.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "napi_util.h"
#include "zstd_chunk.h"

/* The contexts of each thread, freed when the thread exits (worker threads come and go). */
static pthread_key_t cctx_key, dctx_key;
static int keys_ok;
static pthread_once_t keys_once = PTHREAD_ONCE_INIT;

static void free_cctx(void *cctx) {
  ZSTD_freeCCtx(cctx);
  THREAD_STATE_FREED();
}
static void free_dctx(void *dctx) {
  ZSTD_freeDCtx(dctx);
  THREAD_STATE_FREED();
}
static void make_keys(void) {
  keys_ok = pthread_key_create(&cctx_key, free_cctx) == 0 && pthread_key_create(&dctx_key, free_dctx) == 0;
}

static ZSTD_CCtx *thread_cctx(void) {
  pthread_once(&keys_once, make_keys);
  if (!keys_ok) return NULL;
  ZSTD_CCtx *cctx = pthread_getspecific(cctx_key);
  if (!cctx) {
    cctx = ZSTD_createCCtx();
    if (cctx && pthread_setspecific(cctx_key, cctx) != 0) {
      ZSTD_freeCCtx(cctx);
      cctx = NULL;
    }
    if (cctx) THREAD_STATE_MADE();
  }
  return cctx;
}

static ZSTD_DCtx *thread_dctx(void) {
  pthread_once(&keys_once, make_keys);
  if (!keys_ok) return NULL;
  ZSTD_DCtx *dctx = pthread_getspecific(dctx_key);
  if (!dctx) {
    dctx = ZSTD_createDCtx();
    if (dctx && pthread_setspecific(dctx_key, dctx) != 0) {
      ZSTD_freeDCtx(dctx);
      dctx = NULL;
    }
    if (dctx) THREAD_STATE_MADE();
  }
  return dctx;
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
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < 3 || !u8_arg(env, argv[0], src, src_len) || !u8_arg(env, argv[1], dst, dst_len)) return 0;
  if (napi_get_value_int32(env, argv[2], level) != napi_ok) return 0;
  return *level >= ZSTD_minCLevel() && *level <= ZSTD_maxCLevel();
}

static napi_value number(napi_env env, int64_t n) {
  napi_value v;
  if (napi_create_int64(env, n, &v) != napi_ok) return throw_error(env, "zstd: cannot create a number");
  return v;
}

/* As compress_frame, with the frame's content checksum (XXH64) enabled. */
static int64_t compress_frame_checksummed(const void *src, size_t src_len, void *dst, size_t dst_len, int level) {
  ZSTD_CCtx *cctx = thread_cctx();
  if (!cctx) return -1;
  size_t n = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  if (!ZSTD_isError(n)) n = ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  if (!ZSTD_isError(n)) n = ZSTD_compress2(cctx, dst, dst_len, src, src_len);
  /* The context is shared by this thread's other (one-shot, level-only) compressions. */
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  if (ZSTD_isError(n)) return ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? 0 : -1;
  return (int64_t)n;
}

/* zstdCompressInto(src, dst, level[, checksum]): compressed length, 0 when it does not fit, -1 on failure */
static napi_value compress_sync(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  void *src, *dst;
  size_t src_len, dst_len;
  int32_t level;
  bool checksum = false;
  size_t argc = 4;
  if (!compress_args(env, info, argv, &src, &src_len, &dst, &dst_len, &level)) return throw_error(env, "zstdCompressInto(src, dst, level): bad arguments");
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return throw_error(env, "zstdCompressInto: bad arguments");
  if (argc >= 4) {
    napi_valuetype t;
    if (napi_typeof(env, argv[3], &t) != napi_ok) return throw_error(env, "zstdCompressInto: bad arguments");
    if (t != napi_undefined && napi_get_value_bool(env, argv[3], &checksum) != napi_ok) return throw_error(env, "zstdCompressInto(src, dst, level, checksum): checksum must be a boolean");
  }
  return number(env, checksum ? compress_frame_checksummed(src, src_len, dst, dst_len, level) : compress_frame(src, src_len, dst, dst_len, level));
}

/*
 * A batch: chunk i is src[bounds[i] .. bounds[i+1]), compressed into dst at the same offset with
 * room for one byte less than the chunk (so a frame that does not shrink reports 0). The bounds
 * are copied into the job when it is queued and validated there, and the results collected in
 * the job and copied out on the main thread: the thread pool reads no JS array but the data
 * buffers, which the job keeps referenced (and the JS side marks untransferable).
 */
typedef struct {
  AsyncJob job;
  uint8_t *src, *dst;
  size_t count;
  int level;
  uint32_t *bounds;  /* count + 1 entries, in this allocation */
  int32_t *results;  /* count entries, in this allocation */
} BatchJob;

static void batch_execute(napi_env env, void *data) {
  (void)env;
  BatchJob *j = data;
  for (size_t i = 0; i < j->count; i++) {
    uint32_t off = j->bounds[i], size = j->bounds[i + 1] - off;
    j->results[i] = size < 2 ? 0 : (int32_t)compress_frame(j->src + off, size, j->dst + off, size - 1, j->level);
  }
}

/* Copies the results into the caller's Int32Array (kept as the job's fourth value). */
static int copy_results(napi_env env, BatchJob *j) {
  napi_value results;
  void *data;
  size_t len;
  if (j->job.kept < 4 || napi_get_reference_value(env, j->job.keep[3], &results) != napi_ok || !typed_arg(env, results, napi_int32_array, &data, &len) ||
      len < j->count)
    return 0;
  if (j->count > 0) memcpy(data, j->results, j->count * sizeof(int32_t));
  return 1;
}

static void batch_complete(napi_env env, napi_status status, void *data) {
  BatchJob *j = data;
  napi_value undefined;
  if (status != napi_ok) {
    reject_cancelled(env, j->job.deferred, "zstd compression cancelled");
  } else if (!copy_results(env, j)) {
    reject_cancelled(env, j->job.deferred, "zstdCompressBatchAsync: the results array changed while the batch ran");
  } else if (napi_get_undefined(env, &undefined) != napi_ok || napi_resolve_deferred(env, j->job.deferred, undefined) != napi_ok) {
    reject_cancelled(env, j->job.deferred, "zstdCompressBatchAsync: cannot resolve the promise");
  }
  async_job_release(env, &j->job);
  free(j);
}

/* zstdCompressBatchAsync(src, dst, bounds: Uint32Array, results: Int32Array, level): Promise<void>;
 * results[i] as zstdCompressInto returns for chunk i. src and dst must stay untouched until the
 * promise settles; bounds may change at once, results is written when the promise settles. */
static napi_value batch_async(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  void *src, *dst, *bounds, *results;
  size_t src_len, dst_len, bounds_len, results_len;
  int32_t level;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5 || !typed_arg(env, argv[0], napi_uint8_array, &src, &src_len) ||
      !typed_arg(env, argv[1], napi_uint8_array, &dst, &dst_len) || !typed_arg(env, argv[2], napi_uint32_array, &bounds, &bounds_len) ||
      !typed_arg(env, argv[3], napi_int32_array, &results, &results_len) || napi_get_value_int32(env, argv[4], &level) != napi_ok ||
      level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
    return throw_error(env, "zstdCompressBatchAsync(src, dst, bounds, results, level): bad arguments");
  if (bounds_len < 1 || results_len < bounds_len - 1) return throw_error(env, "zstdCompressBatchAsync: results shorter than the batch");
  size_t count = bounds_len - 1;
  if (count > (SIZE_MAX - sizeof(BatchJob)) / (2 * sizeof(uint32_t))) return throw_error(env, "zstdCompressBatchAsync: batch too large");
  BatchJob *j = calloc(1, sizeof(BatchJob) + (count + 1) * sizeof(uint32_t) + count * sizeof(int32_t));
  if (!j) return throw_error(env, "zstdCompressBatchAsync: out of memory");
  j->bounds = (uint32_t *)(j + 1);
  j->results = (int32_t *)(j->bounds + count + 1);
  memcpy(j->bounds, bounds, (count + 1) * sizeof(uint32_t));
  const uint32_t *b = j->bounds;
  const char *bad = NULL;
  for (size_t i = 0; i < count && !bad; i++)
    if (b[i] > b[i + 1]) bad = "zstdCompressBatchAsync: bounds must not decrease";
  /* Each chunk needs one byte less of dst than of src: the last one bounds them all. */
  if (!bad && (b[count] > src_len || (b[count] > 0 && b[count] - 1 > dst_len))) bad = "zstdCompressBatchAsync: bounds beyond the buffers";
  if (bad) {
    free(j);
    return throw_error(env, bad);
  }
  j->src = src;
  j->dst = dst;
  j->count = count;
  j->level = level;
  return async_job_queue(env, &j->job, argv, 4, "nydus:zstdCompressBatch", batch_execute, batch_complete);
}

/* zstdDecompressInto(src, dst): bytes written, or minus the zstd error code. Every frame of src
 * (skippable frames are skipped) goes into dst, never past it. */
static napi_value decompress_sync(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void *src, *dst;
  size_t src_len, dst_len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || !u8_arg(env, argv[0], &src, &src_len) || !u8_arg(env, argv[1], &dst, &dst_len))
    return throw_error(env, "zstdDecompressInto(src, dst): bad arguments");
  ZSTD_DCtx *dctx = thread_dctx();
  if (!dctx) return throw_error(env, "zstd: out of memory");
  size_t n = ZSTD_decompressDCtx(dctx, dst, dst_len, src, src_len);
  return number(env, ZSTD_isError(n) ? -(int64_t)ZSTD_getErrorCode(n) : (int64_t)n);
}

/* zstdFrameContentSize(src): the size the first frame declares, -1 when it declares none, -2
 * when src does not start with a frame header. */
static napi_value frame_content_size(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *src;
  size_t src_len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || !u8_arg(env, argv[0], &src, &src_len))
    return throw_error(env, "zstdFrameContentSize(src): bad arguments");
  unsigned long long size = ZSTD_getFrameContentSize(src, src_len);
  napi_value v;
  double d = size == ZSTD_CONTENTSIZE_UNKNOWN ? -1 : size == ZSTD_CONTENTSIZE_ERROR ? -2 : (double)size;
  if (napi_create_double(env, d, &v) != napi_ok) return throw_error(env, "zstd: cannot create a number");
  return v;
}

/* zstdErrorName(code): zstd's description of an error code. */
static napi_value error_name(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], v;
  int32_t code = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &code) != napi_ok)
    return throw_error(env, "zstdErrorName(code): bad arguments");
  if (napi_create_string_utf8(env, ZSTD_getErrorString((ZSTD_ErrorCode)code), NAPI_AUTO_LENGTH, &v) != napi_ok) return throw_error(env, "zstd: cannot create a string");
  return v;
}

/* Streaming decompression: one context per stream, driven step by step from JS. */
static void stream_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  ZSTD_freeDCtx(data);
}

/* zstdDecompressorCreate(): external */
static napi_value stream_create(napi_env env, napi_callback_info info) {
  (void)info;
  ZSTD_DCtx *dctx = ZSTD_createDCtx();
  if (!dctx) return throw_error(env, "zstd decompressor: out of memory");
  napi_value ext;
  if (napi_create_external(env, dctx, stream_finalize, NULL, &ext) != napi_ok) {
    ZSTD_freeDCtx(dctx);
    return throw_error(env, "zstd decompressor: cannot create handle");
  }
  return ext;
}

/* Step outcomes (>= 0); a zstd error is minus its code. */
#define STEP_MORE 0       /* input used up inside a frame: more input needed */
#define STEP_OUTPUT_FULL 1 /* output full: call again with more room */
#define STEP_FRAME_END 2  /* a frame ended (and was flushed completely) */

/* zstdDecompressStep(handle, input, output): [consumed, produced, status]. Stops at the end of
 * each frame so that the caller knows whether the stream may end where its input does. */
static napi_value stream_step(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  void *in, *out, *handle = NULL;
  size_t in_len, out_len;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3 || napi_get_value_external(env, argv[0], &handle) != napi_ok || !handle ||
      !u8_arg(env, argv[1], &in, &in_len) || !u8_arg(env, argv[2], &out, &out_len) || in_len > UINT32_MAX || out_len > UINT32_MAX)
    return throw_error(env, "zstdDecompressStep(handle, input, output): bad arguments");
  ZSTD_inBuffer input = {in, in_len, 0};
  ZSTD_outBuffer output = {out, out_len, 0};
  int status = STEP_MORE;
  while (input.pos < input.size || output.pos < output.size) {
    size_t in_pos = input.pos, out_pos = output.pos;
    size_t rc = ZSTD_decompressStream(handle, &output, &input);
    if (ZSTD_isError(rc)) {
      status = -(int)ZSTD_getErrorCode(rc);
      break;
    }
    if (rc == 0) {
      status = STEP_FRAME_END;
      break;
    }
    if (output.pos == output.size) {
      status = STEP_OUTPUT_FULL;
      break;
    }
    if (input.pos == input.size || (input.pos == in_pos && output.pos == out_pos)) break; /* STEP_MORE */
  }
  napi_value result, v;
  if (napi_create_array_with_length(env, 3, &result) != napi_ok || napi_create_uint32(env, (uint32_t)input.pos, &v) != napi_ok ||
      napi_set_element(env, result, 0, v) != napi_ok || napi_create_uint32(env, (uint32_t)output.pos, &v) != napi_ok ||
      napi_set_element(env, result, 1, v) != napi_ok || napi_create_int32(env, status, &v) != napi_ok || napi_set_element(env, result, 2, v) != napi_ok)
    return throw_error(env, "zstdDecompressStep: cannot create the result");
  return result;
}

void register_zstd_chunk(napi_env env, napi_value exports) {
  export_function(env, exports, "zstdCompressInto", compress_sync);
  export_function(env, exports, "zstdCompressBatchAsync", batch_async);
  export_function(env, exports, "zstdDecompressInto", decompress_sync);
  export_function(env, exports, "zstdFrameContentSize", frame_content_size);
  export_function(env, exports, "zstdErrorName", error_name);
  export_function(env, exports, "zstdDecompressorCreate", stream_create);
  export_function(env, exports, "zstdDecompressStep", stream_step);
}
