# The addon links the CMake-built core (libamtp.so in the build tree): build it first with
#   cmake --build $AMTP_BUILD_DIR --target amtp_core
# AMTP_BUILD_DIR defaults to <repo>/build. Build offline against the Debian headers:
#   npx node-gyp rebuild --nodedir=/usr
{
  "variables": {
    "amtp_root": "<!(cd ../.. && pwd)",
    "amtp_build": "<!(node -p \"require('path').resolve(process.env.AMTP_BUILD_DIR || '../../build')\")"
  },
  "targets": [
    {
      "target_name": "amtp",
      "sources": ["src/addon.cc", "src/session.cc"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<(amtp_root)/core/include"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-Wall", "-Wextra"],
      "libraries": [
        "-L<(amtp_build)/lib", "-lamtp", "-Wl,-rpath,<(amtp_build)/lib", "-lssl", "-lcrypto"
      ]
    }
  ]
}
