{
  "targets": [
    {
      "target_name": "nydus_native",
      "sources": ["native/nydus_native.c", "native/gzip_inflate.c", "native/zstd_chunk.c"],
      "libraries": ["-llz4", "-lisal", "-lzstd"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
