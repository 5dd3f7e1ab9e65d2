#!/usr/bin/awk -f
# tools/bench_table.awk - turns the CSV of bench/run.sh into Markdown tables.
#
#   awk -F, -f tools/bench_table.awk bench.csv
#
# Table 1: times, one row per workload, size and worker count; each cell is
# "median (min)" in ms, all from the same suite run. Table 2: derived ratios
# (T1/Ts, the 2-worker speedup T1/T2, oversubscription T8/T2) and the idle
# CPU. The Lace column holds figures measured while planning heist, on the
# same machine but not in this run: they are labelled as such. Table 3: the
# futures workloads, heist against Python's asyncio and Go, with the time
# per item and the targets of the futures issue. Tables 4-6: issue 6's
# shapes (seed, hops = its chain, fanin), cold and warm, heist and Go at 1
# and 2 workers and asyncio, the whole-process times of the cold runs, and
# issue 6's targets marked met or MISSED; then the 1M-waiting figure and
# its floor (fresh pages, no scheduler) when the CSV has them.
#
# The CSV's phase column (cold or warm) and process_ms came with the
# shapes; a CSV without them (an older run) reads as all warm.

function num(x) { return x + 0 }

function fmt(ms) {
  if (ms == "") return ""
  ms = num(ms)
  if (ms < 10) return sprintf("%.2f", ms)
  if (ms < 100) return sprintf("%.1f", ms)
  return sprintf("%.0f", ms)
}

function cell(k) {
  if (!(k in status)) return "-"
  if (status[k] != "ok") return status[k]
  return fmt(med[k]) " (" fmt(mn[k]) ")"
}

function ratio(a, b) {
  if (a == "" || b == "" || num(b) <= 0) return "-"
  return sprintf("%.2f", num(a) / num(b)) "x"
}

function okmed(k) { return (k in status && status[k] == "ok") ? med[k] : "" }

function name(w, p) {
  if (w == "skynet") return "skynet(" p " leaves)"
  return w "(" p ")"
}

BEGIN {
  # Planning figures (medians, ms) of Lace, not re-measured: workload,param,
  # workers -> ms; and the serial time they were compared with.
  lace["fib,35,1"] = 69; lace_serial["fib,35"] = 29
  lace["skynet,1000000,2"] = 11
  np = split("heist omp tbb", pl, " ")
  # The futures workloads and what one item of each is.
  split("pairs chain gather pingpong sleeps forkwait", fw, " ")
  for (i in fw) futures[fw[i]] = 1
  item["pairs"] = "pair"; item["chain"] = "link"; item["gather"] = "task"
  item["pingpong"] = "round trip"; item["forkwait"] = "child"
  # Issue 6's shapes, in its order, and the names its table gives them.
  nsh = split("seed hops fanin", shape_list, " ")
  for (i = 1; i <= nsh; i++) shapes[shape_list[i]] = 1
  sname["seed"] = "seed"; sname["hops"] = "chain (hops)"; sname["fanin"] = "fanin"
}

NR == 1 { next }  # header

{
  w = $1; p = $2; impl = $3; wk = $4
  k = w "," p "," impl "," wk
  med[k] = $5; mn[k] = $6; status[k] = $10
  ph = ($11 == "") ? "warm" : $11
  if (w in shapes) {
    sk = w "," impl "," wk "," ph
    smed[sk] = $5; sst[sk] = $10; sproc[sk] = $12
    if (!(w in sparam)) sparam[w] = p
    next
  }
  if (w == "waiting") {
    kk = k "," ph  # cold and warm rows apart
    med[kk] = $5; mn[kk] = $6; status[kk] = $10
    waiting[++nwaiting] = kk
    next
  }
  if (ph == "cold") next  # no other workload has cold rows
  if (w == "idle") {
    if (!((w "," p) in seen_idle)) { seen_idle[w "," p] = 1; idle[++nidle] = w "," p }
    idle_workers[w "," p] = wk
    next
  }
  if (w in futures) {
    if (impl == "heist") {
      fk = w "," p "," wk
      if (!(fk in seen_f)) { seen_f[fk] = 1; frows[++nf] = fk }
    }
    # The sizes each peer ran a workload at, for a peer run at a smaller
    # size than heist (asyncio's gather).
    if (status[k] == "ok" && !((w "," impl) in psize)) psize[w "," impl] = p
    next
  }
  if (impl == "serial") next
  if (impl == "heist_static") { linked[++nlinked] = w "," p "," wk; next }
  if (impl == "heist_fn" || impl == "heist_leaf" || impl == "heist_user" ||
      impl == "heist_user_leaf")
    next   # in the linked table
  rk = w "," p "," wk
  if (!(rk in seen)) { seen[rk] = 1; rows[++nrows] = rk }
  wp = w "," p
  if (!(wp in seen_wp)) { seen_wp[wp] = 1; wps[++nwp] = wp }
  has[wp "," wk] = 1
}

