#ifndef NYDUS_NAPI_UTIL_H
#define NYDUS_NAPI_UTIL_H
/* Argument and error helpers shared by the addon's source files. */
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

/* Per-thread library states (LZ4 state, zstd contexts) alive in this process: each is counted
 * when made and uncounted by its thread-exit destructor (liveThreadStates() reads it). */
extern int nydus_live_thread_states;
#define THREAD_STATE_MADE() __atomic_add_fetch(&nydus_live_thread_states, 1, __ATOMIC_RELAXED)
#define THREAD_STATE_FREED() __atomic_sub_fetch(&nydus_live_thread_states, 1, __ATOMIC_RELAXED)

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

/* Rejects an async job's promise with an Error saying `msg` (undefined if even that fails). */
static inline void reject_cancelled(napi_env env, napi_deferred deferred, const char *msg) {
  if (!deferred) return;
  napi_value text, err;
  if (napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text) != napi_ok || napi_create_error(env, NULL, text, &err) != napi_ok)
    napi_get_undefined(env, &err);
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

/* Lets go of what async_job_queue kept (the job's memory stays the caller's to free). */
static inline void async_job_release(napi_env env, AsyncJob *job) {
  for (int i = 0; i < job->kept; i++) napi_delete_reference(env, job->keep[i]);
  job->kept = 0;
  if (job->work) napi_delete_async_work(env, job->work);
  job->work = NULL;
}

/* Keeps values[0..n) alive, queues `job` (whose struct starts with an AsyncJob) on the thread
 * pool and returns its promise. `complete` settles the promise, calls async_job_release and frees
 * the job. Every N-API status is checked: when the job cannot be queued, `complete` runs at once
 * with a failure status (so the promise is rejected, never left pending, and the job cleaned up
 * as usual); without even a promise, the error is thrown. */
static inline napi_value async_job_queue(napi_env env, AsyncJob *job, const napi_value *values, int n, const char *name,
                                         napi_async_execute_callback execute, napi_async_complete_callback complete) {
  napi_value promise = NULL, resource_name;
  int ok = napi_create_promise(env, &job->deferred, &promise) == napi_ok;
  int want = n < ASYNC_JOB_MAX_KEEP ? n : ASYNC_JOB_MAX_KEEP;
  for (job->kept = 0; ok && job->kept < want;) {
    if (napi_create_reference(env, values[job->kept], 1, &job->keep[job->kept]) == napi_ok) job->kept++;
    else ok = 0;
  }
  ok = ok && napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name) == napi_ok &&
       napi_create_async_work(env, NULL, resource_name, execute, complete, job, &job->work) == napi_ok &&
       napi_queue_async_work(env, job->work) == napi_ok;
  if (ok) return promise;
  int has_promise = job->deferred != NULL;
  complete(env, napi_generic_failure, job);
  return has_promise ? promise : throw_error(env, "cannot queue work on the thread pool");
}

#endif
