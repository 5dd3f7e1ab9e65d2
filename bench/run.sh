#!/usr/bin/env bash
# bench/run.sh - runs the benchmark suite and writes its CSV.
#
#   bench/run.sh [--quick] BIN_DIR CSV
#
# BIN_DIR holds the programs built from bench/ (<workload>_<impl>). Each line
# of the plan below is one program run: it creates its runtime once, runs the
# workload WARMUP times untimed, then REPS times timed in the same process,
# checks every result, and prints workload,param,impl,workers,median_ms,
# min_ms,runs. This script adds ratio_vs_serial (median / the serial median
# of the same workload and size), ratio_vs_heist (median / heist's median at
# the same size and worker count) and status (ok, FAIL, TIMEOUT, not built).
#
# Each program's stderr (heist's scheduler counters, failure messages) goes
# to the log beside the CSV (CSV with .log).
#
# Exit status: 0 when every run passed, 1 when one failed or timed out, 2 on
# a usage error. A peer (omp, tbb) that was not built is reported, not failed.
set -u

quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
if [ $# -ne 2 ]; then
  echo "usage: bench/run.sh [--quick] BIN_DIR CSV" >&2
  exit 2
fi
bin=$1
csv=$2

if [ $quick = 1 ]; then
  # Smoke test: every program, small sizes.
  FIB_T1=25 FIB_SCALE=27 FIB_BIG=0 FIB_OVER=23 NQ=9 SKY=10000 IDLE_MS=100
  PEER=5 SLOW=5 FAST=5
else
  FIB_T1=35 FIB_SCALE=37 FIB_BIG=40 FIB_OVER=32 NQ=12 SKY=1000000 IDLE_MS=1000
  PEER=5 SLOW=7 FAST=11
fi
# Per-run time limit in seconds (a hung runtime must not hang the suite).
LIMIT=${HEIST_BENCH_TIMEOUT:-300}

# workload param impl workers reps warmup
# FAST/SLOW: repeats of the runs under 0.1 s / up to ~1 s. PEER: repeats of
# the OpenMP and oneTBB fib runs (seconds each with no cutoff, so no warm-up:
# thread start-up is noise there) and of the 1 s idle windows.
plan() {
  cat <<PLAN
fib $FIB_T1 serial 1 $FAST 1
fib $FIB_T1 heist 1 $FAST 1
fib $FIB_T1 heist_static 1 $FAST 1
fib $FIB_T1 omp 1 $PEER 0
fib $FIB_T1 tbb 1 $PEER 0
fib $FIB_SCALE serial 1 $FAST 1
fib $FIB_SCALE heist 1 $FAST 1
fib $FIB_SCALE heist 2 $FAST 1
fib $FIB_SCALE heist_static 2 $FAST 1
fib $FIB_SCALE omp 1 $PEER 0
fib $FIB_SCALE omp 2 $PEER 0
fib $FIB_SCALE tbb 1 $PEER 0
fib $FIB_SCALE tbb 2 $PEER 0
nqueens $NQ serial 1 $SLOW 1
nqueens $NQ heist 1 $SLOW 1
nqueens $NQ heist 2 $SLOW 1
nqueens $NQ omp 1 $SLOW 1
nqueens $NQ omp 2 $SLOW 1
nqueens $NQ tbb 1 $SLOW 1
nqueens $NQ tbb 2 $SLOW 1
skynet $SKY serial 1 $FAST 1
skynet $SKY heist 2 $FAST 1
skynet $SKY heist_static 2 $FAST 1
skynet $SKY omp 2 $FAST 1
skynet $SKY tbb 2 $FAST 1
fib $FIB_OVER serial 1 $FAST 1
fib $FIB_OVER heist 2 $FAST 1
fib $FIB_OVER heist 8 $FAST 1
fib $FIB_OVER omp 2 $PEER 0
fib $FIB_OVER omp 8 $PEER 0
fib $FIB_OVER tbb 2 $PEER 0
fib $FIB_OVER tbb 8 $PEER 0
idle $IDLE_MS heist 2 $PEER 0
idle $IDLE_MS omp 2 $PEER 0
idle $IDLE_MS tbb 2 $PEER 0
PLAN
  if [ "$FIB_BIG" != 0 ]; then
    cat <<PLAN
fib $FIB_BIG serial 1 $SLOW 1
fib $FIB_BIG heist 1 $SLOW 1
fib $FIB_BIG heist 2 $SLOW 1
PLAN
  fi
}

mkdir -p "$(dirname "$csv")"
errlog=${csv%.csv}.log
: >"$errlog"
raw=$(mktemp)
log=$(mktemp)
trap 'rm -f "$raw" "$log" "$log.err"' EXIT
failed=0

while read -r w p impl workers reps warm; do
  prog="$bin/${w}_${impl}"
  label="$w($p) $impl ${workers}w x$reps"
  if [ ! -x "$prog" ]; then
    case $impl in
      omp|tbb)
        echo "bench: $label: not built (peer missing), skipped" >&2
        echo "$w,$p,$impl,$workers,,,0,not built" >>"$raw"
        continue ;;
    esac
    echo "bench: $label: $prog missing" >&2
    echo "$w,$p,$impl,$workers,,,0,FAIL" >>"$raw"
    failed=1
    continue
  fi
  start=$(date +%s.%N)
  timeout "$LIMIT" "$prog" -w "$workers" -r "$reps" -W "$warm" "$p" \
    >"$log" 2>"$log.err"
  rc=$?
  secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  if [ $rc -eq 0 ] && [ "$(wc -l <"$log")" -eq 1 ]; then
    echo "bench: $label: $(cut -d, -f5 "$log") ms median (${secs} s)" >&2
    sed 's/$/,ok/' "$log" >>"$raw"
  else
    status=FAIL
    [ $rc -eq 124 ] && status=TIMEOUT
    echo "bench: $label: $status (exit $rc after ${secs} s)" >&2
    sed 's/^/    /' "$log.err" >&2
    echo "$w,$p,$impl,$workers,,,0,$status" >>"$raw"
    failed=1
  fi
  { echo "== $label: exit $rc"; cat "$log.err"; } >>"$errlog"
done < <(plan)

awk -F, -v OFS=, '
  { row[NR] = $0; n = NR
    if ($3 == "serial" && $8 == "ok") serial[$1 "," $2] = $5
    if ($3 == "heist" && $8 == "ok") heist[$1 "," $2 "," $4] = $5 }
  function ratio(num, den) {
    return (num != "" && den != "" && den + 0 > 0) ? sprintf("%.3f", num / den) : ""
  }
  END {
    print "workload,param,impl,workers,median_ms,min_ms,runs," \
          "ratio_vs_serial,ratio_vs_heist,status"
    for (i = 1; i <= n; i++) {
      $0 = row[i]
      print $1, $2, $3, $4, $5, $6, $7, ratio($5, serial[$1 "," $2]),
            ratio($5, heist[$1 "," $2 "," $4]), $8
    }
  }' "$raw" >"$csv"
exit $failed
