{
  "targets": [
    {
      "target_name": "ike_native",
      "sources": ["src/native/shim.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    }
  ]
}
