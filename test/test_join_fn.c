/*
 * test_join_fn.c - heist_join_fn (include/heist/task.h) and the inline fast
 * paths' ABI check (include/heist/task_inline.h): results on 1, 2 and 8
 * workers (children stolen on 2 and 8), a mismatched or NULL function gives
 * EINVAL and joins nothing (on the fast path, on a stolen child, outside a
 * worker), mixing with heist_join and with the exported (out-of-line)
 * functions, fork counters, and heist_sched_new_v's ENOTSUP on another
 * HEIST_ABI_VERSION.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <heist/heist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

/* A hang aborts with a message (test_util.h). */
HT_WATCHDOG_SUITE(join_fn, 300);

static const unsigned worker_counts[] = {1, 2, 8};
#define NCOUNTS (sizeof(worker_counts) / sizeof(worker_counts[0]))
#define FAILED ((void *)(intptr_t)-1000000000L)

static heist_sched *new_sched(unsigned workers)
{
    heist_config cfg = {.workers = workers};
    heist_sched *s = NULL;
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    return s;
}

static void *run(heist_sched *s, heist_fn fn, void *arg)
{
    void *r = NULL;
    int err = heist_run(s, fn, arg, &r);
    cr_assert_eq(err, 0, "heist_run: error %d", err);
    return r;
}

#define fib_seq ht_fib_seq /* test_util.h */

/* fib with the named join. */
static void *fib_fn(void *arg)
{
    long n = (long)arg;
    if (n < 2)
        return (void *)n;
    heist_task t;
    void *a = NULL;
    heist_fork(&t, fib_fn, (void *)(n - 1));
    void *b = fib_fn((void *)(n - 2));
    if (heist_join_fn(&t, fib_fn, &a) != 0 || a == FAILED || b == FAILED)
        return FAILED;
    return (void *)((long)a + (long)b);
}

/* fib that alternates heist_join_fn and heist_join, and the inline and the
 * exported functions (a parenthesized name is the library's function). */
static void *fib_mixed(void *arg)
{
    long n = (long)arg;
    if (n < 2)
        return (void *)n;
    heist_task t;
    void *a = NULL;
    int err;
    if (n & 1)
        heist_fork(&t, fib_mixed, (void *)(n - 1));
    else
        (heist_fork)(&t, fib_mixed, (void *)(n - 1));
    void *b = fib_mixed((void *)(n - 2));
    switch (n & 3) {
    case 0:
        err = heist_join_fn(&t, fib_mixed, &a);
        break;
    case 1:
        err = heist_join(&t, &a);
        break;
    case 2:
        err = (heist_join_fn)(&t, fib_mixed, &a);
        break;
    default:
        err = (heist_join)(&t, &a);
        break;
    }
    if (err != 0 || a == FAILED || b == FAILED)
        return FAILED;
    return (void *)((long)a + (long)b);
}

static uint64_t fib_forks(long n)
{
    return n < 2 ? 0 : (uint64_t)fib_seq(n + 1) - 1;
}

