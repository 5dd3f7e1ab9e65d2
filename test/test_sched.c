/*
 * test_sched.c - the scheduler's lifecycle (include/heist/sched.h):
 * creation and its errors, $HEIST_WORKERS, heist_run and its errors,
 * heist_current / heist_worker_index, and heist_sched_free in every state it
 * may be called in.
 *
 * Each Criterion test runs in its own process, so setenv() here does not
 * leak into other tests.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <heist/heist.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

/* A hang aborts with a message (test_util.h). */
HT_WATCHDOG_SUITE(sched, 300);

static heist_sched *new_sched(unsigned workers)
{
    heist_config cfg = {.workers = workers};
    heist_sched *s = NULL;
    int err = heist_sched_new(&cfg, &s);
    cr_assert_eq(err, 0, "heist_sched_new(workers=%u): error %d", workers, err);
    cr_assert_not_null(s);
    return s;
}

static unsigned workers_of(heist_sched *s)
{
    heist_stats st;
    cr_assert_eq(heist_sched_stats(s, &st), 0);
    return st.workers;
}

static void *identity(void *arg)
{
    return arg;
}

/* fib with fork-join, and its value (test_util.h). */
#define fib ht_fib
#define fib_seq ht_fib_seq

/* ---- creation ---------------------------------------------------------- */

Test(sched, new_free_null_cfg)
{
    unsetenv("HEIST_WORKERS");
    heist_sched *s = NULL;
    cr_assert_eq(heist_sched_new(NULL, &s), 0);
    cr_assert_not_null(s);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cr_expect_eq(workers_of(s), (unsigned)(cpus < 1 ? 1 : cpus),
                 "default workers should be the online CPUs (%ld)", cpus);
    cr_assert_eq(heist_sched_free(s), 0);
}

Test(sched, new_free_zero_cfg)
{
    unsetenv("HEIST_WORKERS");
    heist_config cfg = {0};
    heist_sched *s = NULL;
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    cr_assert_gt(workers_of(s), 0);
    cr_assert_eq(heist_sched_free(s), 0);
}

