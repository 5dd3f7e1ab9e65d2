#!/usr/bin/env bash
# bench/run.sh - runs the benchmark suite and writes its CSV.
#
#   bench/run.sh [--quick] BIN_DIR CSV
#
# BIN_DIR holds the programs built from bench/ (<workload>_<impl>). Each line
# of the plan below is one program run (a warm line) or REPS of them (a cold
# line). Warm: the program creates its runtime once, runs the workload
# WARMUP times untimed, then REPS times timed in the same process, checks
# every result, and prints workload,param,impl,workers,median_ms,min_ms,runs.
# Cold (issue 6's shapes only: seed, hops, fanin): REPS fresh processes,
# each run with -c, which times one run from before the runtime is created
# to after it is freed; the row's median and min are over those processes,
# and process_ms is the median wall time of a whole process (exec to exit,
# as this script sees it: the interpreter's or Go runtime's start, dynamic
# linking and timeout(1)'s own start included).
#
# This script adds ratio_vs_serial (median / the serial median of the same
# workload and size), ratio_vs_heist (median / heist's median at the same
# size, worker count and phase), status (ok, FAIL, TIMEOUT, not built),
# phase (cold or warm; every row but the shapes' cold ones is warm) and
# process_ms (cold rows only).
#
# Each program's stderr (heist's scheduler counters, failure messages) goes
# to the log beside the CSV (CSV with .log).
#
# The futures workloads (pairs, chain, gather, pingpong, sleeps) compare
# heist with Python's asyncio (<workload>_asyncio.py beside this script, run
# with python3; one thread, so its rows say 1 worker) and Go (<workload>_go).
# They run at 2 workers (the comparison that counts) and, but for the big
# gather and sleeps, at 1 as well: heist's cost of going parallel, and
# asyncio's single thread against heist's. asyncio's ratio_vs_heist is
# against heist at 1 worker, or, if heist ran that size at one other worker
# count only, against that one.
#
# Issue 6's shapes, "spawn everything before anything completes", at
# SHAPE items: seed (every (foo, bar) pair spawned, then gathered; foo awaits
# the future bar resolves), hops (issue 6's chain: N hops, hop i awaits
# future i and resolves i+1; main resolves 0, awaits N, gathers the hops) and
# fanin (N trivial tasks, gathered). Each in heist and Go at 1 and 2 workers
# and in asyncio, cold and warm, all in this run.
#
# Rounds: the machine's speed drifts from one second to the next (on the
# 2-core VM we test on, fib(35) on one worker took 47 ms or 79 ms a few
# seconds apart, the same binary on the same CPU), so programs compared
# with each other are not run one after the other: the warm rows of serial
# and heist programs (heist, heist_static, heist_fn, heist_leaf, at every
# worker count) of one workload and size are run in HEIST_BENCH_ROUNDS
# rounds (default 3; 1 with --quick), each round running each of them once
# with a share of the repeats (at least 3), interleaved (a block with one
# such row, as the 1M-waiting one, runs once). A row's median is then the median of its
# rounds' medians, its min the least of their mins, its runs the sum.
# Peers (OpenMP, oneTBB, Go, asyncio), far from heist, and cold rows run
# once, in the first round.
#
# HEIST_BENCH_ONLY=w1,w2,... runs only those workloads (e.g. the futures
# ones: pairs,chain,gather,pingpong,sleeps; issue 6's: seed,hops,fanin).
#
# Exit status: 0 when every run passed, 1 when one failed or timed out, 2 on
# a usage error. A peer (omp, tbb, go, asyncio) that was not built or cannot
# run (no python3) is reported, not failed.
set -u

quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
if [ $# -ne 2 ]; then
  echo "usage: bench/run.sh [--quick] BIN_DIR CSV" >&2
  exit 2
fi
bin=$1
csv=$2
# The interpreter itself, found once: python3 on PATH may be a shim (pyenv:
# a shell script that picks the interpreter), whose start would be counted
# in every asyncio process's time.
python=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null) ||
  python=python3
