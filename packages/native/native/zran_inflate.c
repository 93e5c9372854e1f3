/*
 * Random access into gzip streams with the system zlib (targz-ref / "zran" images, spec §4).
 *
 * 1. A checkpointing gunzip (zranInflater*): inflates a gzip stream step by step like
 *    GzipInflater, but with Z_BLOCK so that it stops at every deflate block boundary and records
 *    a checkpoint there: compressed bytes consumed, inflated bytes produced, the pending bits of
 *    the last consumed byte, and the window (inflateGetDictionary, at most 32 KiB) into the
 *    caller's `windows` buffer, one 32 KiB slot per checkpoint. Without a windows buffer only the
 *    window's size is reported: the window is the last that many bytes of the member's output,
 *    which the caller has (and copies only for the checkpoints it keeps).
 * 2. A resumed inflate (zranInflateFrom*): raw inflate primed with a checkpoint's bits and window
 *    that produces exactly as many bytes as the output holds, crossing gzip member ends (trailer
 *    skipped, next header parsed) on the way.
 *
 * Node's zlib binding exposes neither Z_BLOCK stops nor inflatePrime, hence this file. It links
 * against the system zlib, but loaded into node the zlib calls bind to the zlib that the node
 * executable exports (Chromium's, with its faster inflate): same API and output. Every
 * JS buffer a thread-pool job touches is kept referenced until the job settles.
 */
#include <node_api.h>
#include <zlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "napi_util.h"
#include "zran_inflate.h"

#define WINDOW_SIZE 32768

/* Step outcomes (>= 0); negative values are errors (ZRAN_ERR_*). */
#define STEP_NEED_INPUT 0
#define STEP_OUTPUT_FULL 1
#define STEP_MEMBER_END 2
#define STEP_CHECKPOINTS_FULL 3

#define ZRAN_ERR_DATA -1      /* corrupt deflate data or gzip header (zlib message kept) */
#define ZRAN_ERR_MEMORY -2    /* zlib could not allocate */
#define ZRAN_ERR_TRUNCATED -3 /* input ended before the requested output */
#define ZRAN_ERR_INTERNAL -4

#define ZRAN_MAX_CHECKPOINTS 1024

typedef struct {
  double in_pos;  /* compressed bytes of the whole stream consumed at the boundary */
  double out_pos; /* inflated bytes of the whole stream produced at the boundary */
  uint32_t bits;  /* pending bits of the byte before in_pos (0..7) */
  uint32_t byte;  /* that byte (0 when bits is 0) */
  uint32_t dict_size;
  uint32_t member; /* gzip member index */
} Checkpoint;

typedef struct {
  z_stream strm;
  int busy;
  uint64_t total_in;
  uint64_t total_out;
  uint64_t member_out; /* total_out when the current member started */
  uint32_t member;
  uint8_t last_byte;
  char message[128];
} Inflater;

typedef struct {
  AsyncJob job; /* keeps the handle, input, output and windows alive */
  Inflater *z;
  uint8_t *in;
  size_t in_len;
  uint8_t *out;
  size_t out_len;
  uint8_t *windows;
  uint32_t max_checkpoints;
  Checkpoint *checkpoints;
  uint32_t count;
  uint32_t consumed;
  uint32_t produced;
  int status;
} StepJob;

static void keep_message(char *dst, size_t cap, const char *msg) {
  snprintf(dst, cap, "%s", msg ? msg : "unknown zlib error");
}

/*
 * One step: inflates until the input is used up, the output is full, a member ends or
 * `max_checkpoints` were recorded. Safe on any thread (touches only its arguments).
 */
