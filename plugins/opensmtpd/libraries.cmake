# The adapter's parsers and decisions as a library without I/O: the filter's protocol
# reader and engine, the gate's command pipeline, PROXY header and identity channel.
# Included by this folder's CMakeLists.txt and by tests/fuzz (which, built as a project
# of its own, has no adapters), hence the guard and the paths from this file.
if(NOT TARGET amtp_opensmtpd_common)
  add_library(amtp_opensmtpd_common STATIC
    ${CMAKE_CURRENT_LIST_DIR}/common/registration.cpp
    ${CMAKE_CURRENT_LIST_DIR}/filter/protocol.cpp
    ${CMAKE_CURRENT_LIST_DIR}/filter/engine.cpp
    ${CMAKE_CURRENT_LIST_DIR}/gate/pipeline.cpp
    ${CMAKE_CURRENT_LIST_DIR}/gate/proxy_header.cpp)
  target_include_directories(amtp_opensmtpd_common PUBLIC ${CMAKE_CURRENT_LIST_DIR})
  target_link_libraries(amtp_opensmtpd_common PUBLIC amtp_core)
endif()
