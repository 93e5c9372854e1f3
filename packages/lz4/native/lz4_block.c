#include <node_api.h>
#include <lz4.h>
#include <stdlib.h>

static void *state;

static napi_value fail(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static int buffer_arg(napi_env env, napi_value v, void **data, size_t *len) {
  bool is_typed;
  napi_is_typedarray(env, v, &is_typed);
  if (!is_typed) return 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  if (napi_get_typedarray_info(env, v, &type, len, data, &ab, &offset) != napi_ok || type != napi_uint8_array) return 0;
  return 1;
}

/* compressInto(src: Uint8Array, dst: Uint8Array): number (0 when dst is too small) */
static napi_value compress_into(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *src, *dst;
  size_t src_len, dst_len;
  if (argc < 2 || !buffer_arg(env, argv[0], &src, &src_len) || !buffer_arg(env, argv[1], &dst, &dst_len)) return fail(env, "compressInto(src, dst) takes two Uint8Arrays");
  if (src_len > LZ4_MAX_INPUT_SIZE || dst_len > 0x7fffffff) return fail(env, "compressInto: input too large");
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
  if (argc < 2 || !buffer_arg(env, argv[0], &src, &src_len) || !buffer_arg(env, argv[1], &dst, &dst_len)) return fail(env, "decompressInto(src, dst) takes two Uint8Arrays");
  if (src_len > 0x7fffffff || dst_len > 0x7fffffff) return fail(env, "decompressInto: buffer too large");
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

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "compressInto", NAPI_AUTO_LENGTH, compress_into, NULL, &fn);
  napi_set_named_property(env, exports, "compressInto", fn);
  napi_create_function(env, "decompressInto", NAPI_AUTO_LENGTH, decompress_into, NULL, &fn);
  napi_set_named_property(env, exports, "decompressInto", fn);
  napi_create_function(env, "compressBound", NAPI_AUTO_LENGTH, compress_bound, NULL, &fn);
  napi_set_named_property(env, exports, "compressBound", fn);
  return exports;
}