Test(sched, new_free_1_2_8_workers)
{
    const unsigned ns[] = {1, 2, 8};
    for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
        heist_sched *s = new_sched(ns[i]);
        cr_assert_eq(workers_of(s), ns[i]);
        void *r = NULL;
        cr_assert_eq(heist_run(s, identity, (void *)0x1234, &r), 0);
        cr_assert_eq(r, (void *)0x1234);
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

Test(sched, new_rejects_null_out)
{
    heist_config cfg = {.workers = 2};
    cr_assert_eq(heist_sched_new(&cfg, NULL), EINVAL);
    cr_assert_eq(heist_sched_new(NULL, NULL), EINVAL);
}

Test(sched, new_rejects_too_many_workers)
{
    heist_sched *sentinel = (heist_sched *)(uintptr_t)0x5a5a;
    heist_sched *s = sentinel;
    heist_config cfg = {.workers = HEIST_MAX_WORKERS + 1};
    cr_assert_eq(heist_sched_new(&cfg, &s), EINVAL);
    cr_assert_eq(s, sentinel, "*out changed on error");
    cfg.workers = ~0u;
    cr_assert_eq(heist_sched_new(&cfg, &s), EINVAL);
    cr_assert_eq(s, sentinel, "*out changed on error");
}

/* $HEIST_WORKERS is read when cfg->workers is 0; it must hold a number in
 * 1..HEIST_MAX_WORKERS ("0" is out of range: the variable has no "default"
 * value of its own). */
Test(sched, env_workers_rejects_bad_values)
{
    const char *bad[] = {"abc", "0",  "-3",   "99999",
                         "",    "3x", "1025", "18446744073709551617"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(setenv("HEIST_WORKERS", bad[i], 1), 0);
        heist_sched *sentinel = (heist_sched *)(uintptr_t)0x5a5a;
        heist_sched *s = sentinel;
        int err = heist_sched_new(NULL, &s);
        cr_expect_eq(err, EINVAL, "HEIST_WORKERS=\"%s\": got %d, want EINVAL",
                     bad[i], err);
        cr_expect_eq(s, sentinel, "HEIST_WORKERS=\"%s\": *out changed", bad[i]);
        if (err == 0 && s != sentinel)
            heist_sched_free(s);
    }
}

Test(sched, env_workers_honoured)
{
    cr_assert_eq(setenv("HEIST_WORKERS", "3", 1), 0);
    heist_sched *s = NULL;
    cr_assert_eq(heist_sched_new(NULL, &s), 0);
    cr_assert_eq(workers_of(s), 3);
    cr_assert_eq(heist_sched_free(s), 0);

    /* Also with a zeroed config... */
    heist_config cfg = {0};
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    cr_assert_eq(workers_of(s), 3);
    cr_assert_eq(heist_sched_free(s), 0);

    /* ...but an explicit count wins. */
    s = new_sched(2);
    cr_assert_eq(workers_of(s), 2);
    cr_assert_eq(heist_sched_free(s), 0);
}

/* stack_size (or $HEIST_STACK_SIZE) must be sensible: a few bytes or more
 * than the address space is EINVAL, as is a variable that is not a
 * number; a plain size is accepted. */
Test(sched, stack_size_rejects_absurd)
{
    unsetenv("HEIST_STACK_SIZE");
    heist_sched *sentinel = (heist_sched *)(uintptr_t)0x5a5a;
    heist_sched *s = sentinel;
    heist_config cfg = {.workers = 1, .stack_size = SIZE_MAX};
    cr_expect_eq(heist_sched_new(&cfg, &s), EINVAL);
    cfg.stack_size = 1;
    cr_expect_eq(heist_sched_new(&cfg, &s), EINVAL);
    cr_expect_eq(s, sentinel, "*out changed on error");

    cfg.stack_size = 0;
    const char *bad[] = {"abc", "-1", "1", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(setenv("HEIST_STACK_SIZE", bad[i], 1), 0);
        int err = heist_sched_new(&cfg, &s);
        cr_expect_eq(err, EINVAL, "HEIST_STACK_SIZE=\"%s\": got %d", bad[i],
                     err);
        if (err == 0 && s != sentinel) {
            heist_sched_free(s);
            s = sentinel;
        }
    }

    cr_assert_eq(setenv("HEIST_STACK_SIZE", "1048576", 1), 0);
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    cr_assert_eq(heist_run(s, identity, NULL, NULL), 0);
    cr_assert_eq(heist_sched_free(s), 0);
    unsetenv("HEIST_STACK_SIZE");
    cfg.stack_size = 1 << 20;
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    cr_assert_eq(heist_sched_free(s), 0);
}

/* heist/sched.h: stack_size is at least 16 KiB and at most 4 GiB, else
 * EINVAL; the same bounds hold for $HEIST_STACK_SIZE (read when the field
 * is 0). Each bound is tried on both sides. */
#define STACK_MIN ((size_t)16 << 10)
#define STACK_MAX ((size_t)4 << 30)

/* Resident memory in KiB (/proc/self/statm), or -1. */
static long rss_kib(void)
{
    long size = 0, res = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * (sysconf(_SC_PAGESIZE) / 1024);
}

/* A scheduler made with cfg (its stack_size, or $HEIST_STACK_SIZE where
 * that is 0) runs a task and is freed. With 4 GiB stacks this works only
 * because a stack is address space, touched from its top down as used:
 * RSS grows by far less than one stack. */
static void stack_size_accepted(heist_config *cfg, const char *what)
{
    heist_sched *s = NULL;
    long before = rss_kib();
    int err = heist_sched_new(cfg, &s);
    cr_assert_eq(err, 0, "%s: heist_sched_new returned %d", what, err);
    void *r = NULL;
    cr_assert_eq(heist_run(s, identity, (void *)0x77, &r), 0, "%s", what);
    cr_assert_eq(r, (void *)0x77, "%s", what);
    long grew = rss_kib() - before;
    cr_assert_eq(heist_sched_free(s), 0, "%s", what);
    /* 256 MiB: far below one 4 GiB stack, far above what a scheduler
     * with a task's worth of stack pages costs. Not under a sanitizer:
     * ASan clears the shadow of each new stack mapping (an eighth of its
     * size: 512 MiB for a 4 GiB stack), which is its memory, not heist's. */
    if (before >= 0 && !HT_SANITIZED)
        cr_assert_lt(grew, 256L << 10, "%s: RSS grew by %ld KiB", what, grew);
}

static void stack_size_refused(heist_config *cfg, const char *what)
{
    heist_sched *sentinel = (heist_sched *)(uintptr_t)0x5a5a;
    heist_sched *s = sentinel;
    int err = heist_sched_new(cfg, &s);
    cr_assert_eq(err, EINVAL, "%s: heist_sched_new returned %d, want EINVAL",
                 what, err);
    cr_assert_eq(s, sentinel, "%s: *out changed on error", what);
}

Test(sched, stack_size_bounds)
{
    unsetenv("HEIST_STACK_SIZE");
    heist_config cfg = {.workers = 1};
    cfg.stack_size = STACK_MIN - 1;
    stack_size_refused(&cfg, "stack_size 16383");
    cfg.stack_size = STACK_MIN;
    stack_size_accepted(&cfg, "stack_size 16384");
    cfg.stack_size = STACK_MAX;
    stack_size_accepted(&cfg, "stack_size 4 GiB");
    cfg.stack_size = STACK_MAX + 1;
    stack_size_refused(&cfg, "stack_size 4 GiB + 1");
}

Test(sched, env_stack_size_bounds)
{
    heist_config cfg = {.workers = 1};
    cr_assert_eq(setenv("HEIST_STACK_SIZE", "16383", 1), 0);
    stack_size_refused(&cfg, "HEIST_STACK_SIZE=16383");
    cr_assert_eq(setenv("HEIST_STACK_SIZE", "16384", 1), 0);
    stack_size_accepted(&cfg, "HEIST_STACK_SIZE=16384");
    cr_assert_eq(setenv("HEIST_STACK_SIZE", "4294967296", 1), 0);
    stack_size_accepted(&cfg, "HEIST_STACK_SIZE=4294967296");
    cr_assert_eq(setenv("HEIST_STACK_SIZE", "4294967297", 1), 0);
    stack_size_refused(&cfg, "HEIST_STACK_SIZE=4294967297");
    /* The field wins: a bad variable is not read when it is set. */
    cfg.stack_size = STACK_MIN;
    stack_size_accepted(&cfg, "stack_size 16384, HEIST_STACK_SIZE bad");
}

Test(sched, stress_create_free_1000_times)
{
    int n = HT_SCALE(1000, 1000);
    for (int i = 0; i < n; i++) {
        heist_sched *s = new_sched(2);
        if (i % 2) {
            void *r = NULL;
            cr_assert_eq(heist_run(s, identity, (void *)(intptr_t)i, &r), 0);
            cr_assert_eq(r, (void *)(intptr_t)i);
        }
        cr_assert_eq(heist_sched_free(s), 0, "free %d failed", i);
    }
}

/* ---- freeing ----------------------------------------------------------- */

Test(sched, free_null)
{
    cr_assert_eq(heist_sched_free(NULL), EINVAL);
}

Test(sched, free_while_idle)
{
    heist_sched *s = new_sched(4);
    void *r = NULL;
    cr_assert_eq(heist_run(s, fib, (void *)15L, &r), 0);
    cr_assert_eq((long)r, fib_seq(15));
    /* Let the workers run out of work and park. */
    struct timespec nap = {0, 100 * 1000 * 1000};
    nanosleep(&nap, NULL);
    cr_assert_eq(heist_sched_free(s), 0);
}

static void *free_own_sched(void *arg)
{
    (void)arg;
    heist_sched *self = heist_current();
    if (!self)
        return (void *)(intptr_t)-1;
    return (void *)(intptr_t)heist_sched_free(self);
}

/* A worker may not free its own scheduler (it would wait for itself); the
 * scheduler keeps working, and is freed later from outside. */
Test(sched, free_from_worker_is_edeadlk)
{
    heist_sched *s = new_sched(2);
    void *r = NULL;
    cr_assert_eq(heist_run(s, free_own_sched, NULL, &r), 0);
    cr_assert_eq((int)(intptr_t)r, EDEADLK,
                 "heist_sched_free on a worker returned %d, want EDEADLK",
                 (int)(intptr_t)r);
    cr_assert_eq(heist_run(s, fib, (void *)20L, &r), 0);
    cr_assert_eq((long)r, fib_seq(20));
    cr_assert_eq(heist_sched_free(s), 0);
}

/* Freeing a scheduler from a worker of *another* scheduler is allowed. */
static void *free_other_sched(void *arg)
{
    return (void *)(intptr_t)heist_sched_free(arg);
}

Test(sched, free_from_other_scheds_worker)
{
    heist_sched *a = new_sched(2), *b = new_sched(2);
    void *r = (void *)1;
    cr_assert_eq(heist_run(a, free_other_sched, b, &r), 0);
    cr_assert_eq((int)(intptr_t)r, 0);
    cr_assert_eq(heist_sched_free(a), 0);
}

struct runner {
    heist_sched *s;
    long n;
    int reps;
    int err;
    long bad;
};

static void *runner_main(void *arg)
{
    struct runner *r = arg;
    long want = fib_seq(r->n);
    for (int i = 0; i < r->reps; i++) {
        void *res = NULL;
        int err = heist_run(r->s, fib, (void *)r->n, &res);
        if (err) {
            r->err = err;
            break;
        }
        if ((long)res != want)
            r->bad++;
    }
    return NULL;
}

/* A heist_run on another thread that takes a while: the caller frees only
 * after it returned, as the header requires, and free must not lose it. */
Test(sched, free_after_long_run_returns)
{
    heist_sched *s = new_sched(2);
    struct runner r = {.s = s, .n = HT_SCALE(27, 22), .reps = 1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, runner_main, &r), 0);
    pthread_join(t, NULL);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.bad, 0);
    cr_assert_eq(heist_sched_free(s), 0);
}

