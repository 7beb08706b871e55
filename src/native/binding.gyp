{
  "targets": [
    {
      "target_name": "mkportable_native",
      "sources": ["addon.c", "xz.c", "fs.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-D_FILE_OFFSET_BITS=64"],
      "libraries": ["-llzma"]
    }
  ]
}
