#ifndef NYDUS_ZSTD_CHUNK_H
#define NYDUS_ZSTD_CHUNK_H
#include <node_api.h>

/* Adds zstdCompressInto/zstdCompressBatchAsync to the module's exports. */
void register_zstd_chunk(napi_env env, napi_value exports);

#endif
