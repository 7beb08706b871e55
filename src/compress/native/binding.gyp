{
  "targets": [
    {
      "target_name": "mkportable_xz",
      "sources": ["xz.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "libraries": ["-llzma"]
    }
  ]
}