END {
  # A run of the futures workloads only (tools/bench --only) has no
  # fork-join tables.
  if (nrows > 0 || nwp > 0 || nidle > 0) forkjoin_tables()
  futures_table()
  linked_table()
  shapes_tables()
  waiting_table()
}

# Forks made by fib(n) with one fork per call of n >= 2: fib(n+1) - 1.
function fib_forks(n,   a, b, c, i) {
  a = 0; b = 1
  for (i = 0; i < n + 1; i++) { c = a + b; a = b; b = c }
  return a - 1
}

# The cost of one fork+join in ns: (time - serial time) / forks, for fib at
# 1 worker only (k: the run's key, sk: the serial run's).
function fork_ns(k, sk, p) {
  if (okmed(k) == "" || okmed(sk) == "" || fib_forks(p) <= 0) return "-"
  return sprintf("%.2f", (num(med[k]) - num(med[sk])) * 1e6 / fib_forks(p))
}

function forkjoin_tables(   i, j, r, w, p, wk, sk, hk, ok_, tk, lk, wp, impl, line, k) {
  print "Times in ms: median (min) of the timed repeats, in-process, all in this run (serial and heist rows: the median of interleaved rounds' medians, bench/README.md, \"Rounds\")."
  print ""
  print "| workload | workers | serial | heist | OpenMP (libgomp) | oneTBB | heist/serial | OpenMP/heist | oneTBB/heist | Lace (planning, not re-measured) |"
  print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for (i = 1; i <= nrows; i++) {
    split(rows[i], r, ",")
    w = r[1]; p = r[2]; wk = r[3]
    sk = w "," p ",serial,1"
    hk = w "," p ",heist," wk
    ok_ = w "," p ",omp," wk
    tk = w "," p ",tbb," wk
    lk = w "," p "," wk
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name(w, p), wk,
      cell(sk), cell(hk), cell(ok_), cell(tk),
      ratio(okmed(hk), okmed(sk)), ratio(okmed(ok_), okmed(hk)),
      ratio(okmed(tk), okmed(hk)), (lk in lace) ? lace[lk] : "-"
  }

  print ""
  print "Derived from the medians above (lower is better, except speedup). " \
        "Lace's T1/Ts divides its planning time by the serial time measured " \
        "with it then (fib(35): " lace_serial["fib,35"] " ms), not by this " \
        "run's serial time: " \
        "compare Lace with heist by the absolute times above."
  print ""
  print "| metric | heist | OpenMP (libgomp) | oneTBB | Lace (planning, not re-measured) |"
  print "|---|---:|---:|---:|---:|"
  for (i = 1; i <= nwp; i++) {
    wp = wps[i]
    split(wp, r, ","); w = r[1]; p = r[2]
    sk = wp ",serial,1"
    if ((wp ",1") in has && (sk in status)) {
      line = "| " name(w, p) " T1/Ts (1 worker / serial) |"
      for (j = 1; j <= np; j++) {
        impl = pl[j]
        line = line " " ratio(okmed(wp "," impl ",1"), okmed(sk)) " |"
      }
      lk = wp ",1"
      line = line " " ((lk in lace && wp in lace_serial) ? sprintf("%.2fx", lace[lk] / lace_serial[wp]) : "-") " |"
      print line
    }
    if (w == "fib" && (wp ",1") in has && (sk in status)) {
      line = "| " name(w, p) " ns per fork+join, (T1 - Ts) / " fib_forks(p) " forks |"
      for (j = 1; j <= np; j++) {
        impl = pl[j]
        line = line " " fork_ns(wp "," impl ",1", sk, p) " |"
      }
      lk = wp ",1"
      line = line " " ((lk in lace && wp in lace_serial) ? sprintf("%.2f", (lace[lk] - lace_serial[wp]) * 1e6 / fib_forks(p)) : "-") " |"
      print line
    }
    if ((wp ",1") in has && (wp ",2") in has) {
      line = "| " name(w, p) " speedup T1/T2 (2 cores) |"
      for (j = 1; j <= np; j++) {
        impl = pl[j]
        line = line " " ratio(okmed(wp "," impl ",1"), okmed(wp "," impl ",2")) " |"
      }
      print line " - |"
    }
    if ((wp ",8") in has && (wp ",2") in has) {
      line = "| " name(w, p) " oversubscribed T8/T2 (8 vs 2 workers, 2 cores) |"
      for (j = 1; j <= np; j++) {
        impl = pl[j]
        line = line " " ratio(okmed(wp "," impl ",8"), okmed(wp "," impl ",2")) " |"
      }
      print line " - |"
    }
  }
  for (i = 1; i <= nidle; i++) {
    wp = idle[i]; split(wp, r, ","); wk = idle_workers[wp]
    line = "| idle CPU, ms per idle second (" wk " workers, " r[2] " ms windows) |"
    for (j = 1; j <= np; j++) {
      impl = pl[j]
      k = wp "," impl "," wk
      line = line " " ((k in status && status[k] == "ok") ? sprintf("%.2f", num(med[k])) : cell(k)) " |"
    }
    print line " - |"
  }

}

