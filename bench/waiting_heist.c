/*
 * bench/waiting_heist.c - N tasks waiting at once (issue "Futures at
 * scale", item 4): main spawns N tasks that each await one gate future,
 * and waits until all N are suspended; then it completes the gate and
 * waits for them to end.
 *
 * The time measured is the suspension of all N: from the first spawn until
 * the scheduler's suspends counter says every waiter is suspended. While
 * they all wait, the program reads the resident set (/proc/self/statm,
 * against the one before the run) and counts the process's memory
 * mappings (lines of /proc/self/maps) and the page tables' memory
 * (VmPTE in /proc/self/status, against the one before the run: the
 * kernel's memory for mapping the stacks, which the resident set leaves
 * out); each run prints them on stderr:
 *
 *     waiting: N=... suspend_ms=... rss_kib_per_waiter=... maps=...
 *         pt_kib_per_waiter=...
 *
 * and the CSV row on stdout says workload,param,impl,workers,median_ms,
 * min_ms,runs like every other program (median and min of the
 * suspension times, warm-up runs left out).
 *
 * With WAITING_IDLE_MS set, the program sleeps that long (outside the
 * scheduler) before every round but the first: long enough (over a
 * second), the scheduler gives the idle stacks beyond its pool's budget
 * back to the kernel, and the round measures a burst that comes back
 * after an idle spell (its stacks' pages are faulted in again).
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "bench_heist.h"

static bench_args args;
static heist_sched *sched;
static heist_future *gate, *all_done;
static atomic_long left;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long rss_kib(void)
{
    long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* The page tables' size (VmPTE), in KiB; -1 if unknown. */
static long pt_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmPTE: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static long maps_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;
    if (!f)
        return -1;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static uint64_t suspends(void)
{
    heist_stats st;
    bench_heist_check(&args, heist_sched_stats(sched, &st), "stats");
    return st.total.suspends;
}

static void *waiter(void *arg)
{
    (void)arg;
    bench_heist_check(&args, heist_await(gate, NULL), "waiter: await");
    /* Release: the last one's set_result publishes every decrement. */
    if (atomic_fetch_sub_explicit(&left, 1, memory_order_acq_rel) == 1)
        bench_heist_check(&args, heist_future_set_result(all_done, NULL),
                          "set_result(all_done)");
    return NULL;
}

struct round {
    long n;
    long rss0, pt0;
    double suspend_ms;
    long rss_waiting, pt_waiting, maps;
};

static void *round_main(void *arg)
{
    struct round *r = arg;
    uint64_t base = suspends();
    uint64_t own = 0;
    double t0 = now_ms();
    for (long i = 0; i < r->n; i++)
        heist_future_unref(
            bench_heist_future(&args, heist_spawn(NULL, waiter, NULL), "spawn"));
    /* Every waiter suspended: the counter (main's own sleeps taken out). */
    while (suspends() - base - own < (uint64_t)r->n) {
        bench_heist_check(&args, heist_sleep(100000), "sleep");
        own++;
    }
    r->suspend_ms = now_ms() - t0;
    r->rss_waiting = rss_kib();
    r->pt_waiting = pt_kib();
    r->maps = maps_count();
    bench_heist_check(&args, heist_future_set_result(gate, NULL),
                      "set_result(gate)");
    bench_heist_check(&args, heist_await(all_done, NULL), "await all_done");
    return NULL;
}

static double one_round(long n)
{
    struct round r = {.n = n};
    gate = bench_heist_future(&args, heist_future_new(), "future_new");
    all_done = bench_heist_future(&args, heist_future_new(), "future_new");
    atomic_store(&left, n);
    r.rss0 = rss_kib();
    r.pt0 = pt_kib();
    bench_heist_run(&args, sched, round_main, &r);
    heist_future_unref(gate);
    heist_future_unref(all_done);
    char pt[32] = "unknown"; /* no VmPTE line */
    if (r.pt0 >= 0 && r.pt_waiting >= 0)
        snprintf(pt, sizeof pt, "%.2f",
                 (double)(r.pt_waiting - r.pt0) / (double)n);
    fprintf(stderr,
            "waiting: N=%ld suspend_ms=%.1f rss_kib_per_waiter=%.2f maps=%ld "
            "pt_kib_per_waiter=%s rss_after_kib=%ld (before %ld)\n",
            n, r.suspend_ms, (double)(r.rss_waiting - r.rss0) / (double)n,
            r.maps, pt, rss_kib(), r.rss0);
    return r.suspend_ms;
}

/* WAITING_IDLE_MS's sleep before a round but the first. */
static void idle_before(unsigned round)
{
    const char *e = getenv("WAITING_IDLE_MS");
    if (round == 0 || !e || !*e)
        return;
    char *end;
    long ms = strtol(e, &end, 10);
    if (*end || ms < 0)
        bench_fail(&args, "WAITING_IDLE_MS is not a number of ms");
    if (ms == 0)
        return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int main(int argc, char **argv)
{
    bench_parse_workers(&args, "waiting", BENCH_HEIST_IMPL, 1000000, 2, argc,
                        argv);
    sched = bench_heist_new(&args);
    if (args.cold) {
        /* One round in this fresh process: its suspension time (the cold
         * figure of the 1M-waiting target). */
        double ms = one_round(args.param);
        bench_report(&args, &ms, 1);
        bench_heist_free(&args, sched);
        return 0;
    }
    for (unsigned i = 0; i < args.warmup; i++) {
        idle_before(i);
        one_round(args.param);
    }
    double *t = calloc(args.reps, sizeof *t);
    if (!t)
        bench_fail(&args, "out of memory");
    for (unsigned i = 0; i < args.reps; i++) {
        idle_before(args.warmup + i);
        t[i] = one_round(args.param);
    }
    bench_report(&args, t, args.reps);
    free(t);
    bench_heist_free(&args, sched);
    return 0;
}