/* Many threads with heist_run calls in flight; each is joined, then the
 * scheduler is freed: every result must be right. */
Test(sched, stress_free_after_busy_runs)
{
    enum { T = 8 };
    heist_sched *s = new_sched(4);
    struct runner r[T];
    pthread_t t[T];
    for (int i = 0; i < T; i++) {
        r[i] = (struct runner){.s = s, .n = 12 + i, .reps = HT_SCALE(40, 20)};
        cr_assert_eq(pthread_create(&t[i], NULL, runner_main, &r[i]), 0);
    }
    for (int i = 0; i < T; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(heist_sched_free(s), 0);
    for (int i = 0; i < T; i++) {
        cr_assert_eq(r[i].err, 0, "thread %d: heist_run error %d", i, r[i].err);
        cr_assert_eq(r[i].bad, 0, "thread %d: %ld wrong results", i, r[i].bad);
    }
}

/* ---- heist_run --------------------------------------------------------- */

Test(sched, run_rejects_null)
{
    heist_sched *s = new_sched(1);
    void *r = (void *)7;
    cr_assert_eq(heist_run(NULL, identity, NULL, &r), EINVAL);
    cr_assert_eq(heist_run(s, NULL, NULL, &r), EINVAL);
    /* result may be NULL */
    cr_assert_eq(heist_run(s, identity, (void *)3, NULL), 0);
    cr_assert_eq(heist_sched_free(s), 0);
}

static void *run_from_worker(void *arg)
{
    heist_sched *s = arg;
    void *r = NULL;
    return (void *)(intptr_t)heist_run(s, identity, NULL, &r);
}

Test(sched, run_from_worker_is_edeadlk)
{
    heist_sched *s = new_sched(2);
    void *r = NULL;
    cr_assert_eq(heist_run(s, run_from_worker, s, &r), 0);
    cr_assert_eq((int)(intptr_t)r, EDEADLK,
                 "heist_run on its own worker returned %d, want EDEADLK",
                 (int)(intptr_t)r);
    /* A worker of one scheduler may run work on another one. */
    heist_sched *other = new_sched(1);
    cr_assert_eq(heist_run(s, run_from_worker, other, &r), 0);
    cr_assert_eq((int)(intptr_t)r, 0);
    cr_assert_eq(heist_sched_free(other), 0);
    cr_assert_eq(heist_sched_free(s), 0);
}

/* ---- heist_current / heist_worker_index -------------------------------- */

struct whoami {
    heist_sched *cur;
    int index;
};

static void *whoami(void *arg)
{
    struct whoami *w = arg;
    w->cur = heist_current();
    w->index = heist_worker_index();
    return NULL;
}

Test(sched, current_and_worker_index)
{
    cr_assert_null(heist_current());
    cr_assert_eq(heist_worker_index(), -1);
    const unsigned ns[] = {1, 3};
    for (size_t i = 0; i < 2; i++) {
        heist_sched *s = new_sched(ns[i]);
        for (int rep = 0; rep < 20; rep++) {
            struct whoami w = {NULL, -2};
            cr_assert_eq(heist_run(s, whoami, &w, NULL), 0);
            cr_assert_eq(w.cur, s);
            cr_assert_geq(w.index, 0);
            cr_assert_lt(w.index, (int)ns[i]);
        }
        cr_assert_eq(heist_sched_free(s), 0);
    }
    cr_assert_null(heist_current());
    cr_assert_eq(heist_worker_index(), -1);
}

/* ---- statistics -------------------------------------------------------- */

Test(sched, stats_reject_bad_args)
{
    heist_sched *s = new_sched(2);
    heist_stats st;
    heist_counters c;
    cr_assert_eq(heist_sched_stats(NULL, &st), EINVAL);
    cr_assert_eq(heist_sched_stats(s, NULL), EINVAL);
    cr_assert_eq(heist_sched_worker_stats(NULL, 0, &c), EINVAL);
    cr_assert_eq(heist_sched_worker_stats(s, 0, NULL), EINVAL);
    cr_assert_eq(heist_sched_worker_stats(s, 2, &c), EINVAL);
    cr_assert_eq(heist_sched_worker_stats(s, ~0u, &c), EINVAL);
    cr_assert_eq(heist_sched_worker_stats(s, 1, &c), 0);
    cr_assert_eq(heist_sched_free(s), 0);
}
