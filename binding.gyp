{
  "targets": [
    {
      "target_name": "mkportable_native",
      "sources": ["src/native/addon.c", "src/native/xz.c", "src/native/fs.c", "src/native/zlib.c", "src/native/scan.c", "src/native/lz4.c", "src/native/copy.c", "src/native/entropy.c", "src/native/tasks.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-D_FILE_OFFSET_BITS=64"],
      "libraries": ["-llzma", "-ldl", "-lm", "-lpthread"]
    }
  ]
}
