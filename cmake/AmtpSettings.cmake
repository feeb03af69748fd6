# Compiler settings, options and third-party dependencies of the core, shared by the
# top-level CMakeLists and by tests/fuzz when tools/fuzz builds it as a project of its own.
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_POSITION_INDEPENDENT_CODE ON) # the core is linked into shared objects (Exim, Node)
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)
if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE RelWithDebInfo)
endif()

include(GNUInstallDirs)
# Installed programs find libamtp in the default library path under /usr (Debian
# packages carry no RPATH); under any other prefix (/usr/local, /opt/amtp) they are
# told where it is.
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(CMAKE_INSTALL_RPATH "${CMAKE_INSTALL_FULL_LIBDIR}")
endif()

set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
set(CMAKE_LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib)
set(CMAKE_ARCHIVE_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib)

option(AMTP_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(AMTP_WERROR "Treat warnings as errors" OFF)

add_compile_options(-Wall -Wextra)
if(AMTP_WERROR)
  add_compile_options(-Werror)
endif()
if(AMTP_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

find_package(OpenSSL 3.0 REQUIRED)
find_package(PkgConfig REQUIRED)
# libunbound's .pc file names libevent and nettle as private requirements that its -dev
# package does not pull in; the shared library needs neither to link, so find it directly.
find_path(UNBOUND_INCLUDE_DIR unbound.h REQUIRED)
find_library(UNBOUND_LIBRARY unbound REQUIRED)
add_library(amtp_unbound INTERFACE)
target_include_directories(amtp_unbound INTERFACE ${UNBOUND_INCLUDE_DIR})
target_link_libraries(amtp_unbound INTERFACE ${UNBOUND_LIBRARY})
pkg_check_modules(IDN2 REQUIRED IMPORTED_TARGET libidn2)
find_package(pugixml REQUIRED)
find_package(Boost 1.74 REQUIRED COMPONENTS program_options)
find_package(Threads REQUIRED)
