// bench/bench_go.go - harness.c's driver for the Go peers, built into each
// <workload>_go program beside its own file.
//
//	PROGRAM [-w WORKERS] [-r REPS] [-W WARMUP] [-c] [PARAM]
//
// -w sets GOMAXPROCS (the threads that run goroutines at once, Go's worker
// count). The program runs the workload WARMUP times untimed, then REPS
// times timed, checks every result and prints one CSV row:
//
//	workload,param,go,workers,median_ms,min_ms,runs
//
// -c (cold): one run, timed from the start of main's work (before
// GOMAXPROCS is set) to its end; the row says runs 1. Go's runtime (its
// heap, scheduler and first threads) already exists when main starts, and
// nothing is freed at the end (the process exits): bench/run.sh's whole
// process time of the cold runs covers both.
//
// A wrong result prints "FAIL: ..." on stderr and exits with status 1.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"time"
)

type benchArgs struct {
	workload string
	param    int64
	workers  int
	reps     int
	warmup   int
	cold     bool
}

func (a *benchArgs) usage() {
	fmt.Fprintf(os.Stderr,
		"usage: %s_go [-w WORKERS] [-r REPS] [-W WARMUP] [-c] [PARAM]\n", a.workload)
	os.Exit(2)
}

func (a *benchArgs) parseInt(s string, lo, hi int64) int64 {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		a.usage()
	}
	return v
}

// fail reports a wrong result and exits with status 1.
func (a *benchArgs) fail(what string) {
	fmt.Fprintf(os.Stderr, "FAIL: %s(%d) go, %d workers: %s\n", a.workload,
		a.param, a.workers, what)
	os.Exit(1)
}

// benchMain parses the command line by hand (the C programs take the options
// after PARAM too, where the flag package stops), then times body(param) and
// checks each result against expected(param).
func benchMain(workload string, paramDefault int64,
	body func(param int64) int64, expected func(param int64) int64) {
	// 2 workers unless told otherwise, as the heist futures programs.
	a := &benchArgs{workload: workload, param: paramDefault, workers: 2,
		reps: 5, warmup: 1}
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		s := args[i]
		switch {
		case s == "-w" && i+1 < len(args):
			i++
			a.workers = int(a.parseInt(args[i], 1, 1024))
		case s == "-r" && i+1 < len(args):
			i++
			a.reps = int(a.parseInt(args[i], 1, 100000))
		case s == "-W" && i+1 < len(args):
			i++
			a.warmup = int(a.parseInt(args[i], 0, 100000))
		case s == "-c":
			a.cold = true
		case len(s) > 0 && s[0] != '-':
			a.param = a.parseInt(s, 0, 1000000000)
		default:
			a.usage()
		}
	}
	want := expected(a.param)
	if a.cold {
		t0 := time.Now()
		runtime.GOMAXPROCS(a.workers)
		got := body(a.param)
		ms := float64(time.Since(t0).Nanoseconds()) / 1e6
		if got != want {
			a.fail(fmt.Sprintf("result %d, expected %d", got, want))
		}
		fmt.Printf("%s,%d,go,%d,%.3f,%.3f,1\n", a.workload, a.param,
			a.workers, ms, ms)
		return
	}
	runtime.GOMAXPROCS(a.workers)
	samples := make([]float64, 0, a.reps)
	for rep := 0; rep < a.warmup+a.reps; rep++ {
		t0 := time.Now()
		got := body(a.param)
		ms := float64(time.Since(t0).Nanoseconds()) / 1e6
		if got != want {
			a.fail(fmt.Sprintf("result %d, expected %d", got, want))
		}
		if rep >= a.warmup {
			samples = append(samples, ms)
		}
	}
	sort.Float64s(samples)
	n := len(samples)
	median := samples[n/2]
	if n%2 == 0 {
		median = (samples[n/2-1] + samples[n/2]) / 2
	}
	fmt.Printf("%s,%d,go,%d,%.3f,%.3f,%d\n", a.workload, a.param, a.workers,
		median, samples[0], n)
}