[ -n "$python" ] || python=python3
here=$(cd "$(dirname "$0")" && pwd)

if [ $quick = 1 ]; then
  # Smoke test: every program, small sizes.
  FIB_T1=25 FIB_SCALE=27 FIB_BIG=0 FIB_OVER=23 NQ=9 SKY=10000 IDLE_MS=100
  PEER=5 SLOW=5 FAST=5
  PAIRS=10000 CHAIN=10000 GATHER=100000 GATHER_PY=10000 PP=10000 SLEEPS=1000
  FORKWAIT=500
  PY=3
  SHAPE=10000 COLD=3 SHAPE_REPS=3 WAITING=100000 FEW=1
else
  FIB_T1=35 FIB_SCALE=37 FIB_BIG=40 FIB_OVER=32 NQ=12 SKY=1000000 IDLE_MS=1000
  PEER=5 SLOW=7 FAST=11
  # GATHER_PY: asyncio's gather size, a tenth of the others' (1,000,000
  # asyncio tasks take seconds and about a GB each repeat); heist and Go run
  # it too, so the 100k shape has all three from one run.
  PAIRS=100000 CHAIN=100000 GATHER=1000000 GATHER_PY=100000 PP=100000
  SLEEPS=10000 FORKWAIT=3000 PY=5
  # The shapes: COLD fresh processes per cold row; SHAPE_REPS timed runs
  # after one warm-up per warm row (asyncio: PY). WAITING: the 1M-waiting
  # figure (FEW repeats), run when bench/waiting_heist.c has been built.
  SHAPE=100000 COLD=5 SHAPE_REPS=$FAST WAITING=1000000 FEW=3
fi
ROUNDS=${HEIST_BENCH_ROUNDS:-$([ $quick = 1 ] && echo 1 || echo 3)}
case $ROUNDS in
  ''|*[!0-9]*|0) echo "bench/run.sh: HEIST_BENCH_ROUNDS must be a positive number" >&2
                 exit 2 ;;
esac
# Per-run time limit in seconds (a hung runtime must not hang the suite).
LIMIT=${HEIST_BENCH_TIMEOUT:-300}