function linked_table(   i, r, hk, sk, fk, uk, ulk, srk, fns) {
  if (nlinked == 0) return
  print ""
  print "heist linked with the shared library (the tables above) and with the static one; fib with heist_join_fn (the join that names the function) and fib with its leaf test on the argument before the conversion (README: \"Fork-join code the compiler can speed up\"), both libheist.so; and fib as a user builds it (user build: the library installed, `cc -O2` with `pkg-config --cflags --libs heist`, no NDEBUG, so the inline join's check is on; the others are built -O3 -DNDEBUG), and the same with the leaf test on the argument for release (user leaf: `cc -O2 -DNDEBUG`, the join's check off): same run. ns per fork+join: (T - Ts) / forks at 1 worker, for the .so, the .a, heist_join_fn, the leaf test on the argument, the user build and the user leaf build."
  print ""
  print "| workload | workers | heist, libheist.so | heist, libheist.a | .a / .so | heist_join_fn | join_fn / join | leaf test on arg | leaf / join | user build | user / .so | user leaf, NDEBUG | user leaf / user | ns per fork+join (.so / .a / join_fn / leaf / user / user leaf) |"
  print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for (i = 1; i <= nlinked; i++) {
    split(linked[i], r, ",")
    hk = r[1] "," r[2] ",heist," r[3]
    sk = r[1] "," r[2] ",heist_static," r[3]
    fk = r[1] "," r[2] ",heist_fn," r[3]
    lk = r[1] "," r[2] ",heist_leaf," r[3]
    uk = r[1] "," r[2] ",heist_user," r[3]
    ulk = r[1] "," r[2] ",heist_user_leaf," r[3]
    srk = r[1] "," r[2] ",serial,1"
    fns = "-"
    if (r[1] == "fib" && r[3] == 1)
      fns = fork_ns(hk, srk, r[2]) " / " fork_ns(sk, srk, r[2]) " / " fork_ns(fk, srk, r[2]) " / " fork_ns(lk, srk, r[2]) " / " fork_ns(uk, srk, r[2]) " / " fork_ns(ulk, srk, r[2])
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name(r[1], r[2]), r[3], cell(hk),
      cell(sk), ratio(okmed(sk), okmed(hk)), cell(fk), ratio(okmed(fk), okmed(hk)),
      cell(lk), ratio(okmed(lk), okmed(hk)), cell(uk), ratio(okmed(uk), okmed(hk)),
      cell(ulk), ratio(okmed(ulk), okmed(uk)), fns
  }
}

