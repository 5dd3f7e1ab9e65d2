"""bench/bench_asyncio.py - harness.c's driver for the asyncio peers.

Each <workload>_asyncio.py program parses the same command line as the C
programs,

    python3 PROGRAM [-w WORKERS] [-r REPS] [-W WARMUP] [-c] [PARAM]

creates one event loop, runs the workload WARMUP times untimed and REPS times
timed on it (one run_until_complete each, as one heist_run each in C),
checks every result and prints one CSV row:

    workload,param,asyncio,1,median_ms,min_ms,runs

-c (cold): one run, timed from before the event loop is created to after
it is closed; the row says runs 1. The interpreter's start and the import of
asyncio come before it: bench/run.sh's whole process time of the cold runs
covers them.

asyncio runs every task on one thread: -w is accepted for a uniform command
line and ignored, and the row says 1 worker. A wrong result prints
"FAIL: ..." on stderr and exits with status 1.
"""

import asyncio
import statistics
import sys
import time


def _usage(workload):
    sys.stderr.write(
        f"usage: {workload}_asyncio.py [-w WORKERS] [-r REPS] [-W WARMUP] "
        "[-c] [PARAM]\n")
    sys.exit(2)


def _int(workload, s, lo, hi):
    try:
        v = int(s, 10)
    except ValueError:
        _usage(workload)
    if v < lo or v > hi:
        _usage(workload)
    return v


def fail(workload, param, what):
    sys.stderr.write(f"FAIL: {workload}({param}) asyncio, 1 worker: {what}\n")
    sys.exit(1)


def main(workload, param_default, body, expected):
    """Runs body(param) (a coroutine function) and checks that its result
    equals expected(param)."""
    param, reps, warmup, cold = param_default, 5, 1, False
    argv = sys.argv[1:]
    i = 0
    while i < len(argv):
        s = argv[i]
        if s in ("-w", "-r", "-W") and i + 1 < len(argv):
            i += 1
            if s == "-w":
                _int(workload, argv[i], 1, 1024)
            elif s == "-r":
                reps = _int(workload, argv[i], 1, 100000)
            else:
                warmup = _int(workload, argv[i], 0, 100000)
        elif s == "-c":
            cold = True
        elif not s.startswith("-"):
            param = _int(workload, s, 0, 1000000000)
        else:
            _usage(workload)
        i += 1

    want = expected(param)
    if cold:
        t0 = time.perf_counter()
        loop = asyncio.new_event_loop()
        got = loop.run_until_complete(body(param))
        loop.close()
        ms = (time.perf_counter() - t0) * 1e3
        if got != want:
            fail(workload, param, f"result {got}, expected {want}")
        print(f"{workload},{param},asyncio,1,{ms:.3f},{ms:.3f},1", flush=True)
        return
    loop = asyncio.new_event_loop()
    samples = []
    for rep in range(warmup + reps):
        t0 = time.perf_counter()
        got = loop.run_until_complete(body(param))
        ms = (time.perf_counter() - t0) * 1e3
        if got != want:
            fail(workload, param, f"result {got}, expected {want}")
        if rep >= warmup:
            samples.append(ms)
    loop.close()
    print(f"{workload},{param},asyncio,1,{statistics.median(samples):.3f},"
          f"{min(samples):.3f},{reps}", flush=True)
