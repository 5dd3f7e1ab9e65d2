# ctest `install` (label unit): test/install/run.sh installs this build into
# a temporary prefix with `cmake --install`, then builds and runs consumer
# projects against the installed copy only:
#   - a library-only configure of this source tree that cannot see
#     Criterion (pkg-config limited to liburcu), which must succeed;
#   - test/install/cmake: find_package(heist CONFIG REQUIRED), heist::heist;
#   - test/install/consumer.c built with `pkg-config --cflags --libs heist`;
#   - with the TSan flavour and Criterion: test/install/tsan, a user's
#     Criterion suite built with clang -fsanitize=thread against
#     heist::heist_tsan and heist::criterion_tsan and run by its own ctest:
#     its planted data race must be reported, its ordered twin must pass.
# Not in sanitizer builds (asan, tsan presets): a sanitizer-instrumented
# libheist cannot be linked into the plain consumers.
if(CMAKE_C_FLAGS MATCHES "-fsanitize=")
  return()
endif()
find_program(HEIST_BASH bash)
if(NOT HEIST_BASH)
  return()
endif()
set(heist_install_tsan OFF)
if(HEIST_TSAN_FLAVOUR)
  pkg_check_modules(HEIST_INSTALL_CRITERION QUIET criterion)
  if(HEIST_INSTALL_CRITERION_FOUND)
    set(heist_install_tsan ON)
  endif()
endif()
add_test(NAME install
  COMMAND ${HEIST_BASH} ${PROJECT_SOURCE_DIR}/test/install/run.sh
    --build-dir ${PROJECT_BINARY_DIR}
    --source-dir ${PROJECT_SOURCE_DIR}
    --cmake ${CMAKE_COMMAND}
    --cc ${CMAKE_C_COMPILER}
    --generator ${CMAKE_GENERATOR}
    --tsan $<IF:$<BOOL:${heist_install_tsan}>,${HEIST_TSAN_CLANG},OFF>)
set_tests_properties(install PROPERTIES LABELS unit TIMEOUT 400)
