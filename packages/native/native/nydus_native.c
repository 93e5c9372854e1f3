#include <node_api.h>
#include <lz4.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "gzip_inflate.h"
#include "napi_util.h"
#include "zran_inflate.h"
#include "zstd_chunk.h"
#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

/* LZ4 state per thread (worker threads load this same module and compress at the same time),
 * freed when its thread exits. */
static pthread_key_t lz4_state_key;
static int lz4_state_key_ok;
static pthread_once_t lz4_state_key_once = PTHREAD_ONCE_INIT;

int nydus_live_thread_states;

static void free_lz4_state(void *state) {
  free(state);
  THREAD_STATE_FREED();
}
static void make_lz4_state_key(void) { lz4_state_key_ok = pthread_key_create(&lz4_state_key, free_lz4_state) == 0; }

static void *thread_lz4_state(void) {
  pthread_once(&lz4_state_key_once, make_lz4_state_key);
  if (!lz4_state_key_ok) return NULL;
  void *state = pthread_getspecific(lz4_state_key);
  if (!state) {
    state = malloc(LZ4_sizeofState());
    if (state && pthread_setspecific(lz4_state_key, state) != 0) {
      free(state);
      state = NULL;
    }
    if (state) THREAD_STATE_MADE();
  }
  return state;
}

/* compressInto(src: Uint8Array, dst: Uint8Array): number (0 when dst is too small) */
static napi_value compress_into(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) argc = 0;
  void *src, *dst;
  size_t src_len, dst_len;
  if (argc < 2 || !u8_arg(env, argv[0], &src, &src_len) || !u8_arg(env, argv[1], &dst, &dst_len)) return throw_error(env, "compressInto(src, dst) takes two Uint8Arrays");
  if (src_len > LZ4_MAX_INPUT_SIZE || dst_len > 0x7fffffff) return throw_error(env, "compressInto: input too large");
  void *state = thread_lz4_state();
  if (!state) return throw_error(env, "compressInto: out of memory");
  int n = LZ4_compress_fast_extState(state, src, dst, (int)src_len, (int)dst_len, 1);
  napi_value out;
  return napi_create_int32(env, n, &out) == napi_ok ? out : throw_error(env, "compressInto: cannot create the result");
}

/* decompressInto(src, dst): number of bytes written, or -1 for corrupt input / too small dst */
static napi_value decompress_into(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) argc = 0;
  void *src, *dst;
  size_t src_len, dst_len;
  if (argc < 2 || !u8_arg(env, argv[0], &src, &src_len) || !u8_arg(env, argv[1], &dst, &dst_len)) return throw_error(env, "decompressInto(src, dst) takes two Uint8Arrays");
  if (src_len > 0x7fffffff || dst_len > 0x7fffffff) return throw_error(env, "decompressInto: buffer too large");
  int n = LZ4_decompress_safe(src, dst, (int)src_len, (int)dst_len);
  napi_value out;
  return napi_create_int32(env, n < 0 ? -1 : n, &out) == napi_ok ? out : throw_error(env, "decompressInto: cannot create the result");
}

static napi_value compress_bound(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) argc = 0;
  int64_t n = 0;
  if (argc < 1 || napi_get_value_int64(env, argv[0], &n) != napi_ok || n < 0 || n > LZ4_MAX_INPUT_SIZE) return throw_error(env, "compressBound(size): bad size");
  napi_value out;
  return napi_create_int32(env, LZ4_compressBound((int)n), &out) == napi_ok ? out : throw_error(env, "compressBound: cannot create the result");
}

/* CRC-32C (Castagnoli), reflected polynomial 0x82F63B78: SSE4.2 instruction when the CPU has it. */
static uint32_t crc_table[8][256];
static int have_hw_crc;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

/* Run once per process (every worker thread's load of the module shares the table). */
static void crc_init(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  have_hw_crc = __builtin_cpu_supports("sse4.2");
#endif
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    crc_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++)
    for (int t = 1; t < 8; t++) crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t n) {
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    v ^= crc;
    crc = crc_table[7][v & 0xff] ^ crc_table[6][(v >> 8) & 0xff] ^ crc_table[5][(v >> 16) & 0xff] ^ crc_table[4][(v >> 24) & 0xff] ^
          crc_table[3][(v >> 32) & 0xff] ^ crc_table[2][(v >> 40) & 0xff] ^ crc_table[1][(v >> 48) & 0xff] ^ crc_table[0][v >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n) {
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = (uint32_t)c;
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}
#endif

/* crc32c(data: Uint8Array, initial?: number): number */
static napi_value crc32c(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) argc = 0;
  void *data;
  size_t len;
  if (argc < 1 || !u8_arg(env, argv[0], &data, &len)) return throw_error(env, "crc32c(data) takes a Uint8Array");
  uint32_t crc = 0;
  if (argc > 1 && napi_get_value_uint32(env, argv[1], &crc) != napi_ok) return throw_error(env, "crc32c(data, initial): initial is not a number");
  crc = ~crc;
#if defined(__x86_64__)
  crc = have_hw_crc ? crc_hw(crc, data, len) : crc_sw(crc, data, len);
#else
  crc = crc_sw(crc, data, len);
#endif
  napi_value out;
  return napi_create_uint32(env, ~crc, &out) == napi_ok ? out : throw_error(env, "crc32c: cannot create the result");
}

/* liveThreadStates(): per-thread library states not yet freed by their thread's exit. */
static napi_value live_thread_states(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  int n = __atomic_load_n(&nydus_live_thread_states, __ATOMIC_RELAXED);
  return napi_create_int32(env, n, &out) == napi_ok ? out : throw_error(env, "liveThreadStates: cannot create the result");
}

NAPI_MODULE_INIT() {
  pthread_once(&crc_once, crc_init);
  export_function(env, exports, "compressInto", compress_into);
  export_function(env, exports, "decompressInto", decompress_into);
  export_function(env, exports, "compressBound", compress_bound);
  export_function(env, exports, "crc32c", crc32c);
  export_function(env, exports, "liveThreadStates", live_thread_states);
  register_gzip_inflate(env, exports);
  register_zstd_chunk(env, exports);
  register_zran_inflate(env, exports);
  return exports;
}