static void run_step(Inflater *z, uint8_t *in, size_t in_len, uint8_t *out, size_t out_len, uint8_t *windows, uint32_t max_checkpoints,
                     Checkpoint *cps, uint32_t *count, uint32_t *consumed, uint32_t *produced, int *status) {
  z_stream *s = &z->strm;
  s->next_in = in;
  s->avail_in = (uInt)in_len;
  s->next_out = out;
  s->avail_out = (uInt)out_len;
  *count = 0;
  *status = STEP_NEED_INPUT;
  int stalls = 0;
  for (;;) {
    if (s->avail_out == 0) {
      *status = STEP_OUTPUT_FULL;
      break;
    }
    if (s->avail_in == 0) {
      *status = STEP_NEED_INPUT;
      break;
    }
    uInt before_in = s->avail_in, before_out = s->avail_out;
    int rc = inflate(s, Z_BLOCK);
    uInt used = before_in - s->avail_in;
    z->total_in += used;
    z->total_out += before_out - s->avail_out;
    if (used > 0) z->last_byte = s->next_in[-1];
    if (used > 0 || before_out != s->avail_out) stalls = 0;
    if (rc == Z_STREAM_END) {
      *status = STEP_MEMBER_END;
      break;
    }
    /* Z_BUF_ERROR: nothing consumed or produced, though the state may have moved (a block
     * header decoded from held bits). A real stall with room on both sides is a bug. */
    if (rc == Z_BUF_ERROR) {
      if (used == 0 && before_out == s->avail_out && ++stalls > 16) {
        keep_message(z->message, sizeof z->message, "inflate makes no progress");
        *status = ZRAN_ERR_INTERNAL;
        break;
      }
    } else if (rc != Z_OK) {
      keep_message(z->message, sizeof z->message, s->msg);
      *status = rc == Z_MEM_ERROR ? ZRAN_ERR_MEMORY : ZRAN_ERR_DATA;
      break;
    }
    /* Bit 128: just after an end-of-block code or the gzip header; bit 64: inside the last block. */
    if ((s->data_type & 128) && !(s->data_type & 64)) {
      uint32_t at = *count;
      /* A later boundary at the same output position replaces the earlier (empty blocks). */
      if (at > 0 && cps[at - 1].out_pos == (double)z->total_out) at--;
      Checkpoint *cp = &cps[at];
      cp->in_pos = (double)z->total_in;
      cp->out_pos = (double)z->total_out;
      cp->bits = (uint32_t)(s->data_type & 7);
      cp->byte = cp->bits ? z->last_byte : 0;
      cp->member = z->member;
      uInt dict_len = 0;
      if (windows == NULL) {
        /* inflate's window holds the last min(32 KiB, member output) bytes of output. */
        uint64_t member_out = z->total_out - z->member_out;
        dict_len = member_out < WINDOW_SIZE ? (uInt)member_out : WINDOW_SIZE;
      } else if (inflateGetDictionary(s, windows + (size_t)at * WINDOW_SIZE, &dict_len) != Z_OK || dict_len > WINDOW_SIZE) {
        keep_message(z->message, sizeof z->message, "inflateGetDictionary failed");
        *status = ZRAN_ERR_INTERNAL;
        break;
      }
      cp->dict_size = dict_len;
      *count = at + 1;
      if (*count >= max_checkpoints) {
        *status = STEP_CHECKPOINTS_FULL;
        break;
      }
    }
  }
  *consumed = (uint32_t)(in_len - s->avail_in);
  *produced = (uint32_t)(out_len - s->avail_out);
}

static void inflater_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  Inflater *z = data;
  inflateEnd(&z->strm);
  free(z);
}

