# The addon's session without Node (src/session.cc: the core's rulebook fed what
# Haraka's hooks saw): linked into the addon and fuzzed by tests/fuzz. Included by this
# folder's CMakeLists.txt (before its early returns, so it is built wherever the core
# is) and by tests/fuzz, hence the guard and the paths from this file.
if(NOT TARGET amtp_haraka_session)
  add_library(amtp_haraka_session STATIC ${CMAKE_CURRENT_LIST_DIR}/src/session.cc)
  target_include_directories(amtp_haraka_session PUBLIC ${CMAKE_CURRENT_LIST_DIR}/src)
  target_link_libraries(amtp_haraka_session PUBLIC amtp_core)
endif()
