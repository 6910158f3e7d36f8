{
  "targets": [
    {
      "target_name": "vfio_ioctls",
      "sources": [
        "native/addon.cc",
        "native/args.cc",
        "native/dma.cc",
        "native/errors.cc",
        "native/eventfd.cc",
        "native/file.cc",
        "native/ioctl.cc",
        "native/mapping.cc",
        "native/memfd.cc",
        "native/mmap.cc",
        "native/mmio.cc",
        "native/poller.cc",
        "native/stream.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
      "conditions": [
        ["OS!='linux'", { "type": "none" }]
      ]
    }
  ]
}
