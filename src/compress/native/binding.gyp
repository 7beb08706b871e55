{
  "targets": [
    {
      "target_name": "mkportable_xz",
      "sources": ["xz.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "libraries": ["-llzma"]
    },
    {
      "target_name": "mkportable_zlib",
      "sources": ["zlib.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "libraries": ["-ldl"]
    },
    {
      "target_name": "mkportable_scan",
      "sources": ["scan.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