# The key of a peer's row for heist's row w,p,wk: the same size, or, when the
# peer did not run that size, the size it did run (shrunk = 1). asyncio has
# one thread whatever heist's worker count; Go runs with heist's.
function peer_key(w, p, wk, impl,   k, wkp) {
  wkp = (impl == "asyncio") ? 1 : wk
  shrunk = 0
  k = w "," p "," impl "," wkp
  if (k in status) return k
  if ((w "," impl) in psize) {
    shrunk = 1
    return w "," psize[w "," impl] "," impl "," wkp
  }
  return k
}

function per_item_ns(k, size) {
  if (okmed(k) == "" || size <= 0) return ""
  return num(med[k]) * 1e6 / size
}

function ns(x) {
  if (x == "") return "-"
  if (x < 10) return sprintf("%.2f", x)
  if (x < 100) return sprintf("%.1f", x)
  return sprintf("%.0f", x)
}

function xratio(a, b) {
  if (a == "" || b == "" || b <= 0) return "-"
  return sprintf("%.1fx", a / b)
}

function futures_table(   i, r, w, p, wk, hk, ak, gk, ashr, gshr, h, a, g, acell, gcell, target, t) {
  if (nf == 0) return
  if (nrows > 0 || nwp > 0 || nidle > 0) print ""
  print "Futures and tasks: heist against Python's asyncio (one thread, the " \
        "stock event loop) and Go (goroutines, channels as futures, " \
        "GOMAXPROCS = heist's workers). Times in ms, median (min), all in " \
        "this run; per item: the median over the size (ns per pair, link, child, " \
        "task or round trip). Ratios divide the peer's time per item by " \
        "heist's: above 1x, heist is faster. A peer run at a smaller size " \
        "than heist says so, and its ratio compares times per item."
  print ""
  print "| workload | heist workers | heist | asyncio | Go | heist ns/item | asyncio ns/item | Go ns/item | asyncio/heist | Go/heist | target |"
  print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for (i = 1; i <= nf; i++) {
    split(frows[i], r, ",")
    w = r[1]; p = r[2]; wk = r[3]
    hk = w "," p ",heist," wk
    ak = peer_key(w, p, wk, "asyncio"); ashr = shrunk
    gk = peer_key(w, p, wk, "go"); gshr = shrunk
    split(ak, ra, ","); split(gk, rg, ",")
    acell = cell(ak); if (ashr && acell != "-") acell = acell " at size " ra[2]
    gcell = cell(gk); if (gshr && gcell != "-") gcell = gcell " at size " rg[2]
    if (w in item) {
      h = per_item_ns(hk, p); a = per_item_ns(ak, ra[2]); g = per_item_ns(gk, rg[2])
    } else {
      # sleeps: the batch is the item; compare the wall times.
      h = okmed(hk); a = okmed(ak); g = okmed(gk)
      if (ashr) a = ""
      if (gshr) g = ""
    }
    target = "-"
    if (w == "sleeps") {
      target = "about 10 ms (each sleeps 10 ms)"
    } else if (p == 100000 && wk == 2 && (w == "pairs" || w == "chain" || w == "gather")) {
      t = (a != "" && h != "") ? ((a / h >= 100) ? "met" : "MISSED") : "not measured"
      target = ">= 100x asyncio: " t
      if (w != "gather") {
        t = (g != "" && h != "") ? ((g > h) ? "met" : "MISSED") : "not measured"
        target = target "; faster than Go: " t
      }
    }
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
      w "(" p ")", wk, cell(hk), acell, gcell,
      (w in item) ? ns(h) : "-", (w in item) ? ns(a) : "-", (w in item) ? ns(g) : "-",
      xratio(a, h), xratio(g, h), target
  }
}

