# The addon: src/ over the AMTP core. Where the core comes from is install/amtp-flags.js's
# choice: the repository's CMake build (headers in core/include, the shared libamtp in
# $AMTP_BUILD_DIR/lib, default <repo>/build, found at run time by an rpath) when the package
# sits in the repository, else the installed libamtp found by pkg-config (libamtp-dev);
# AMTP_LINK=tree|pkg-config overrides. Build with "npm run build" (install/build.js), which
# passes node-gyp --nodedir for local Node headers.
{
  "targets": [
    {
      "target_name": "amtp",
      "sources": ["src/addon.cc", "src/session.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node install/amtp-flags.js include_dirs)"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra", "<!@(node install/amtp-flags.js cflags)"],
      "libraries": ["<!@(node install/amtp-flags.js libs)"]
    }
  ]
}
