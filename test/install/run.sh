#!/usr/bin/env bash
# test/install/run.sh - the install test (ctest `install`; see
# cmake/heistInstallTest.cmake). Installs a heist build into a temporary
# prefix and builds consumers against the installed copy only.
#
#   run.sh --build-dir B --source-dir S --cmake CMAKE --cc CC
#          --generator GEN --tsan CLANG|OFF
#
# Steps (each prints "install test: ..." and stops the test on failure):
#   1. a library-only configure of S (tests, benchmarks, demo off) with
#      pkg-config limited to liburcu: it must need no Criterion;
#   2. cmake --install B --prefix TMP;
#   3. test/install/cmake (find_package(heist CONFIG), heist::heist and
#      heist::heist_static): built, run, output checked;
#   4. test/install/consumer.c with `pkg-config --cflags --libs heist`
#      (PKG_CONFIG_PATH at TMP): built, run, output checked;
#   5. with --tsan CLANG: test/install/tsan, a Criterion suite built with
#      clang -fsanitize=thread against heist::heist_tsan and
#      heist::criterion_tsan, run by its ctest: user_ordered must pass,
#      user_race must fail with a ThreadSanitizer data race report on the
#      planted variable. Also heist-tsan.pc must build the ordered suite.
set -euo pipefail

build= src= cmake=cmake cc=cc gen=Ninja tsan=OFF
while [ $# -gt 0 ]; do
  case $1 in
    --build-dir) build=$2 ;;
    --source-dir) src=$2 ;;
    --cmake) cmake=$2 ;;
    --cc) cc=$2 ;;
    --generator) gen=$2 ;;
    --tsan) tsan=$2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
[ -n "$build" ] && [ -n "$src" ] || { echo "run.sh: need --build-dir and --source-dir" >&2; exit 2; }
here=$src/test/install

