# The TSan flavour's own build (HEIST_FLAVOUR=tsan): this source tree
# configured a second time by cmake/heistTsanFlavour.cmake, with clang and
# -fsanitize=thread. It installs, next to the plain library:
#
#   libheist_tsan.so            heist::heist_tsan, heist-tsan.pc
#   heist/criterion_tsan.o      heist::criterion_tsan (test/criterion_tsan.c:
#                               Criterion under TSan, see test/CMakeLists.txt)
#
# and lib/cmake/heist/heistTsan.cmake, which heistConfig.cmake includes when
# it is there. Headers and heist::heist come from the plain
# build.

set_target_properties(heist PROPERTIES OUTPUT_NAME heist_tsan
  EXPORT_NAME heist_tsan)
# Whoever links the TSan flavour is a TSan program: the library calls the
# TSan runtime, which only an executable linked with -fsanitize=thread has.
target_compile_options(heist INTERFACE -fsanitize=thread)
target_link_options(heist INTERFACE -fsanitize=thread)

# The Criterion-under-TSan fix, installed as an object file: nothing in a
# test program calls it (libcriterion calls rand_r, the TSan runtime reads
# __tsan_default_options), and the TSan runtime itself defines both (weak),
# so from an archive the linker would never take it. An object file on the
# link line always goes in, and its strong definitions win.
add_library(heist_criterion_tsan OBJECT
  ${PROJECT_SOURCE_DIR}/test/criterion_tsan.c)
target_compile_definitions(heist_criterion_tsan PRIVATE _GNU_SOURCE)
target_compile_options(heist_criterion_tsan PRIVATE ${HEIST_WARNINGS})
install(FILES $<TARGET_OBJECTS:heist_criterion_tsan>
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/heist RENAME criterion_tsan.o)

install(TARGETS heist EXPORT heistTsanTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT heistTsanTargets NAMESPACE heist::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/heist)
# heistTsan.cmake: heist::heist_tsan (heistTsanTargets.cmake) and
# heist::criterion_tsan (the object file above, -ldl, -fsanitize=thread).
file(RELATIVE_PATH HEIST_CMAKE_TO_PREFIX
  /prefix/${CMAKE_INSTALL_LIBDIR}/cmake/heist /prefix)
configure_file(${PROJECT_SOURCE_DIR}/cmake/heistTsan.cmake.in
  ${PROJECT_BINARY_DIR}/heistTsan.cmake @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/heistTsan.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/heist)

file(RELATIVE_PATH HEIST_PC_TO_PREFIX
  /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
configure_file(${PROJECT_SOURCE_DIR}/cmake/heist-tsan.pc.in
  ${PROJECT_BINARY_DIR}/heist-tsan.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/heist-tsan.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
