#ifndef NYDUS_GZIP_INFLATE_H
#define NYDUS_GZIP_INFLATE_H
#include <node_api.h>

/* Adds gzipInflaterCreate/Reset and gzipInflateStep(Async) to the module's exports. */
void register_gzip_inflate(napi_env env, napi_value exports);

#endif
