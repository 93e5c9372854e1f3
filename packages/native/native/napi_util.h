#ifndef NYDUS_NAPI_UTIL_H
#define NYDUS_NAPI_UTIL_H
/* Argument and error helpers shared by the addon's source files. */
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>

static inline napi_value throw_error(napi_env env, const char *msg) {
  napi_throw_error(env, NULL, msg);
  return NULL;
}

/* True when v is a typed array of type `want`; sets its data pointer and element count. */
static inline int typed_arg(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  bool is_typed;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  return napi_get_typedarray_info(env, v, &type, len, data, &ab, &offset) == napi_ok && type == want;
}

static inline int u8_arg(napi_env env, napi_value v, void **data, size_t *len) {
  return typed_arg(env, v, napi_uint8_array, data, len);
}

/* Rejects an async job's promise when libuv cancelled the job. */
static inline void reject_cancelled(napi_env env, napi_deferred deferred, const char *msg) {
  napi_value text, err;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, NULL, text, &err);
  napi_reject_deferred(env, deferred, err);
}

#endif
