#include <node_api.h>
#include <lz4.h>
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

/* Per thread: worker threads load this same module and compress at the same time. */
static __thread void *state;

/* compressInto(src: Uint8Array, dst: Uint8Array): number (0 when dst is too small) */
static napi_value compress_into(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *src, *dst;
  size_t src_len, dst_len;
  if (argc < 2 || !u8_arg(env, argv[0], &src, &src_len) || !u8_arg(env, argv[1], &dst, &dst_len)) return throw_error(env, "compressInto(src, dst) takes two Uint8Arrays");
  if (src_len > LZ4_MAX_INPUT_SIZE || dst_len > 0x7fffffff) return throw_error(env, "compressInto: input too large");
  if (!state) state = malloc(LZ4_sizeofState());
  int n = LZ4_compress_fast_extState(state, src, dst, (int)src_len, (int)dst_len, 1);
  napi_value out;
  napi_create_int32(env, n, &out);
  return out;
}

/* decompressInto(src, dst): number of bytes written, or -1 for corrupt input / too small dst */
static napi_value decompress_into(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *src, *dst;
  size_t src_len, dst_len;
  if (argc < 2 || !u8_arg(env, argv[0], &src, &src_len) || !u8_arg(env, argv[1], &dst, &dst_len)) return throw_error(env, "decompressInto(src, dst) takes two Uint8Arrays");
  if (src_len > 0x7fffffff || dst_len > 0x7fffffff) return throw_error(env, "decompressInto: buffer too large");
  int n = LZ4_decompress_safe(src, dst, (int)src_len, (int)dst_len);
  napi_value out;
  napi_create_int32(env, n < 0 ? -1 : n, &out);
  return out;
}

static napi_value compress_bound(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t n = 0;
  napi_get_value_int64(env, argv[0], &n);
  napi_value out;
  napi_create_int32(env, LZ4_compressBound((int)n), &out);
  return out;
}

/* CRC-32C (Castagnoli), reflected polynomial 0x82F63B78: SSE4.2 instruction when the CPU has it. */
static uint32_t crc_table[8][256];

static void crc_init(void) {
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

static int have_hw_crc;

/* crc32c(data: Uint8Array, initial?: number): number */
static napi_value crc32c(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *data;
  size_t len;
  if (argc < 1 || !u8_arg(env, argv[0], &data, &len)) return throw_error(env, "crc32c(data) takes a Uint8Array");
  uint32_t crc = 0;
  if (argc > 1) napi_get_value_uint32(env, argv[1], &crc);
  crc = ~crc;
#if defined(__x86_64__)
  crc = have_hw_crc ? crc_hw(crc, data, len) : crc_sw(crc, data, len);
#else
  crc = crc_sw(crc, data, len);
#endif
  napi_value out;
  napi_create_uint32(env, ~crc, &out);
  return out;
}

NAPI_MODULE_INIT() {
  crc_init();
#if defined(__x86_64__)
  __builtin_cpu_init();
  have_hw_crc = __builtin_cpu_supports("sse4.2");
#endif
  export_function(env, exports, "compressInto", compress_into);
  export_function(env, exports, "decompressInto", decompress_into);
  export_function(env, exports, "compressBound", compress_bound);
  export_function(env, exports, "crc32c", crc32c);
  register_gzip_inflate(env, exports);
  register_zstd_chunk(env, exports);
  register_zran_inflate(env, exports);
  return exports;
}
