{
  "targets": [
    {
      "target_name": "mkportable_xz",
      "sources": ["src/compress/native/xz.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "libraries": ["-llzma"]
    }
  ]
}