# workload param impl workers reps warmup [phase]
# phase: warm (the default) or cold (REPS fresh processes, -c, no warm-up).
# FAST/SLOW: repeats of the runs under 0.1 s / up to ~1 s. PEER: repeats of
# the OpenMP and oneTBB fib runs (seconds each with no cutoff, so no warm-up:
# thread start-up is noise there) and of the 1 s idle windows.
plan() {
  cat <<PLAN
fib $FIB_T1 serial 1 $FAST 1
fib $FIB_T1 heist 1 $FAST 1
fib $FIB_T1 heist_static 1 $FAST 1
fib $FIB_T1 heist_fn 1 $FAST 1
fib $FIB_T1 heist_leaf 1 $FAST 1
fib $FIB_T1 heist_user 1 $FAST 1
fib $FIB_T1 heist_user_leaf 1 $FAST 1
fib $FIB_T1 omp 1 $PEER 0
fib $FIB_T1 tbb 1 $PEER 0
fib $FIB_SCALE serial 1 $FAST 1
fib $FIB_SCALE heist 1 $FAST 1
fib $FIB_SCALE heist 2 $FAST 1
fib $FIB_SCALE heist_static 2 $FAST 1
fib $FIB_SCALE heist_fn 2 $FAST 1
fib $FIB_SCALE heist_leaf 2 $FAST 1
fib $FIB_SCALE heist_user 2 $FAST 1
fib $FIB_SCALE heist_user_leaf 2 $FAST 1
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
pairs $PAIRS heist 2 $FAST 1
pairs $PAIRS asyncio 1 $PY 1
pairs $PAIRS go 2 $FAST 1
chain $CHAIN heist 2 $FAST 1
chain $CHAIN asyncio 1 $PY 1
chain $CHAIN go 2 $FAST 1
gather $GATHER_PY heist 2 $FAST 1
gather $GATHER_PY asyncio 1 $PY 1
gather $GATHER_PY go 2 $FAST 1
gather $GATHER heist 2 $SLOW 1
gather $GATHER go 2 $SLOW 1
pingpong $PP heist 2 $FAST 1
pingpong $PP asyncio 1 $PY 1
pingpong $PP go 2 $FAST 1
sleeps $SLEEPS heist 2 $FAST 1
sleeps $SLEEPS asyncio 1 $PY 1
sleeps $SLEEPS go 2 $FAST 1
forkwait $FORKWAIT heist 2 $FAST 1
forkwait $FORKWAIT asyncio 1 $PY 1
forkwait $FORKWAIT go 2 $FAST 1
pairs $PAIRS heist 1 $FAST 1
pairs $PAIRS go 1 $FAST 1
chain $CHAIN heist 1 $FAST 1
chain $CHAIN go 1 $FAST 1
gather $GATHER_PY heist 1 $FAST 1
gather $GATHER_PY go 1 $FAST 1
pingpong $PP heist 1 $FAST 1
pingpong $PP go 1 $FAST 1
forkwait $FORKWAIT heist 1 $FAST 1
forkwait $FORKWAIT go 1 $FAST 1
PLAN
  if [ "$FIB_BIG" != 0 ]; then
    cat <<PLAN
fib $FIB_BIG serial 1 $SLOW 1
fib $FIB_BIG heist 1 $SLOW 1
fib $FIB_BIG heist 2 $SLOW 1
PLAN
  fi
  # Issue 6's shapes: per shape, the cold rows, then the warm ones.
  local shape phase impl wk
  for shape in seed hops fanin; do
    for phase in cold warm; do
      for impl in heist go; do
        for wk in 1 2; do
          if [ $phase = cold ]; then echo "$shape $SHAPE $impl $wk $COLD 0 cold"
          else echo "$shape $SHAPE $impl $wk $SHAPE_REPS 1 warm"; fi
        done
      done
      if [ $phase = cold ]; then echo "$shape $SHAPE asyncio 1 $COLD 0 cold"
      else echo "$shape $SHAPE asyncio 1 $PY 1 warm"; fi
    done
  done
  # The 1M-waiting figure of issue 6 (1,000,000 tasks suspended at once,
  # each awaiting one gate future; bench/waiting_heist.c): cold (a fresh
  # process) and warm (stacks and records already pooled). Warm has two
  # warm-up rounds: the round after the first still grows the record slabs
  # of the worker that ran fewer waiters the first time (2.1 s, then 0.5-0.7
  # s a round, on the 2-core VM).
  # Before the cold rows, their floor: as many fresh pages written, one a
  # waiter, on as many threads, in fresh processes of bench/waiting_floor.c
  # (on a VM that backs memory on first touch, most of the cold figure).
  if [ -x "$bin/waiting_heist" ]; then
    echo "waiting $WAITING floor 2 $COLD 0 cold"
    echo "waiting $WAITING heist 2 $COLD 0 cold"
    echo "waiting $WAITING heist 2 $FEW 2 warm"
  fi
}

mkdir -p "$(dirname "$csv")"
errlog=${csv%.csv}.log
: >"$errlog"
raw=$(mktemp)
log=$(mktemp)
trap 'rm -f "$raw" "$log" "$log.err" "$log.cold" "$log.proc" "${planfile:-}" "${newtimes:-}" "${merged:-}"' EXIT
failed=0

# The plan in rounds (interleave, below), less the workloads
# HEIST_BENCH_ONLY leaves out: the rounds are those of the full plan, so a
# row is measured the same way with or without it.
selected() {
  if [ -z "${HEIST_BENCH_ONLY:-}" ]; then plan | interleave; return; fi
  plan | interleave | awk -v only="$HEIST_BENCH_ONLY" '
    BEGIN { n = split(only, o, ","); for (i = 1; i <= n; i++) keep[o[i]] = 1 }
    $1 in keep'
}

