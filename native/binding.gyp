{
  "targets": [
    {
      "target_name": "weft_native",
      "sources": ["src/addon.cc", "src/bpf.cc", "src/bpf_object.cc", "src/bpf_map.cc", "src/bpf_tc.cc", "src/bpf_tcx.cc", "src/bpf_ringbuf.cc", "src/netlink.cc", "src/netlink_link.cc", "src/netlink_route.cc", "src/netlink_neigh.cc", "src/netlink_batch.cc", "src/netlink_monitor.cc", "src/netlink_ct.cc", "src/errors.cc", "src/netns.cc", "src/lock.cc", "src/memory.cc", "src/notify.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(pkg-config --cflags-only-I libnl-route-3.0 | sed 's/-I//g')"
      ],
      "libraries": ["-lbpf", "-lelf", "-lz", "<!@(pkg-config --libs libnl-route-3.0)"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "cflags_cc!": ["-fno-exceptions"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"]
    }
  ]
}
