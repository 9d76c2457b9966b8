{
  "targets": [
    {
      "target_name": "remora_net",
      "sources": ["original_dst.c", "resident.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