tmp=$(mktemp -d "${TMPDIR:-/tmp}/heist-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

say() { echo "install test: $*"; }
fail() { echo "install test: FAILED: $*" >&2; exit 1; }

expected=$'fib(20) = 6765\nspawned task = 42'
check_output() { # name, program
  local out
  out=$("$2") || fail "$1 exited with status $?"
  [ "$out" = "$expected" ] ||
    fail "$1 printed:"$'\n'"$out"$'\n'"expected:"$'\n'"$expected"
  say "$1: ok"
}

# 1. Library-only configure without Criterion: pkg-config sees liburcu's
# .pc files and nothing else.
pcdir=$(pkg-config --variable=pcfiledir liburcu-cds)
mkdir -p "$tmp/pc-urcu-only"
ln -s "$pcdir"/liburcu*.pc "$tmp/pc-urcu-only/"
if PKG_CONFIG_LIBDIR=$tmp/pc-urcu-only PKG_CONFIG_PATH= \
   pkg-config --exists criterion; then
  fail "could not hide Criterion from pkg-config"
fi
PKG_CONFIG_LIBDIR=$tmp/pc-urcu-only PKG_CONFIG_PATH= \
  "$cmake" -S "$src" -B "$tmp/libonly" -G "$gen" -DCMAKE_BUILD_TYPE=Release \
  -DHEIST_BUILD_TESTS=OFF -DHEIST_BUILD_BENCH=OFF -DHEIST_BUILD_DEMO=OFF \
  -DHEIST_BUILD_TSAN_FLAVOUR=OFF >"$tmp/libonly.log" 2>&1 ||
  { cat "$tmp/libonly.log" >&2; fail "library-only configure without Criterion"; }
say "library-only configure without Criterion: ok"

# 2. Install.
"$cmake" --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "cmake --install"; }
pc=$(find "$prefix" -name heist.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || fail "no heist.pc installed"
pcpath=$(dirname "$pc")
libdir=$(dirname "$pcpath")
say "installed into a temporary prefix (libdir ${libdir#"$prefix"/})"

# 3. CMake consumer.
"$cmake" -S "$here/cmake" -B "$tmp/cmake-consumer" -G "$gen" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
  >"$tmp/cmake-consumer.log" 2>&1 &&
  "$cmake" --build "$tmp/cmake-consumer" >>"$tmp/cmake-consumer.log" 2>&1 ||
  { cat "$tmp/cmake-consumer.log" >&2; fail "CMake consumer (find_package(heist CONFIG))"; }
# It must have used the installed copy, not the build tree.
grep -q "heist_DIR:PATH=$prefix/" "$tmp/cmake-consumer/CMakeCache.txt" ||
  fail "the CMake consumer did not find heist in the temporary prefix"
check_output "find_package(heist CONFIG), heist::heist" "$tmp/cmake-consumer/consumer"
check_output "find_package(heist CONFIG), heist::heist_static" "$tmp/cmake-consumer/consumer_static"

# 4. pkg-config consumer.
export PKG_CONFIG_PATH=$pcpath
flags=$(pkg-config --cflags --libs heist) || fail "pkg-config heist"
# shellcheck disable=SC2086
"$cc" -std=c11 -o "$tmp/pc-consumer" "$here/consumer.c" $flags ||
  fail "building with pkg-config --cflags --libs heist ($flags)"
LD_LIBRARY_PATH=$libdir check_output "pkg-config heist" "$tmp/pc-consumer"
# The same as a release build: NDEBUG turns the inline join's check off,
# and heist_fork/heist_join become statement expressions
# (heist/task_inline.h), which must stay warning-free in strict C.
# shellcheck disable=SC2086
"$cc" -std=c11 -O2 -DNDEBUG -Wall -Wextra -pedantic -Werror \
  -o "$tmp/pc-consumer-ndebug" "$here/consumer.c" $flags ||
  fail "building with -DNDEBUG -pedantic -Werror and pkg-config heist"
LD_LIBRARY_PATH=$libdir check_output "pkg-config heist, NDEBUG" \
  "$tmp/pc-consumer-ndebug"
ldd_out=$(LD_LIBRARY_PATH=$libdir ldd "$tmp/pc-consumer")
grep -q "libheist.so.* => $libdir/" <<<"$ldd_out" ||
  fail "the pkg-config consumer did not load the installed libheist.so"

if [ "$tsan" = OFF ]; then
  say "TSan part skipped (no TSan flavour, or no clang or Criterion)"
  say "passed"
  exit 0
fi

# 5. A user's Criterion suite under ThreadSanitizer.
[ -f "$libdir/libheist_tsan.so" ] || fail "libheist_tsan.so not installed"
[ -f "$libdir/heist/criterion_tsan.o" ] ||
  fail "heist/criterion_tsan.o not installed"
"$cmake" -S "$here/tsan" -B "$tmp/tsan-user" -G "$gen" \
  -DCMAKE_C_COMPILER="$tsan" -DCMAKE_PREFIX_PATH="$prefix" \
  >"$tmp/tsan-user.log" 2>&1 &&
  "$cmake" --build "$tmp/tsan-user" >>"$tmp/tsan-user.log" 2>&1 ||
  { cat "$tmp/tsan-user.log" >&2; fail "the TSan Criterion suite did not build"; }
ctest=$(dirname "$cmake")/ctest
[ -x "$ctest" ] || ctest=ctest
# The user's TSAN_OPTIONS, if any, are theirs; this test wants the defaults
# heist::criterion_tsan sets.
unset TSAN_OPTIONS
# -V: ctest shows a passing test's output only then, and a report made at
# the test process's exit (a thread leak) does not fail the test: the grep
# below must see it.
if ! (cd "$tmp/tsan-user" && "$ctest" -R '^user_ordered$' -V) \
     >"$tmp/ordered.log" 2>&1; then
  cat "$tmp/ordered.log" >&2
  fail "the race-free suite failed under TSan"
fi
grep -q "ThreadSanitizer" "$tmp/ordered.log" &&
  { cat "$tmp/ordered.log" >&2; fail "TSan reported something in the race-free suite"; }
say "user's ctest under TSan, race-free suite: passed, no report"
if (cd "$tmp/tsan-user" && "$ctest" -R '^user_race$' --output-on-failure) \
   >"$tmp/race.log" 2>&1; then
  cat "$tmp/race.log" >&2
  fail "the suite with a planted race passed under TSan"
fi
grep -q "WARNING: ThreadSanitizer: data race" "$tmp/race.log" &&
  grep -q "Location is global 'user_counter'" "$tmp/race.log" ||
  { cat "$tmp/race.log" >&2; fail "the planted race failed the suite, but without TSan's report on user_counter"; }
say "user's ctest under TSan, planted race: reported on user_counter, suite failed"

# The same race-free suite through heist-tsan.pc.
crit=$(pkg-config --cflags --libs criterion) || fail "pkg-config criterion"
tflags=$(pkg-config --cflags --libs heist-tsan) || fail "pkg-config heist-tsan"
helper=$(pkg-config --variable=criterion_tsan heist-tsan)
# shellcheck disable=SC2086
"$tsan" -std=c11 -o "$tmp/pc-tsan" "$here/tsan/user_suite.c" $tflags $helper $crit ||
  fail "building the suite with pkg-config heist-tsan"
if ! LD_LIBRARY_PATH=$libdir "$tmp/pc-tsan" >"$tmp/pc-tsan.log" 2>&1; then
  cat "$tmp/pc-tsan.log" >&2
  fail "the race-free suite built with heist-tsan.pc failed"
fi
grep -q "ThreadSanitizer" "$tmp/pc-tsan.log" &&
  { cat "$tmp/pc-tsan.log" >&2; fail "TSan reported something in the suite built with heist-tsan.pc"; }
say "pkg-config heist-tsan: race-free suite passed"
say "passed"