# Issue 6's shapes. sv: the median of a shape's row, "" unless it ran ok;
# scell: the same for a cell (or its status, or "-").
function sv(w, impl, wk, ph,   k) {
  k = w "," impl "," wk "," ph
  return (k in sst && sst[k] == "ok" && smed[k] != "") ? smed[k] : ""
}
function scell(w, impl, wk, ph,   k) {
  k = w "," impl "," wk "," ph
  if (!(k in sst)) return "-"
  if (sst[k] != "ok") return sst[k]
  return fmt(smed[k])
}
function cw(w, impl, wk) { return scell(w, impl, wk, "cold") " / " scell(w, impl, wk, "warm") }
function pcell(w, impl, wk,   k) {
  k = w "," impl "," wk ",cold"
  if (!(k in sst)) return "-"
  if (sst[k] != "ok" || sproc[k] == "") return sst[k]
  return fmt(sproc[k])
}
function sratio(a, b) { return (a == "" || b == "" || num(b) <= 0) ? "" : num(a) / num(b) }
function xr(r) {
  if (r == "") return "-"
  return (r >= 10) ? sprintf("%.0fx", r) : sprintf("%.2fx", r)
}
# target_row SHAPE WHAT R1 R2 OP LIMIT: one row of the targets table; R1
# and R2 are the 1- and 2-worker ratios (R1 "-" where the target has only
# one), met when each is OP ("ge", "gt", "le") LIMIT.
function target_row(w, what, r1, r2, op, lim,   v, i, ok, missing, verdict) {
  v[1] = r1; v[2] = r2; ok = 1; missing = 0
  for (i = 1; i <= 2; i++) {
    if (v[i] == "-") continue
    if (v[i] == "") { missing = 1; continue }
    if (op == "ge" && !(v[i] >= lim)) ok = 0
    if (op == "gt" && !(v[i] > lim)) ok = 0
    if (op == "le" && !(v[i] <= lim)) ok = 0
  }
  if (!ok) verdict = "**MISSED**"
  else if (missing) verdict = "not measured"
  else verdict = "met"
  ntargets++
  if (verdict == "met") nmet++
  printf "| %s | %s | %s | %s | %s |\n", sname[w], what,
    (r1 == "-") ? "-" : xr(r1), xr(r2), verdict
}

