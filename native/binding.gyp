{
  "targets": [
    {
      "target_name": "remora_net",
      "sources": ["original_dst.c", "resident.c", "heap.cc"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "cflags_cc": ["-O2"]
    }
  ]
}
