#ifndef NYDUS_ZRAN_INFLATE_H
#define NYDUS_ZRAN_INFLATE_H
#include <node_api.h>

void register_zran_inflate(napi_env env, napi_value exports);

#endif