static Inflater *inflater_arg(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

/* zranInflaterCreate(): external */
static napi_value create(napi_env env, napi_callback_info info) {
  (void)info;
  Inflater *z = calloc(1, sizeof(Inflater));
  if (!z) return throw_error(env, "zran inflater: out of memory");
  if (inflateInit2(&z->strm, 15 + 16) != Z_OK) {
    free(z);
    return throw_error(env, "zran inflater: zlib inflateInit2 failed");
  }
  napi_value ext;
  if (napi_create_external(env, z, inflater_finalize, NULL, &ext) != napi_ok) {
    inflateEnd(&z->strm);
    free(z);
    return throw_error(env, "zran inflater: cannot create handle");
  }
  return ext;
}

/* zranInflaterNextMember(handle): the next gzip member follows. */
static napi_value next_member(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return throw_error(env, "zranInflaterNextMember: bad call");
  Inflater *z = argc >= 1 ? inflater_arg(env, argv[0]) : NULL;
  if (!z) return throw_error(env, "zranInflaterNextMember(handle): not an inflater");
  if (z->busy) return throw_error(env, "zranInflaterNextMember: a step is running");
  if (inflateReset(&z->strm) != Z_OK) return throw_error(env, "zranInflaterNextMember: inflateReset failed");
  z->member++;
  z->member_out = z->total_out;
  return NULL;
}

/* zranInflaterMessage(handle): zlib's message for the last failed step. */
static napi_value message(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return throw_error(env, "zranInflaterMessage: bad call");
  Inflater *z = argc >= 1 ? inflater_arg(env, argv[0]) : NULL;
  if (!z) return throw_error(env, "zranInflaterMessage(handle): not an inflater");
  if (napi_create_string_utf8(env, z->message, NAPI_AUTO_LENGTH, &out) != napi_ok) return throw_error(env, "zranInflaterMessage: cannot create string");
  return out;
}

/* [consumed, produced, status, count, then 6 numbers per checkpoint] */
static napi_value step_result(napi_env env, StepJob *j) {
  napi_value result, v;
  uint32_t n = 4 + 6 * j->count;
  if (napi_create_array_with_length(env, n, &result) != napi_ok) return NULL;
  double head[4] = {j->consumed, j->produced, j->status, j->count};
  for (uint32_t i = 0; i < 4; i++) {
    if (napi_create_double(env, head[i], &v) != napi_ok || napi_set_element(env, result, i, v) != napi_ok) return NULL;
  }
  for (uint32_t k = 0; k < j->count; k++) {
    const Checkpoint *c = &j->checkpoints[k];
    double f[6] = {c->in_pos, c->out_pos, c->bits, c->byte, c->dict_size, c->member};
    for (uint32_t i = 0; i < 6; i++) {
      if (napi_create_double(env, f[i], &v) != napi_ok || napi_set_element(env, result, 4 + 6 * k + i, v) != napi_ok) return NULL;
    }
  }
  return result;
}

static void step_job_free(StepJob *j) {
  free(j->checkpoints);
  free(j);
}

/* Parses (handle, input, output, windows, maxCheckpoints) into a new job (NULL after throwing). */
static StepJob *step_job(napi_env env, napi_callback_info info, napi_value *argv, const char *name) {
  size_t argc = 5;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) return throw_error(env, name), NULL;
  Inflater *z = inflater_arg(env, argv[0]);
  void *in, *out, *windows;
  size_t in_len, out_len, windows_len;
  uint32_t max_checkpoints = 0;
  if (!z || !u8_arg(env, argv[1], &in, &in_len) || !u8_arg(env, argv[2], &out, &out_len) || !u8_arg(env, argv[3], &windows, &windows_len) ||
      napi_get_value_uint32(env, argv[4], &max_checkpoints) != napi_ok) {
    return throw_error(env, name), NULL;
  }
  /* An empty windows buffer: sizes only (see the top of this file). */
  if (in_len > UINT32_MAX || out_len > UINT32_MAX || max_checkpoints == 0 || max_checkpoints > ZRAN_MAX_CHECKPOINTS ||
      (windows_len != 0 && windows_len < (size_t)max_checkpoints * WINDOW_SIZE)) {
    return throw_error(env, name), NULL;
  }
  if (z->busy) return throw_error(env, "zran inflate: a step is already running"), NULL;
  StepJob *j = calloc(1, sizeof(StepJob));
  if (!j) return throw_error(env, "zran inflate: out of memory"), NULL;
  j->checkpoints = calloc(max_checkpoints, sizeof(Checkpoint));
  if (!j->checkpoints) {
    free(j);
    return throw_error(env, "zran inflate: out of memory"), NULL;
  }
  j->z = z;
  j->in = in;
  j->in_len = in_len;
  j->out = out;
  j->out_len = out_len;
  j->windows = windows_len == 0 ? NULL : windows;
  j->max_checkpoints = max_checkpoints;
  return j;
}

static void step_execute(napi_env env, void *data) {
  (void)env;
  StepJob *j = data;
  run_step(j->z, j->in, j->in_len, j->out, j->out_len, j->windows, j->max_checkpoints, j->checkpoints, &j->count, &j->consumed, &j->produced,
           &j->status);
}

/* zranInflateStep(handle, input, output, windows, maxCheckpoints): the step result array. */
static napi_value step_sync(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  StepJob *j = step_job(env, info, argv, "zranInflateStep(handle, input, output, windows, maxCheckpoints): bad arguments");
  if (!j) return NULL;
  step_execute(env, j);
  napi_value result = step_result(env, j);
  step_job_free(j);
  return result ? result : throw_error(env, "zranInflateStep: cannot create the result");
}

