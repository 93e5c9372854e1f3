{
  "targets": [
    {
      "target_name": "nydus_native",
      "sources": ["native/nydus_native.c"],
      "libraries": ["-llz4"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
