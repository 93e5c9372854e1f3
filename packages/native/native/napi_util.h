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

/* Adds function `cb` to `exports` as `name`. */
static inline void export_function(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}

/* Rejects an async job's promise when libuv cancelled the job. */
static inline void reject_cancelled(napi_env env, napi_deferred deferred, const char *msg) {
  napi_value text, err;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, NULL, text, &err);
  napi_reject_deferred(env, deferred, err);
}

#define ASYNC_JOB_MAX_KEEP 4

/* What every thread-pool job holds: its promise, its work and the JS values it keeps alive
 * (the buffers it reads and writes) until it settles. First member of each job struct. */
typedef struct {
  napi_deferred deferred;
  napi_async_work work;
  napi_ref keep[ASYNC_JOB_MAX_KEEP];
  int kept;
} AsyncJob;

/* Keeps values[0..n) alive, queues `job` (whose struct starts with an AsyncJob) on the thread
 * pool and returns its promise. `complete` settles the promise and calls async_job_release. */
static inline napi_value async_job_queue(napi_env env, AsyncJob *job, const napi_value *values, int n, const char *name,
                                         napi_async_execute_callback execute, napi_async_complete_callback complete) {
  napi_value promise, resource_name;
  napi_create_promise(env, &job->deferred, &promise);
  job->kept = n < ASYNC_JOB_MAX_KEEP ? n : ASYNC_JOB_MAX_KEEP;
  for (int i = 0; i < job->kept; i++) napi_create_reference(env, values[i], 1, &job->keep[i]);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  napi_create_async_work(env, NULL, resource_name, execute, complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

/* Lets go of what async_job_queue kept (the job's memory stays the caller's to free). */
static inline void async_job_release(napi_env env, AsyncJob *job) {
  for (int i = 0; i < job->kept; i++) napi_delete_reference(env, job->keep[i]);
  napi_delete_async_work(env, job->work);
}

#endif