function shapes_tables(   i, w, ac, aw) {
  nshown = 0
  for (i = 1; i <= nsh; i++) if (shape_list[i] in sparam) nshown++
  if (nshown == 0) return
  if (nrows > 0 || nwp > 0 || nidle > 0 || nf > 0 || nlinked > 0) print ""
  print "Issue 6's shapes, everything spawned before anything completes: " \
        "seed (every (foo, bar) pair spawned, then gathered; foo awaits " \
        "the future bar resolves), chain (hops: hop i awaits future i and " \
        "resolves i+1; main resolves 0, awaits N, gathers the hops), fanin " \
        "(N trivial tasks, gathered). Cold: one run in a fresh process, " \
        "timed by the program from before its runtime is created to after " \
        "it is freed (heist_sched_new to heist_sched_free; asyncio: " \
        "new_event_loop to close; Go: main's start to its end, its runtime " \
        "already up), median of several processes. Warm: median of the " \
        "timed repeats on the same runtime after one warm-up. Median ms, " \
        "cold / warm, all in this run; asyncio has one thread."
  print ""
  print "| shape | items | heist 1w cold / warm | heist 2w cold / warm | Go 1 cold / warm | Go 2 cold / warm | asyncio cold / warm |"
  print "|---|---:|---:|---:|---:|---:|---:|"
  for (i = 1; i <= nsh; i++) {
    w = shape_list[i]
    if (!(w in sparam)) continue
    printf "| %s | %s | %s | %s | %s | %s | %s |\n", sname[w], sparam[w],
      cw(w, "heist", 1), cw(w, "heist", 2), cw(w, "go", 1), cw(w, "go", 2),
      cw(w, "asyncio", 1)
  }
  print ""
  print "The cold runs as whole processes: median wall time from exec to " \
        "exit as bench/run.sh sees it (the interpreter's or Go runtime's " \
        "start, dynamic linking, the imports, and timeout(1)'s own start " \
        "included), ms."
  print ""
  print "| shape | heist 1w | heist 2w | Go 1 | Go 2 | asyncio |"
  print "|---|---:|---:|---:|---:|---:|"
  for (i = 1; i <= nsh; i++) {
    w = shape_list[i]
    if (!(w in sparam)) continue
    printf "| %s | %s | %s | %s | %s | %s |\n", sname[w], pcell(w, "heist", 1),
      pcell(w, "heist", 2), pcell(w, "go", 1), pcell(w, "go", 2),
      pcell(w, "asyncio", 1)
  }
  print ""
  print "Issue 6's targets, checked on the medians above (the programs' own " \
        "cold clock, not the whole process). asyncio/heist and Go/heist " \
        "divide the peer's time by heist's at the same worker count " \
        "(asyncio's one thread against each): above 1x heist is faster. " \
        "T2/T1 is heist's 2-worker time over its 1-worker time. A target " \
        "is met when both worker counts meet it."
  print ""
  print "| shape | target | 1 worker | 2 workers | met |"
  print "|---|---|---:|---:|---|"
  ntargets = 0; nmet = 0
  for (i = 1; i <= nsh; i++) {
    w = shape_list[i]
    if (!(w in sparam)) continue
    aw = sv(w, "asyncio", 1, "warm"); ac = sv(w, "asyncio", 1, "cold")
    target_row(w, "warm >= 100x asyncio (asyncio/heist)",
      sratio(aw, sv(w, "heist", 1, "warm")), sratio(aw, sv(w, "heist", 2, "warm")), "ge", 100)
    target_row(w, "cold >= 20x asyncio (asyncio/heist)",
      sratio(ac, sv(w, "heist", 1, "cold")), sratio(ac, sv(w, "heist", 2, "cold")), "ge", 20)
    target_row(w, "faster than Go, warm (Go/heist > 1)",
      sratio(sv(w, "go", 1, "warm"), sv(w, "heist", 1, "warm")),
      sratio(sv(w, "go", 2, "warm"), sv(w, "heist", 2, "warm")), "gt", 1)
    target_row(w, "faster than Go, cold (Go/heist > 1)",
      sratio(sv(w, "go", 1, "cold"), sv(w, "heist", 1, "cold")),
      sratio(sv(w, "go", 2, "cold"), sv(w, "heist", 2, "cold")), "gt", 1)
    target_row(w, "2 workers <= 1 worker, warm (T2/T1 <= 1)", "-",
      sratio(sv(w, "heist", 2, "warm"), sv(w, "heist", 1, "warm")), "le", 1)
    target_row(w, "2 workers <= 1.25x 1 worker, cold (T2/T1 <= 1.25)", "-",
      sratio(sv(w, "heist", 2, "cold"), sv(w, "heist", 1, "cold")), "le", 1.25)
  }
  print ""
  print nmet " of " ntargets " targets met."
}

# The 1M-waiting figure (bench/waiting_heist, when built): its own row, and
# issue 6's target on it, read as the time to suspend them all; the floor
# (bench/waiting_floor: as many fresh pages written, no scheduler) and the
# cold figure against it.
function waiting_table(   i, r, k, t, fk, prog, vs) {
  if (nwaiting == 0) return
  print ""
  print "Tasks suspended at once, each awaiting one gate future " \
        "(bench/waiting_heist; its median is read as the time to suspend " \
        "them all). Target: <= 1000 ms on 2 workers for 1,000,000. The " \
        "floor (bench/waiting_floor) writes as many fresh pages, one a " \
        "waiter, with no scheduler: a waiting task holds its stack's top " \
        "page, so no cold run can take less on this machine."
  print ""
  print "| waiting tasks | workers | phase | program | ms, median (min) | against the floor | target |"
  print "|---:|---:|---|---|---:|---:|---|"
  for (i = 1; i <= nwaiting; i++) {
    k = waiting[i]; split(k, r, ",")
    t = "-"; vs = "-"
    prog = (r[3] == "floor") ? "floor (fresh pages)" : r[3]
    if (r[3] == "heist") {
      if (r[2] == 1000000 && r[4] == 2 && okmed(k) != "")
        t = (num(med[k]) <= 1000) ? "met" : "**MISSED**"
      fk = r[1] "," r[2] ",floor," r[4] "," r[5]
      vs = xr(sratio(okmed(k), okmed(fk)))
    }
    printf "| %s | %s | %s | %s | %s | %s | %s |\n", r[2], r[4], r[5], prog,
      cell(k), vs, t
  }
}
