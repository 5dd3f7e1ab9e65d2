# The TSan flavour (HEIST_BUILD_TSAN_FLAVOUR): the same library sources
# built a second time, with clang and -fsanitize=thread, so that a user's own
# tests of a program built on heist run under ThreadSanitizer with heist's
# fibers annotated (gcc 12's TSan runtime aborts past 8,128 threads+fibers,
# so clang it is). An ExternalProject configures this source tree again in
# <build>/tsan-flavour with HEIST_FLAVOUR=tsan (cmake/heistTsanInner.cmake:
# libheist_tsan.so, libheist_criterion_tsan.a, their exports and
# heist-tsan.pc) and builds it with the plain library; `cmake --install`
# of this build installs it too.
#
# HEIST_BUILD_TSAN_FLAVOUR: ON (clang with a working TSan runtime is
# required), OFF, or AUTO (the default: ON when such a clang is found and
# this build is not itself a sanitizer build).

set(HEIST_BUILD_TSAN_FLAVOUR AUTO CACHE STRING
  "Also build and install libheist_tsan (clang, -fsanitize=thread): ON, OFF or AUTO")
set_property(CACHE HEIST_BUILD_TSAN_FLAVOUR PROPERTY STRINGS AUTO ON OFF)

set(HEIST_TSAN_FLAVOUR OFF)
if(HEIST_BUILD_TSAN_FLAVOUR STREQUAL "AUTO" OR HEIST_BUILD_TSAN_FLAVOUR)
  set(why "")
  find_program(HEIST_TSAN_CLANG NAMES clang clang-14
    DOC "clang for the TSan flavour")
  if(CMAKE_C_FLAGS MATCHES "-fsanitize=")
    set(why "this build is a sanitizer build already")
  elseif(NOT HEIST_TSAN_CLANG)
    set(why "clang not found (apt-get install clang libclang-rt-14-dev)")
  else()
    # Can this clang link a TSan program? (its runtime is a separate package)
    set(probe ${PROJECT_BINARY_DIR}/CMakeFiles/heist_tsan_probe)
    file(WRITE ${probe}.c "int main(void) { return 0; }\n")
    execute_process(COMMAND ${HEIST_TSAN_CLANG} -fsanitize=thread ${probe}.c
      -o ${probe} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
    if(NOT rc EQUAL 0)
      set(why "${HEIST_TSAN_CLANG} cannot link with -fsanitize=thread "
        "(apt-get install libclang-rt-14-dev)")
    endif()
  endif()
  if(why STREQUAL "")
    set(HEIST_TSAN_FLAVOUR ON)
  elseif(NOT HEIST_BUILD_TSAN_FLAVOUR STREQUAL "AUTO")
    message(FATAL_ERROR "HEIST_BUILD_TSAN_FLAVOUR=ON but ${why}")
  else()
    message(STATUS "heist: no TSan flavour: ${why}")
  endif()
endif()

if(HEIST_TSAN_FLAVOUR)
  message(STATUS "heist: TSan flavour (libheist_tsan) with ${HEIST_TSAN_CLANG}")
  include(ExternalProject)
  set(HEIST_TSAN_BINARY_DIR ${PROJECT_BINARY_DIR}/tsan-flavour)
  ExternalProject_Add(heist_tsan_flavour
    SOURCE_DIR ${PROJECT_SOURCE_DIR}
    BINARY_DIR ${HEIST_TSAN_BINARY_DIR}
    CMAKE_ARGS
      -DCMAKE_BUILD_TYPE=RelWithDebInfo
      -DCMAKE_C_COMPILER=${HEIST_TSAN_CLANG}
      "-DCMAKE_C_FLAGS=-fsanitize=thread -fno-omit-frame-pointer"
      -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread
      -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread
      -DCMAKE_INSTALL_LIBDIR=${CMAKE_INSTALL_LIBDIR}
      -DCMAKE_INSTALL_INCLUDEDIR=${CMAKE_INSTALL_INCLUDEDIR}
      -DHEIST_FLAVOUR=tsan
      -DHEIST_WERROR=${HEIST_WERROR}
      -DHEIST_BUILD_TESTS=OFF
      -DHEIST_BUILD_BENCH=OFF
      -DHEIST_BUILD_DEMO=OFF
      -DHEIST_BUILD_TSAN_FLAVOUR=OFF
    # The inner build is incremental: run it every time so that a change in
    # lib/ reaches libheist_tsan too.
    BUILD_ALWAYS ON
    INSTALL_COMMAND ""
    STEP_TARGETS build)
  # Installed with the plain library, into the same prefix (and DESTDIR,
  # which the child sees in its environment).
  install(CODE "
    execute_process(COMMAND \"${CMAKE_COMMAND}\" --install
      \"${HEIST_TSAN_BINARY_DIR}\" --prefix \"\${CMAKE_INSTALL_PREFIX}\"
      RESULT_VARIABLE heist_tsan_rc)
    if(NOT heist_tsan_rc EQUAL 0)
      message(FATAL_ERROR \"installing the TSan flavour failed\")
    endif()")
endif()
