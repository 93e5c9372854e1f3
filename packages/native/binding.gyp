{
  "targets": [
    {
      "target_name": "nydus_native",
      "sources": ["native/nydus_native.c", "native/gzip_inflate.c"],
      "libraries": ["-llz4", "-lisal"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