# The plan in rounds ("Rounds" at the top): consecutive lines of one workload and size
# form a block; each round of a block runs its serial and heist warm lines
# with a share of their repeats, and the first round runs the others too.
interleave() {
  awk -v R="$ROUNDS" '
    function roundable(f) {
      return (f[7] == "" || f[7] == "warm") &&
             (f[3] == "serial" || f[3] ~ /^heist/)
    }
    function flush(   r, i, f, n, reps, line, nr, rounds) {
      # Rounds only where two or more lines are compared.
      nr = 0
      for (i = 1; i <= nb; i++) { split(b[i], f, " "); nr += roundable(f) }
      rounds = (nr >= 2) ? R : 1
      for (r = 1; r <= rounds; r++)
        for (i = 1; i <= nb; i++) {
          n = split(b[i], f, " ")
          if (rounds > 1 && roundable(f)) {
            reps = int((f[5] + R - 1) / R)
            if (reps < 3) reps = 3
            line = f[1] " " f[2] " " f[3] " " f[4] " " reps " " f[6]
            if (n >= 7) line = line " " f[7]
            print line
          } else if (r == 1) {
            print b[i]
          }
        }
      nb = 0
    }
    { key = $1 " " $2
      if (nb && key != cur) flush()
      cur = key
      b[++nb] = $0 }
    END { if (nb) flush() }'
}

# Progress: every line says [k/N] and the time left, estimated from the
# previous run's time per program (the .times file beside the CSV, written
# at the end), scaled by how this run compares so far; programs without a
# previous time count as the mean of this run's so far.
planfile=$(mktemp)
selected >"$planfile"
total=$(wc -l <"$planfile")
timesfile=${csv%.csv}.times
declare -A prev_secs=()
if [ -f "$timesfile" ]; then
  while IFS=$'\t' read -r l s; do prev_secs[$l]=$s; done <"$timesfile"
fi
newtimes=$(mktemp)
k=0
done_secs=0 done_prev=0 done_with_prev=0
# progress LABEL SECS: counts the run just done; prints "[k/N]".
progress() {
  k=$((k + 1))
  echo -e "$1\t$2" >>"$newtimes"
  done_secs=$(awk -v a="$done_secs" -v b="$2" 'BEGIN { print a + b }')
  if [ -n "${prev_secs[$1]:-}" ]; then
    done_prev=$(awk -v a="$done_prev" -v b="${prev_secs[$1]}" 'BEGIN { print a + b }')
    done_with_prev=$(awk -v a="$done_with_prev" -v b="$2" 'BEGIN { print a + b }')
  fi
}
# time_left: the estimate for the runs after the k-th (one awk: the old
# times, then the rest of the plan).
time_left() {
  tail -n +$((k + 1)) "$planfile" | awk -v ds="$done_secs" -v dp="$done_prev" \
    -v dw="$done_with_prev" -v k="$k" -v old="$timesfile" '
    BEGIN { FS = "\t"
            while ((getline line < old) > 0) {
              split(line, f, "\t"); prev[f[1]] = f[2] }
            FS = " " }
    { l = $1 "(" $2 ") " $3 " " $4 "w " ($7 == "cold" ? "cold " : "") "x" $5
      if (l in prev) rp += prev[l]; else rn++ }
    END { scale = (dp > 0) ? dw / dp : 1
          s = int(rp * scale + rn * (k > 0 ? ds / k : 0) + 0.5)
          printf "about %s left", (s >= 60 ? sprintf("%dm%02ds", s / 60, s % 60) : s "s") }'
}