static void step_complete(napi_env env, napi_status status, void *data) {
  StepJob *j = data;
  j->z->busy = 0;
  napi_value result = status == napi_ok ? step_result(env, j) : NULL;
  if (result) {
    napi_resolve_deferred(env, j->job.deferred, result);
  } else {
    reject_cancelled(env, j->job.deferred, status == napi_ok ? "zran inflate: cannot create the result" : "zran inflate step cancelled");
  }
  async_job_release(env, &j->job);
  step_job_free(j);
}

/* zranInflateStepAsync(...): Promise of the step result; no buffer may be touched until it settles. */
static napi_value step_async(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  StepJob *j = step_job(env, info, argv, "zranInflateStepAsync(handle, input, output, windows, maxCheckpoints): bad arguments");
  if (!j) return NULL;
  j->z->busy = 1;
  /* On failure async_job_queue has already run step_complete (busy cleared, job freed). */
  return async_job_queue(env, &j->job, argv, 4, "nydus:zranInflateStep", step_execute, step_complete);
}

/* ---- resuming from a checkpoint ---------------------------------------------------------- */

typedef struct {
  AsyncJob job; /* keeps input, dictionary and output alive */
  const uint8_t *in;
  size_t in_len;
  const uint8_t *dict;
  size_t dict_len;
  uint8_t *out;
  size_t out_len;
  uint32_t bits;
  uint32_t byte;
  int status; /* 0 or ZRAN_ERR_* */
  char message[128];
} ResumeJob;

/*
 * Fills `out` exactly, inflating raw deflate data that starts `bits` bits before `in` (those bits
 * are the high bits of `byte`) with `dict` as the window. At a member's end the 8-byte trailer is
 * skipped and the next member (header and data) is inflated in gzip mode.
 */
static int resume(const uint8_t *in, size_t in_len, uint32_t bits, uint32_t byte, const uint8_t *dict, size_t dict_len, uint8_t *out, size_t out_len,
                  char *message, size_t message_cap) {
  z_stream s;
  memset(&s, 0, sizeof s);
  if (inflateInit2(&s, -15) != Z_OK) return ZRAN_ERR_MEMORY;
  int status = 0;
  if (bits > 0 && inflatePrime(&s, (int)bits, (int)(byte >> (8 - bits))) != Z_OK) status = ZRAN_ERR_INTERNAL;
  if (status == 0 && dict_len > 0 && inflateSetDictionary(&s, dict, (uInt)dict_len) != Z_OK) status = ZRAN_ERR_INTERNAL;
  if (status != 0) keep_message(message, message_cap, "cannot prime the inflater with the checkpoint");
  s.next_in = (Bytef *)in;
  s.avail_in = (uInt)in_len;
  s.next_out = out;
  s.avail_out = (uInt)out_len;
  int raw = 1;
  while (status == 0 && s.avail_out > 0) {
    int rc = inflate(&s, Z_NO_FLUSH);
    if (s.avail_out == 0 && (rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR)) break;
    if (rc == Z_STREAM_END) {
      /* A member ended before the output is complete: skip its trailer, go on with the next. */
      if (raw) {
        if (s.avail_in < 8) {
          status = ZRAN_ERR_TRUNCATED;
          break;
        }
        s.next_in += 8;
        s.avail_in -= 8;
      }
      if (s.avail_in == 0) {
        status = ZRAN_ERR_TRUNCATED;
        break;
      }
      if (inflateReset2(&s, 15 + 16) != Z_OK) {
        status = ZRAN_ERR_INTERNAL;
        keep_message(message, message_cap, "inflateReset2 failed");
        break;
      }
      raw = 0;
    } else if (rc == Z_BUF_ERROR || (rc == Z_OK && s.avail_in == 0 && s.avail_out > 0)) {
      status = ZRAN_ERR_TRUNCATED;
    } else if (rc == Z_MEM_ERROR) {
      status = ZRAN_ERR_MEMORY;
    } else if (rc != Z_OK) {
      status = ZRAN_ERR_DATA;
      keep_message(message, message_cap, s.msg);
    }
  }
  if (status == ZRAN_ERR_TRUNCATED) keep_message(message, message_cap, "input ends before the requested output");
  inflateEnd(&s);
  return status;
}

