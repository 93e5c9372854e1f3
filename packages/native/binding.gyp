{
  "targets": [
    {
      "target_name": "nydus_native",
      "sources": ["native/nydus_native.c", "native/gzip_inflate.c", "native/zstd_chunk.c", "native/zran_inflate.c"],
      "libraries": ["-llz4", "-lisal", "-lzstd", "-lz"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
