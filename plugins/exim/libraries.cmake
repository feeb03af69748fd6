# The adapter's decisions and argument readers, shared by the module and its tests: no
# Exim header here, so it builds (and is fuzzed, tests/fuzz) without Exim. Included by
# this folder's CMakeLists.txt and by tests/fuzz, hence the guard and the paths.
if(NOT TARGET amtp_exim_stages)
  add_library(amtp_exim_stages STATIC
    ${CMAKE_CURRENT_LIST_DIR}/src/acl_stages.cpp
    ${CMAKE_CURRENT_LIST_DIR}/src/client.cpp
    ${CMAKE_CURRENT_LIST_DIR}/src/arguments.cpp)
  target_include_directories(amtp_exim_stages PUBLIC ${CMAKE_CURRENT_LIST_DIR}/src)
  target_link_libraries(amtp_exim_stages PUBLIC amtp_core)
endif()