/* Parses (input, bits, byte, dict, output) into a job (NULL after throwing). */
static ResumeJob *resume_job(napi_env env, napi_callback_info info, napi_value *argv, const char *name) {
  size_t argc = 5;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) return throw_error(env, name), NULL;
  void *in, *dict, *out;
  size_t in_len, dict_len, out_len;
  uint32_t bits, byte;
  if (!u8_arg(env, argv[0], &in, &in_len) || napi_get_value_uint32(env, argv[1], &bits) != napi_ok || napi_get_value_uint32(env, argv[2], &byte) != napi_ok ||
      !u8_arg(env, argv[3], &dict, &dict_len) || !u8_arg(env, argv[4], &out, &out_len)) {
    return throw_error(env, name), NULL;
  }
  if (bits > 7 || byte > 255 || dict_len > WINDOW_SIZE || in_len > UINT32_MAX || out_len > UINT32_MAX) return throw_error(env, name), NULL;
  ResumeJob *j = calloc(1, sizeof(ResumeJob));
  if (!j) return throw_error(env, "zran resume: out of memory"), NULL;
  j->in = in;
  j->in_len = in_len;
  j->bits = bits;
  j->byte = byte;
  j->dict = dict;
  j->dict_len = dict_len;
  j->out = out;
  j->out_len = out_len;
  return j;
}

static void resume_execute(napi_env env, void *data) {
  (void)env;
  ResumeJob *j = data;
  j->status = resume(j->in, j->in_len, j->bits, j->byte, j->dict, j->dict_len, j->out, j->out_len, j->message, sizeof j->message);
}

/* [status, message] */
static napi_value resume_result(napi_env env, ResumeJob *j) {
  napi_value result, v;
  if (napi_create_array_with_length(env, 2, &result) != napi_ok || napi_create_int32(env, j->status, &v) != napi_ok ||
      napi_set_element(env, result, 0, v) != napi_ok || napi_create_string_utf8(env, j->message, NAPI_AUTO_LENGTH, &v) != napi_ok ||
      napi_set_element(env, result, 1, v) != napi_ok) {
    return NULL;
  }
  return result;
}

/* zranInflateFrom(input, bits, byte, dict, output): [status, message] */
static napi_value resume_sync(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  ResumeJob *j = resume_job(env, info, argv, "zranInflateFrom(input, bits, byte, dict, output): bad arguments");
  if (!j) return NULL;
  resume_execute(env, j);
  napi_value result = resume_result(env, j);
  free(j);
  return result ? result : throw_error(env, "zranInflateFrom: cannot create the result");
}

static void resume_complete(napi_env env, napi_status status, void *data) {
  ResumeJob *j = data;
  napi_value result = status == napi_ok ? resume_result(env, j) : NULL;
  if (result) {
    napi_resolve_deferred(env, j->job.deferred, result);
  } else {
    reject_cancelled(env, j->job.deferred, status == napi_ok ? "zran resume: cannot create the result" : "zran resume cancelled");
  }
  async_job_release(env, &j->job);
  free(j);
}

/* zranInflateFromAsync(input, bits, byte, dict, output): Promise<[status, message]> */
static napi_value resume_async(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  ResumeJob *j = resume_job(env, info, argv, "zranInflateFromAsync(input, bits, byte, dict, output): bad arguments");
  if (!j) return NULL;
  napi_value keep[3] = {argv[0], argv[3], argv[4]};
  /* On failure async_job_queue has already run resume_complete (job freed). */
  return async_job_queue(env, &j->job, keep, 3, "nydus:zranInflateFrom", resume_execute, resume_complete);
}

void register_zran_inflate(napi_env env, napi_value exports) {
  export_function(env, exports, "zranInflaterCreate", create);
  export_function(env, exports, "zranInflaterNextMember", next_member);
  export_function(env, exports, "zranInflaterMessage", message);
  export_function(env, exports, "zranInflateStep", step_sync);
  export_function(env, exports, "zranInflateStepAsync", step_async);
  export_function(env, exports, "zranInflateFrom", resume_sync);
  export_function(env, exports, "zranInflateFromAsync", resume_async);
}
