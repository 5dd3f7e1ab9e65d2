#!/usr/bin/env python3
"""test/trace_check.py - runs trace_prog and checks the traces it writes.

Usage: trace_check.py TRACE_PROG

For each trace: valid JSON that Perfetto's JSON importer takes (every event
has ph, ts, pid and tid), a thread_name track per worker, slices whose
counts match the scheduler's counters (a "fork" slice per steal, a
"resume" slice per resumption, a suspend instant per suspension, a steal
instant per steal, a "task" slice per spawned task), flow starts and ends
that pair up by id (queued.json: forks that a suspension queued count and
trace as steals), and in the seed trace at least one flow from a wake to
a resumption. The small trace must say that it dropped events and still be
well formed.
"""
import collections
import json
import subprocess
import sys
import tempfile

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def load(path):
    with open(path) as f:
        return json.load(f)


def common(name, d, workers=2):
    ev = d["traceEvents"]
    for e in ev:
        for k in ("ph", "ts", "pid", "tid"):
            check(k in e, f"{name}: event without {k}: {e}")
    names = {e["tid"]: e["args"]["name"] for e in ev
             if e["ph"] == "M" and e["name"] == "thread_name"}
    for w in range(workers):
        check(names.get(w) == f"worker {w}", f"{name}: no track for worker {w}")
    # Slices on one track do not overlap unless nested.
    by_tid = collections.defaultdict(list)
    for e in ev:
        if e["ph"] == "X" and e.get("cat") != "wake":
            by_tid[e["tid"]].append((e["ts"], e["ts"] + e["dur"]))
    for tid, sl in by_tid.items():
        sl.sort()
        for (a0, a1), (b0, b1) in zip(sl, sl[1:]):
            check(b0 >= a1, f"{name}: slices overlap on track {tid}")
    return ev


def flows(ev):
    s = {e["id"]: e for e in ev if e["ph"] == "s"}
    f = {e["id"]: e for e in ev if e["ph"] == "f"}
    return s, f


def exact(name, ev, d, c):
    check(d["otherData"]["dropped_events"] == "0", f"{name}: events dropped")
    kinds = collections.Counter(e["args"]["kind"] for e in ev
                                if e["ph"] == "X" and "kind" in e.get("args", {}))
    inst = collections.Counter(e["name"] for e in ev if e["ph"] == "i")
    check(kinds["fork"] == c["steals"],
          f"{name}: {kinds['fork']} fork slices, {c['steals']} steals")
    check(inst["steal"] == c["steals"],
          f"{name}: {inst['steal']} steal instants, {c['steals']} steals")
    check(kinds["resume"] == c["resumes"],
          f"{name}: {kinds['resume']} resume slices, {c['resumes']} resumes")
    check(inst["suspend"] == c["suspends"],
          f"{name}: {inst['suspend']} suspends, counter {c['suspends']}")
    check(kinds["task"] == c["tasks_spawned"],
          f"{name}: {kinds['task']} task slices, {c['tasks_spawned']} tasks")
    s, f = flows(ev)
    check(set(s) == set(f), f"{name}: unpaired flow ids")
    # Every wake's flow ends at a resumption, every steal's at a fork slice.
    slices = [e for e in ev if e["ph"] == "X"]
    for fid, fe in f.items():
        enclosing = [x for x in slices if x["tid"] == fe["tid"] and
                     x["ts"] <= fe["ts"] <= x["ts"] + x["dur"]]
        want = "resume" if fe["name"] == "wake" else "fork"
        check(any(x.get("args", {}).get("kind") == want for x in enclosing),
              f"{name}: flow {fid} ({fe['name']}) does not end in a {want} slice")
    # Every steal's flow starts inside a slice of the victim's (the fork's
    # parent, running when its fork was taken).
    for fid, se in s.items():
        if se["name"] != "steal":
            continue
        check(any(x["tid"] == se["tid"] and
                  x["ts"] <= se["ts"] <= x["ts"] + x["dur"] for x in slices),
              f"{name}: steal flow {fid} starts outside any slice")
    return s, f


def main():
    prog = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([prog, tmp], capture_output=True, text=True,
                             timeout=300)
        sys.stdout.write(out.stdout)
        sys.stderr.write(out.stderr)
        check(out.returncode == 0, f"trace_prog exited {out.returncode}")
        runs = {}
        for line in out.stdout.splitlines():
            c = json.loads(line)
            runs[c["file"].rsplit("/", 1)[1]] = c
        check(set(runs) == {"seed.json", "fib.json", "small.json",
                            "queued.json"},
              f"runs: {sorted(runs)}")

        d = load(runs["seed.json"]["file"])
        ev = common("seed", d)
        s, f = exact("seed", ev, d, runs["seed.json"])
        wakes = [i for i in s if s[i]["name"] == "wake" and i in f]
        check(len(wakes) >= 3, f"seed: {len(wakes)} wake flows (want >= 3)")
        names = {e["name"] for e in ev if e["ph"] == "X"}
        for fn in ("trace_main", "trace_foo", "trace_bar"):
            check(fn in names, f"seed: no slice named {fn}")
        check(any(e["ph"] == "M" and e["args"].get("name") == "timer thread"
                  for e in ev), "seed: no timer thread track")
        check(any(e["ph"] == "i" and e["name"] == "suspend" and
                  e["args"]["why"] == "sleep" for e in ev),
              "seed: no sleep suspension")

        d = load(runs["fib.json"]["file"])
        ev = common("fib", d)
        s, f = exact("fib", ev, d, runs["fib.json"])
        check(runs["fib.json"]["steals"] > 0, "fib: no steal")
        forks = {e["name"] for e in ev if e["ph"] == "X" and
                 e.get("args", {}).get("kind") == "fork"}
        check(forks and forks <= {"trace_probe", "trace_noop", "trace_fib"},
              f"fib: fork slices named {forks}")
        check(any(e["ph"] == "X" and e["name"] == "trace_fib_main"
                  for e in ev), "fib: no slice named trace_fib_main")
        check(any(e["name"] == "steal" for e in s.values()),
              "fib: no steal flow")

        # Queued forks (lib/fork.c, "Bounded drains") count and trace as
        # steals (with no arrow): of the 100, the drain runs 8 itself,
        # fewer if thieves took some first or the stack bound came first,
        # never more.
        d = load(runs["queued.json"]["file"])
        ev = common("queued", d)
        exact("queued", ev, d, runs["queued.json"])
        check(runs["queued.json"]["steals"] >= 92,
              f"queued: {runs['queued.json']['steals']} steals, want >= 92")

        d = load(runs["small.json"]["file"])
        ev = common("small", d)
        dropped = int(d["otherData"]["dropped_events"])
        recorded = int(d["otherData"]["recorded_events"])
        check(d["otherData"]["ring_events"] == "16", "small: ring size")
        check(dropped > 0, "small: nothing dropped from 16-event rings")
        marks = sum(e["args"]["count"] for e in ev
                    if e["ph"] == "i" and e["name"] == "dropped events")
        check(marks == dropped, f"small: dropped {dropped}, marked {marks}")
        check(recorded - dropped <= 16 * 4, "small: kept more than the rings")
    if failures:
        print(f"trace_check: {len(failures)} failures")
        return 1
    print("trace_check: ok")
    return 0


sys.exit(main())