# median_min FILE: "median,min" of the numbers in FILE, one a line.
median_min() {
  sort -g "$1" | awk '{ v[NR] = $1 }
    END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf "%.3f,%.3f", m, v[1] }'
}

# run_cold: the cold line in w p impl workers reps label cmd: reps fresh
# processes with -c; adds the row to raw. Returns 0 or the failing exit.
run_cold() {
  local j rc t0 t1
  : >"$log.cold" ; : >"$log.proc"
  for ((j = 1; j <= reps; j++)); do
    t0=$EPOCHREALTIME
    timeout "$LIMIT" "${cmd[@]}" -w "$workers" -c "$p" >"$log" 2>"$log.err"
    rc=$?
    t1=$EPOCHREALTIME
    { echo "== $label, process $j: exit $rc"; cat "$log.err"; } >>"$errlog"
    if [ $rc -ne 0 ] || [ "$(wc -l <"$log")" -ne 1 ]; then
      [ $rc -eq 0 ] && rc=1
      return $rc
    fi
    cut -d, -f5 "$log" >>"$log.cold"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", (b - a) * 1e3 }' >>"$log.proc"
  done
  echo "$w,$p,$impl,$workers,$(median_min "$log.cold"),$reps,ok,cold,$(median_min "$log.proc" | cut -d, -f1)" >>"$raw"
  return 0
}

while read -r w p impl workers reps warm phase; do
  [ -n "$phase" ] || phase=warm
  prog="$bin/${w}_${impl}"
  cmd=("$prog")
  have=1
  [ -x "$prog" ] || have=0
  if [ "$impl" = asyncio ]; then
    # A script in the source tree, run by python3 (which must leave no
    # __pycache__ there).
    prog="$here/${w}_asyncio.py"
    cmd=(env PYTHONDONTWRITEBYTECODE=1 "$python" "$prog")
    have=1
    [ -f "$prog" ] || have=0
  fi
  label="$w($p) $impl ${workers}w x$reps"
  [ "$phase" = cold ] && label="$w($p) $impl ${workers}w cold x$reps"
  # A missing peer is reported, not failed: a missing heist program is.
  if [ "$impl" = asyncio ] && ! command -v python3 >/dev/null; then
    progress "$label" 0
    echo "bench: [$k/$total] $label: not run (no python3), skipped; $(time_left)" >&2
    echo "$w,$p,$impl,$workers,,,0,not built,$phase," >>"$raw"
    continue
  fi
  if [ $have = 0 ]; then
    case $impl in
      omp|tbb|go|heist_user|heist_user_leaf)
        # heist_user*: built by tools/bench only (an installed copy).
        progress "$label" 0
        echo "bench: [$k/$total] $label: not built (peer missing), skipped; $(time_left)" >&2
        echo "$w,$p,$impl,$workers,,,0,not built,$phase," >>"$raw"
        continue ;;
    esac
    progress "$label" 0
    echo "bench: [$k/$total] $label: $prog missing; $(time_left)" >&2
    echo "$w,$p,$impl,$workers,,,0,FAIL,$phase," >>"$raw"
    failed=1
    continue
  fi
  start=$(date +%s.%N)
  if [ "$phase" = cold ]; then
    run_cold
    rc=$?
  else
    timeout "$LIMIT" "${cmd[@]}" -w "$workers" -r "$reps" -W "$warm" "$p" \
      >"$log" 2>"$log.err"
    rc=$?
    [ $rc -eq 0 ] && [ "$(wc -l <"$log")" -ne 1 ] && rc=1
    [ $rc -eq 0 ] && sed 's/$/,ok,warm,/' "$log" >>"$raw"
    { echo "== $label: exit $rc"; cat "$log.err"; } >>"$errlog"
  fi
  now=$(date +%s.%N)
  secs=$(awk -v a="$start" -v b="$now" 'BEGIN{printf "%.1f", b-a}')
  progress "$label" "$(awk -v a="$start" -v b="$now" 'BEGIN{printf "%.3f", b-a}')"
  if [ $rc -eq 0 ]; then
    echo "bench: [$k/$total] $label: $(tail -n 1 "$raw" | cut -d, -f5) ms median (${secs} s); $(time_left)" >&2
  else
    status=FAIL
    [ $rc -eq 124 ] && status=TIMEOUT
    echo "bench: [$k/$total] $label: $status (exit $rc after ${secs} s); $(time_left)" >&2
    sed 's/^/    /' "$log.err" >&2
    echo "$w,$p,$impl,$workers,,,0,$status,$phase," >>"$raw"
    failed=1
  fi
