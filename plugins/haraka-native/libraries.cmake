# The addon's decisions on Haraka's strings (src/checks.cc), without Node: linked into
# the addon and fuzzed by tests/fuzz. Included by this folder's CMakeLists.txt (before
# its early returns, so it is built wherever the core is) and by tests/fuzz, hence the
# guard and the paths from this file.
if(NOT TARGET amtp_haraka_checks)
  add_library(amtp_haraka_checks STATIC ${CMAKE_CURRENT_LIST_DIR}/src/checks.cc)
  target_include_directories(amtp_haraka_checks PUBLIC ${CMAKE_CURRENT_LIST_DIR}/src)
  target_link_libraries(amtp_haraka_checks PUBLIC amtp_core)
endif()