Test(join_fn, fib_1_2_8_workers)
{
    long big = HT_SCALE(27, 22);
    for (size_t w = 0; w < NCOUNTS; w++) {
        heist_sched *s = new_sched(worker_counts[w]);
        for (long n = 0; n <= 20; n++) {
            cr_assert_eq((long)run(s, fib_fn, (void *)n), fib_seq(n),
                         "fib_fn(%ld) on %u workers", n, worker_counts[w]);
            cr_assert_eq((long)run(s, fib_mixed, (void *)n), fib_seq(n),
                         "fib_mixed(%ld) on %u workers", n, worker_counts[w]);
        }
        cr_assert_eq((long)run(s, fib_fn, (void *)big), fib_seq(big));
        cr_assert_eq((long)run(s, fib_mixed, (void *)big), fib_seq(big));
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

/* Every fork is counted once, inline or stolen, whichever join ran it. */
Test(join_fn, counters)
{
    const long n = 20;
    for (size_t w = 0; w < NCOUNTS; w++) {
        unsigned nw = worker_counts[w];
        heist_sched *s = new_sched(nw);
        cr_assert_eq((long)run(s, fib_fn, (void *)n), fib_seq(n));
        cr_assert_eq((long)run(s, fib_mixed, (void *)n), fib_seq(n));
        heist_stats st;
        cr_assert_eq(heist_sched_stats(s, &st), 0);
        cr_assert_eq(st.total.forks, 2 * fib_forks(n), "%u workers", nw);
        cr_assert_eq(st.total.forks, st.total.inlined + st.total.steals,
                     "%u workers: forks %llu inlined %llu steals %llu", nw,
                     (unsigned long long)st.total.forks,
                     (unsigned long long)st.total.inlined,
                     (unsigned long long)st.total.steals);
        if (nw == 1)
            cr_assert_eq(st.total.inlined, st.total.forks);
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

/* ---- errors ------------------------------------------------------------ */

static void *identity(void *arg)
{
    return arg;
}

static void *twice(void *arg)
{
    return (void *)(2 * (intptr_t)arg);
}

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            return (void *)(intptr_t)__LINE__;                                 \
    } while (0)

/* arg != NULL: on a worker. Returns NULL or the failing line. */
static void *errors(void *arg)
{
    bool on_worker = arg != NULL;
    void *r = (void *)0x5a;

    /* Another function: EINVAL, nothing joined, *result set to NULL
     * (heist/task.h); then the right one joins it. */
    heist_task t;
    heist_fork(&t, identity, (void *)7);
    CHECK(heist_join_fn(&t, twice, &r) == EINVAL);
    CHECK(r == NULL);
    r = (void *)0x5a;
    CHECK((heist_join_fn)(&t, twice, &r) == EINVAL);
    CHECK(r == NULL);
    r = (void *)0x5a;
    CHECK(heist_join_fn(&t, NULL, &r) == EINVAL);
    CHECK(r == NULL);
    r = (void *)0x5a;
    CHECK((heist_join_fn)(&t, NULL, &r) == EINVAL);
    CHECK(r == NULL);
    CHECK(heist_join_fn(&t, identity, &r) == 0);
    CHECK(r == (void *)7);
    /* Joined already. */
    CHECK(heist_join_fn(&t, identity, &r) == EINVAL);
    CHECK(heist_join(&t, &r) == EINVAL);

    /* A mismatch, then heist_join joins it. */
    heist_fork(&t, twice, (void *)4);
    CHECK(heist_join_fn(&t, identity, &r) == EINVAL);
    CHECK(heist_join(&t, &r) == 0);
    CHECK(r == (void *)8);

    /* NULL task, never forked. */
    CHECK(heist_join_fn(NULL, identity, &r) == EINVAL);
    heist_task never;
    memset(&never, 0, sizeof(never));
    CHECK(heist_join_fn(&never, identity, &r) == EINVAL);

    /* Forked with a NULL fn: EINVAL whatever the join. */
    heist_task z;
    heist_fork(&z, NULL, (void *)1);
    CHECK(heist_join_fn(&z, identity, &r) == EINVAL);
    CHECK(heist_join(&z, &r) == EINVAL);

    /* Mixed with heist_join, in reverse fork order; out of order is EINVAL
     * on a worker and joins nothing. */
    heist_task a, b, c;
    void *ra = NULL, *rb = NULL, *rc = NULL;
    heist_fork(&a, identity, (void *)10);
    heist_fork(&b, twice, (void *)20);
    heist_fork(&c, identity, (void *)30);
    if (on_worker) {
        CHECK(heist_join_fn(&a, identity, &ra) == EINVAL);
        CHECK(heist_join_fn(&b, twice, &rb) == EINVAL);
    }
    CHECK(heist_join_fn(&c, identity, &rc) == 0);
    CHECK(heist_join(&b, &rb) == 0);
    CHECK(heist_join_fn(&a, identity, &ra) == 0);
    CHECK(ra == (void *)10 && rb == (void *)40 && rc == (void *)30);

    /* result may be NULL. */
    heist_fork(&t, identity, (void *)1);
    CHECK(heist_join_fn(&t, identity, NULL) == 0);
    return NULL;
}

Test(join_fn, errors_on_worker)
{
    for (size_t w = 0; w < NCOUNTS; w++) {
        heist_sched *s = new_sched(worker_counts[w]);
        void *line = run(s, errors, s);
        cr_assert_null(line, "on %u workers: check at line %d failed",
                       worker_counts[w], (int)(intptr_t)line);
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

Test(join_fn, errors_outside_worker)
{
    void *line = errors(NULL);
    cr_assert_null(line, "check at line %d failed", (int)(intptr_t)line);
    cr_assert_eq((long)fib_fn((void *)15L), fib_seq(15));
}

/* heist_fork, heist_join and heist_join_fn are macros on the inline path
 * (statement expressions when the join's check is off:
 * test_join_fn_nocheck is this file built with HEIST_JOIN_CHECK 0): each
 * argument is evaluated exactly once, on the fast path, on an error, on a
 * NULL task or function, and in a join nested in another's argument. */
static void *evaluated_once(void *arg)
{
    (void)arg;
    int nt = 0, nf = 0, nr = 0;
    heist_task t;
    void *r = NULL;
    heist_fork(&t, twice, (void *)21);
    CHECK(heist_join_fn((nt++, &t), (nf++, identity), (nr++, &r)) == EINVAL);
    CHECK(nt == 1 && nf == 1 && nr == 1 && r == NULL);
    CHECK(heist_join_fn((nt++, &t), (nf++, (heist_fn)NULL), (nr++, &r)) ==
          EINVAL);
    CHECK(nt == 2 && nf == 2 && nr == 2 && r == NULL);
    CHECK(heist_join_fn((nt++, &t), (nf++, twice), (nr++, &r)) == 0);
    CHECK(nt == 3 && nf == 3 && nr == 3 && r == (void *)42);
    CHECK(heist_join_fn((nt++, &t), (nf++, twice), (nr++, &r)) == EINVAL);
    CHECK(nt == 4 && nf == 4 && nr == 4);

    /* heist_fork and heist_join: the fast path, a second join, a NULL
     * task, and both nested in another join's argument. */
    int ft = 0, ff = 0, fa = 0;
    heist_fork((ft++, &t), (ff++, twice), (fa++, (void *)5));
    CHECK(ft == 1 && ff == 1 && fa == 1);
    nt = nr = 0;
    CHECK(heist_join((nt++, &t), (nr++, &r)) == 0);
    CHECK(nt == 1 && nr == 1 && r == (void *)10);
    CHECK(heist_join((nt++, &t), (nr++, &r)) == EINVAL);
    CHECK(nt == 2 && nr == 2 && r == NULL);
    CHECK(heist_join((nt++, (heist_task *)NULL), (nr++, &r)) == EINVAL);
    CHECK(nt == 3 && nr == 3);
    heist_fork((ft++, (heist_task *)NULL), (ff++, twice), (fa++, (void *)1));
    CHECK(ft == 2 && ff == 2 && fa == 2);
    heist_task u;
    void *ru = NULL;
    heist_fork(&t, twice, (void *)3);
    heist_fork(&u, identity, (void *)4);
    int inner = -1;
    CHECK(heist_join(&t, (inner = heist_join_fn(&u, identity, &ru), &r)) ==
          0);
    CHECK(inner == 0 && ru == (void *)4 && r == (void *)6);
    return NULL;
}

Test(join_fn, arguments_evaluated_once)
{
    void *line = evaluated_once(NULL);
    cr_assert_null(line, "outside a worker: check at line %d failed",
                   (int)(intptr_t)line);
    for (size_t w = 0; w < NCOUNTS; w++) {
        heist_sched *s = new_sched(worker_counts[w]);
        line = run(s, evaluated_once, NULL);
        cr_assert_null(line, "on %u workers: check at line %d failed",
                       worker_counts[w], (int)(intptr_t)line);
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

/* ---- a stolen child ---------------------------------------------------- */

static atomic_int child_started, child_may_end;

/* Waits (up to 20 s) until the parent says it may end; returns the worker
 * it ran on, + 100. */
static void *slow_child(void *arg)
{
    (void)arg;
    int me = heist_worker_index();
    atomic_store(&child_started, 1);
    ht_wait_at_least(&child_may_end, 1, 20);
    return (void *)(intptr_t)(me + 100);
}

/* Forks slow_child, waits until another worker runs it, then joins it with
 * a wrong function (EINVAL: the slow path's check), then the right one. */
static void *stolen_parent(void *arg)
{
    (void)arg;
    atomic_store(&child_started, 0);
    atomic_store(&child_may_end, 0);
    heist_task t;
    heist_fork(&t, slow_child, NULL);
    /* The only fork on this deque is public at once: an idle worker
     * steals it. */
    if (!ht_wait_at_least(&child_started, 1, 20))
        return (void *)1; /* never stolen */
    void *r = NULL;
    if (heist_join_fn(&t, identity, &r) != EINVAL)
        return (void *)2;
    atomic_store(&child_may_end, 1);
    if (heist_join_fn(&t, slow_child, &r) != 0)
        return (void *)3;
    if ((intptr_t)r < 100) /* it ran on a worker (index + 100) */
        return (void *)4;
    return NULL;
}

Test(join_fn, stolen_child_2_and_8_workers)
{
    for (size_t w = 1; w < NCOUNTS; w++) {
        heist_sched *s = new_sched(worker_counts[w]);
        for (int i = 0; i < 5; i++) {
            void *e = run(s, stolen_parent, NULL);
            cr_assert_null(e, "%u workers, round %d: failure %d",
                           worker_counts[w], i, (int)(intptr_t)e);
        }
        heist_stats st;
        cr_assert_eq(heist_sched_stats(s, &st), 0);
        cr_assert_geq(st.total.steals, 5);
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

/* A stolen fork joined out of order is EINVAL too, and joins nothing (it
 * once waited for the thief and left the position behind: the task then
 * aborted as if a fork were not joined). */
static void *stolen_out_of_order(void *arg)
{
    (void)arg;
    atomic_store(&child_started, 0);
    atomic_store(&child_may_end, 0);
    heist_task a, b;
    void *ra = NULL, *rb = NULL;
    heist_fork(&a, slow_child, NULL);
    if (!ht_wait_at_least(&child_started, 1, 20))
        return (void *)1; /* never stolen */
    heist_fork(&b, identity, (void *)3);
    if (heist_join(&a, &ra) != EINVAL)
        return (void *)2;
    if (heist_join_fn(&a, slow_child, &ra) != EINVAL)
        return (void *)3;
    if (heist_join_fn(&b, identity, &rb) != 0 || rb != (void *)3)
        return (void *)4;
    atomic_store(&child_may_end, 1);
    if (heist_join_fn(&a, slow_child, &ra) != 0 || (intptr_t)ra < 100)
        return (void *)5;
    return NULL;
}

/* Runs fn `rounds` times on a scheduler of each worker count from
 * worker_counts[first] on; fn returns NULL or the failing check. */
static void run_rounds(size_t first, heist_fn fn, int rounds)
{
    for (size_t w = first; w < NCOUNTS; w++) {
        heist_sched *s = new_sched(worker_counts[w]);
        for (int i = 0; i < rounds; i++) {
            void *e = run(s, fn, NULL);
            cr_assert_null(e, "%u workers, round %d: check %d failed",
                           worker_counts[w], i, (int)(intptr_t)e);
        }
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

Test(join_fn, stolen_out_of_order_2_and_8_workers)
{
    run_rounds(1, stolen_out_of_order, 5);
}

/* ---- many forks at once, tasks reused ----------------------------------- */

/* Thousands of forks outstanding at once, joined newest first, three
 * rounds on the same heist_task array (the inline fork writes the task's
 * words afresh; an entry published to thieves gets its sync word then),
 * mixing heist_join and heist_join_fn, with second joins of joined tasks.
 * Returns NULL or a failure code. */
#define MANY_FORKS 6000

static void *add_one(void *arg)
{
    return (void *)((intptr_t)arg + 1);
}

static void *many_forks(void *arg)
{
    (void)arg;
    heist_task *t = malloc(MANY_FORKS * sizeof *t);
    if (!t)
        return (void *)1;
    for (int round = 0; round < 3; round++) {
        for (intptr_t i = 0; i < MANY_FORKS; i++)
            heist_fork(&t[i], add_one, (void *)(i * 3 + round));
        for (intptr_t i = MANY_FORKS - 1; i >= 0; i--) {
            void *r = NULL;
            int err = (i & 1) ? heist_join(&t[i], &r)
                              : heist_join_fn(&t[i], add_one, &r);
            if (err || r != (void *)(i * 3 + round + 1)) {
                free(t);
                return (void *)(intptr_t)(100 + round);
            }
            /* A second join of a joined frame joins nothing. */
            if ((i % 997) == 0 && heist_join(&t[i], &r) != EINVAL) {
                free(t);
                return (void *)(intptr_t)(200 + round);
            }
        }
    }
    free(t);
    return NULL;
}

Test(join_fn, many_forks_and_reused_tasks_1_2_8_workers)
{
    for (size_t w = 0; w < NCOUNTS; w++) {
        heist_sched *s = new_sched(worker_counts[w]);
        for (int i = 0; i < 3; i++) {
            void *e = run(s, many_forks, NULL);
            cr_assert_null(e, "%u workers, run %d: failure %d",
                           worker_counts[w], i, (int)(intptr_t)e);
        }
        heist_stats st;
        cr_assert_eq(heist_sched_stats(s, &st), 0);
        cr_assert_eq(st.total.forks, 9ull * MANY_FORKS, "%u workers",
                     worker_counts[w]);
        cr_assert_eq(st.total.forks, st.total.inlined + st.total.steals,
                     "%u workers", worker_counts[w]);
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

/* ---- a join after a suspension ------------------------------------------ */

/* A fork that a suspension took off the deque (its fiber's save list,
 * fork.c) must not pass, in the inline join, for the fork that later took
 * its entry's position, and joins stay in order across the suspension.
 * Counts the runs of each child, by its argument. */
static atomic_int runs_of[2];

static void *count_run(void *arg)
{
    atomic_fetch_add(&runs_of[(intptr_t)arg], 1);
    return (void *)((intptr_t)arg + 10);
}

/* Forks A, sleeps (the suspension drains A: it runs here first, unless a
 * thief took it), forks C, then joins A before C: out of order, so EINVAL,
 * and nothing runs or is joined; then C and A in order. Returns NULL or
 * the failing check. */
static void *join_after_drain(void *arg)
{
    (void)arg;
    atomic_store(&runs_of[0], 0);
    atomic_store(&runs_of[1], 0);
    heist_task a, c;
    void *ra = NULL, *rc = NULL;
    heist_fork(&a, count_run, (void *)0);
    if (heist_sleep(1000000) != 0)
        return (void *)1;
    /* Drained before the sleep: run here, or (on 2 and 8 workers) perhaps
     * stolen, and then acknowledged by its thief, not necessarily done. */
    if (atomic_load(&runs_of[0]) > 1)
        return (void *)2;
    heist_fork(&c, count_run, (void *)1);
    if (heist_join_fn(&a, count_run, &ra) != EINVAL ||
        heist_join(&a, &ra) != EINVAL || ra != NULL)
        return (void *)3;
    if (atomic_load(&runs_of[0]) > 1 || atomic_load(&runs_of[1]) > 1)
        return (void *)4;
    if (heist_join(&c, &rc) != 0 || rc != (void *)11)
        return (void *)5;
    if (heist_join_fn(&a, count_run, &ra) != 0 || ra != (void *)10)
        return (void *)6;
    if (atomic_load(&runs_of[0]) != 1 || atomic_load(&runs_of[1]) != 1)
        return (void *)7;
    /* Both joined: a second join of either is EINVAL and runs nothing. */
    if (heist_join(&a, &ra) != EINVAL || heist_join(&c, &rc) != EINVAL)
        return (void *)8;
    if (atomic_load(&runs_of[0]) != 1 || atomic_load(&runs_of[1]) != 1)
        return (void *)9;
    return NULL;
}

Test(join_fn, join_of_a_drained_frame_1_2_8_workers)
{
    run_rounds(0, join_after_drain, 20);
}

/* ---- the ABI check ----------------------------------------------------- */

/* Calls heist_sched_new_v with stderr sent to a temporary file; returns its
 * result and what it printed. */
static int new_v_captured(unsigned abi, heist_sched **s, char *msg,
                          size_t cap)
{
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    cr_assert(saved >= 0 && tmp);
    cr_assert(dup2(fileno(tmp), 2) >= 0);
    int err = heist_sched_new_v(NULL, s, abi);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(msg, 1, cap - 1, tmp);
    msg[n] = '\0';
    fclose(tmp);
    return err;
}

Test(join_fn, abi_version_mismatch_is_enotsup)
{
    heist_sched *s = (heist_sched *)(uintptr_t)0x1234;
    char msg[512];
    int err = new_v_captured(HEIST_ABI_VERSION + 1, &s, msg, sizeof msg);
    cr_assert_eq(err, ENOTSUP);
    cr_assert_eq(s, (heist_sched *)(uintptr_t)0x1234, "*out left unchanged");
    cr_assert(strstr(msg, "ABI version") != NULL, "stderr said: %s", msg);
    err = new_v_captured(0, &s, msg, sizeof msg);
    cr_assert_eq(err, ENOTSUP);
    /* The right version, the macro and the exported function all work. */
    cr_assert_eq(heist_sched_new_v(NULL, &s, HEIST_ABI_VERSION), 0);
    cr_assert_eq(heist_sched_free(s), 0);
    heist_config cfg = {.workers = 2};
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    cr_assert_eq((long)run(s, fib_fn, (void *)15L), fib_seq(15));
    cr_assert_eq(heist_sched_free(s), 0);
    cr_assert_eq((heist_sched_new)(&cfg, &s), 0);
    cr_assert_eq((long)run(s, fib_fn, (void *)15L), fib_seq(15));
    cr_assert_eq(heist_sched_free(s), 0);
    /* Other errors still come first or after as documented. */
    cr_assert_eq(heist_sched_new_v(NULL, NULL, HEIST_ABI_VERSION), EINVAL);
}

/* The inline path is what a plain x86-64 gcc/clang build gets. */
Test(join_fn, inline_path_on_where_expected)
{
#if defined(__x86_64__) && defined(__GNUC__) && !HT_SANITIZED
#ifndef HEIST_INLINE
    cr_assert_fail("HEIST_INLINE not defined in a plain x86-64 build");
#endif
#endif
#if HT_SANITIZED && defined(HEIST_INLINE)
    cr_assert_fail("the inline path must be off under a sanitizer");
#endif
}