done <"$planfile"
# This run's times, for the next run's estimates (a partial run, with
# HEIST_BENCH_ONLY, adds to the old ones rather than replacing them).
if [ -f "$timesfile" ]; then
  awk -F'\t' 'NR == FNR { t[$1] = $2; next } !($1 in t) { print }' \
    "$newtimes" "$timesfile" >>"$newtimes"
fi
cp "$newtimes" "$timesfile"

# Rows of one program run in several rounds become one: the median of the
# rounds' medians, the least min, the runs summed; a failed round makes the
# row failed. First-appearance order.
merged=$(mktemp)
awk -F, -v OFS=, '
  { k = $1 "," $2 "," $3 "," $4 "," $9
    if (!(k in seen)) { seen[k] = ++nk; key[nk] = k; first[nk] = $0 }
    i = seen[k]
    if ($8 != "ok") bad[i] = $0
    else { cnt[i]++; med[i, cnt[i]] = $5; runs[i] += $7
           if (!(i in lo) || $6 + 0 < lo[i] + 0) lo[i] = $6 } }
  END {
    for (i = 1; i <= nk; i++) {
      if (i in bad) { print bad[i]; continue }
      if (cnt[i] == 1) { print first[i]; continue }
      # insertion sort of the rounds medians
      for (a = 2; a <= cnt[i]; a++) {
        v = med[i, a]; b = a - 1
        while (b >= 1 && med[i, b] + 0 > v + 0) { med[i, b + 1] = med[i, b]; b-- }
        med[i, b + 1] = v
      }
      m = (cnt[i] % 2) ? med[i, (cnt[i] + 1) / 2] \
                       : sprintf("%.3f", (med[i, cnt[i] / 2] + med[i, cnt[i] / 2 + 1]) / 2)
      $0 = first[i]
      $5 = m; $6 = lo[i]; $7 = runs[i]
      print
    }
  }' "$raw" >"$merged"
mv "$merged" "$raw"

awk -F, -v OFS=, '
  { row[NR] = $0; n = NR
    if ($3 == "serial" && $8 == "ok") serial[$1 "," $2] = $5
    if ($3 == "heist" && $8 == "ok") {
      heist[$1 "," $2 "," $4 "," $9] = $5
      # For asyncio (1 thread) when heist has no 1-worker run: the one
      # worker count heist ran that workload, size and phase at; none if
      # several.
      wp = $1 "," $2 "," $9
      again = (wp in heist_any)  # before the assignment creates it
      heist_any[wp] = again ? "" : $5
    } }
  function ratio(num, den) {
    return (num != "" && den != "" && den + 0 > 0) ? sprintf("%.3f", num / den) : ""
  }
  END {
    print "workload,param,impl,workers,median_ms,min_ms,runs," \
          "ratio_vs_serial,ratio_vs_heist,status,phase,process_ms"
    for (i = 1; i <= n; i++) {
      $0 = row[i]
      k = $1 "," $2 "," $4 "," $9
      den = (k in heist) ? heist[k] : ""
      if (den == "" && $3 == "asyncio") den = heist_any[$1 "," $2 "," $9]
      print $1, $2, $3, $4, $5, $6, $7, ratio($5, serial[$1 "," $2]),
            ratio($5, den), $8, $9, $10
    }
  }' "$raw" >"$csv"
exit $failed
