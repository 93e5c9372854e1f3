{
  "targets": [
    {
      "target_name": "lz4_block",
      "sources": ["native/lz4_block.c"],
      "libraries": ["-llz4"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
