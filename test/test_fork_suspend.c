/*
 * test_fork_suspend.c - fork-join across suspensions (include/heist/task.h,
 * include/heist/future.h): forks still unjoined when their task sleeps or
 * awaits (1 to 300 of them), forked children that suspend themselves,
 * trees of forks with suspensions at several levels, children stolen while
 * their parent awaits what one of them resolves, and the join rules (one
 * join per fork, in reverse order, with the forked function) after a
 * suspension, and thousands of forked children that each suspend (the
 * nesting of suspensions stays bounded); on 1, 2 and 8 workers (8
 * oversubscribes a small machine on purpose). Only results and documented error codes are checked, never
 * where or when a fork ran (inline, stolen, or before its parent
 * suspended), so that the tests hold across a redesign of how the runtime
 * keeps a suspending task's forks.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <heist/heist.h>
#include <stdlib.h>

#include "test_check.h"
#include "test_util.h"

/* A hang aborts with a message (test_util.h). */
HT_WATCHDOG_SUITE(fork_suspend, 300);

static const unsigned worker_counts[] = {1, 2, 8};
#define NCOUNTS (sizeof(worker_counts) / sizeof(worker_counts[0]))

/* Runs fn(arg) `rounds` times on a scheduler of each worker count; the
 * tasks record failed checks (test_check.h). */
static void run_rounds(heist_fn fn, void *arg, int rounds)
{
    for (size_t w = 0; w < NCOUNTS; w++) {
        unsigned nw = worker_counts[w];
        heist_config cfg = {.workers = nw};
        heist_sched *s = NULL;
        cr_assert_eq(heist_sched_new(&cfg, &s), 0);
        for (int i = 0; i < rounds; i++) {
            int err = heist_run(s, fn, arg, NULL);
            cr_assert_eq(err, 0, "%u workers, round %d: error %d", nw, i, err);
            pthread_mutex_lock(&check_mu);
            int n = check_failures;
            pthread_mutex_unlock(&check_mu);
            cr_assert_eq(n, 0,
                         "%u workers, round %d: %d failed checks; "
                         "first: %s",
                         nw, i, n, check_first);
            ht_watchdog_tick(&suite_wd);
        }
        /* Printed only: neither steals nor suspensions are guaranteed. */
        heist_stats st;
        cr_assert_eq(heist_sched_stats(s, &st), 0);
        cr_log_info("%u workers, %d rounds: %llu forks, %llu steals, "
                    "%llu suspends",
                    nw, rounds, (unsigned long long)st.total.forks,
                    (unsigned long long)st.total.steals,
                    (unsigned long long)st.total.suspends);
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

#define fib_seq(n) ht_fib_seq(n) /* test_util.h */

static void *fib(void *arg)
{
    long n = (long)arg;
    if (n < 2)
        return (void *)n;
    heist_task t;
    void *a = NULL;
    heist_fork(&t, fib, (void *)(n - 1));
    void *b = fib((void *)(n - 2));
    CHECK_EQ(heist_join_fn(&t, fib, &a), 0);
    return (void *)((long)a + (long)b);
}

/* Joins t with heist_join_fn (fn) or heist_join (fn NULL): 0, and want. */
#define JOIN_EQ(t, fn, want)                                                   \
    do {                                                                       \
        void *r_ = NULL;                                                       \
        heist_fn fn_ = (fn);                                                   \
        CHECK_EQ(fn_ ? heist_join_fn((t), fn_, &r_) : heist_join((t), &r_),    \
                 0);                                                           \
        CHECK_EQ((long)r_, (want));                                            \
    } while (0)

/* ---- suspending ---------------------------------------------------------- */

#define SHORT_NS 100000u /* 100 us */
#define RESOLVED 1000L   /* what resolvers complete their future with */

static void *resolve_now(void *f)
{
    CHECK_EQ(heist_future_set_result(f, (void *)RESOLVED), 0);
    heist_future_unref(f);
    return NULL;
}

static void *resolve_after_sleep(void *f)
{
    CHECK_EQ(heist_sleep(SHORT_NS), 0);
    return resolve_now(f);
}

/* Spawns a task that resolves f, at once or after a sleep. Returns the
 * task, which the caller awaits (heist_run would cancel it) and unrefs. */
static heist_future *resolver(heist_future *f, bool sleep_first)
{
    heist_future *t =
        heist_spawn(NULL, sleep_first ? resolve_after_sleep : resolve_now,
                    heist_future_ref(f));
    CHECK(t != NULL);
    return t;
}

static void await_task(heist_future *t)
{
    CHECK_EQ(heist_await(t, NULL), 0);
    heist_future_unref(t);
}

/* How a task suspends (bits): a sleep; an await of a future that a task
 * spawned now resolves after a sleep, or at once (the await may then find
 * it done, or suspend and be woken at once). */
enum { SLEEP = 1, AWAIT = 2, AWAIT_NOW = 4 };
static const int hows[] = {SLEEP, AWAIT, AWAIT_NOW, SLEEP | AWAIT};
#define NHOWS (sizeof(hows) / sizeof(hows[0]))

static void suspend(int how)
{
    if (how & SLEEP)
        CHECK_EQ(heist_sleep(SHORT_NS), 0);
    if (how & (AWAIT | AWAIT_NOW)) {
        heist_future *f = heist_future_new();
        CHECK(f != NULL);
        heist_future *t = resolver(f, how & AWAIT);
        void *v = NULL;
        CHECK_EQ(heist_await(f, &v), 0);
        CHECK_EQ((long)v, RESOLVED);
        await_task(t);
        heist_future_unref(f);
    }
}

/* Runs fn(hows[i]) for every i as spawned tasks, all at once. */
static void *each_how_at_once(void *arg)
{
    heist_fn fn = (heist_fn)(uintptr_t)arg;
    heist_future *t[NHOWS];
    for (size_t i = 0; i < NHOWS; i++) {
        t[i] = heist_spawn(NULL, fn, (void *)(intptr_t)hows[i]);
        CHECK(t[i] != NULL);
    }
    for (size_t i = 0; i < NHOWS; i++)
        await_task(t[i]);
    return NULL;
}

#define FN_ARG(fn) ((void *)(uintptr_t)(fn))

/* ---- 1. many forks outstanding across a suspension ----------------------- */

/* Child i: a distinct value; every fifth forks and joins a small fib. */
static void *child(void *arg)
{
    long i = (long)arg;
    long f = i % 5 == 0 ? (long)fib((void *)(3 + i % 7)) : -1;
    return (void *)(i * 1000 + f);
}

static long child_value(long i)
{
    return i * 1000 + (i % 5 == 0 ? fib_seq(3 + i % 7) : -1);
}

/* Forks k children of each count, suspends, joins them all in reverse
 * order, with heist_join and heist_join_fn in turn. */
static void *many_forks(void *arg)
{
    static const long ks[] = {1, 2, 64, 300};
    int how = (int)(intptr_t)arg;
    heist_task *t = malloc(300 * sizeof *t);
    CHECK(t != NULL);
    for (size_t j = 0; t && j < sizeof(ks) / sizeof(ks[0]); j++) {
        for (long i = 0; i < ks[j]; i++)
            heist_fork(&t[i], child, (void *)i);
        suspend(how);
        for (long i = ks[j] - 1; i >= 0; i--)
            JOIN_EQ(&t[i], (i & 1) ? NULL : child, child_value(i));
    }
    free(t);
    return NULL;
}

Test(fork_suspend, many_forks_outstanding_1_2_8_workers)
{
    run_rounds(each_how_at_once, FN_ARG(many_forks), HT_SCALE(40, 20));
}

/* ---- 2. forked children that suspend ------------------------------------- */

/* Awaits the future at arg (resolved by a task spawned before the fork),
 * with a fork of its own outstanding across the await. */
static void *awaiting_child(void *arg)
{
    heist_task g;
    void *v = NULL, *vg = NULL;
    heist_fork(&g, fib, (void *)10);
    CHECK_EQ(heist_await(arg, &v), 0);
    CHECK_EQ(heist_join_fn(&g, fib, &vg), 0);
    return (void *)((long)v + (long)vg);
}

static void *sleeping_child(void *arg)
{
    CHECK_EQ(heist_sleep(SHORT_NS), 0);
    return (void *)((long)arg * 3);
}

/* Forks two children that await one future, one that sleeps and a fib,
 * then suspends itself (how; 0: not at all) and joins them. */
static void *suspending_children(void *arg)
{
    heist_future *f = heist_future_new();
    CHECK(f != NULL);
    heist_future *res = resolver(f, true);
    heist_task a, b, c, d;
    heist_fork(&a, awaiting_child, f);
    heist_fork(&b, sleeping_child, (void *)5);
    heist_fork(&c, awaiting_child, f);
    heist_fork(&d, fib, (void *)12);
    suspend((int)(intptr_t)arg);
    JOIN_EQ(&d, NULL, fib_seq(12));
    JOIN_EQ(&c, awaiting_child, RESOLVED + fib_seq(10));
    JOIN_EQ(&b, NULL, 15);
    JOIN_EQ(&a, awaiting_child, RESOLVED + fib_seq(10));
    await_task(res);
    heist_future_unref(f);
    return NULL;
}

static void *suspending_children_all(void *arg)
{
    (void)arg;
    suspending_children((void *)0);
    return each_how_at_once(FN_ARG(suspending_children));
}

Test(fork_suspend, children_that_suspend_1_2_8_workers)
{
    run_rounds(suspending_children_all, NULL, HT_SCALE(60, 30));
}

/* ---- 3 and 4. the join rules after a suspension -------------------------- */

struct counted {
    long in;
    atomic_int runs;
};

/* Counts its runs; a small fib makes it worth stealing now and then. */
static void *counted_child(void *arg)
{
    struct counted *c = arg;
    atomic_fetch_add(&c->runs, 1);
    return (void *)(c->in * 100 + (long)fib((void *)9));
}

#define COUNTED(in) ((in)*100 + 34) /* fib(9) = 34 */
#define RAN_ONCE(c) CHECK_EQ(atomic_load(&(c).runs), 1)
#define UNTOUCHED   ((void *)0x5a5a)
/* What a failed join leaves in *result (heist/task.h). */
#define FAILED      NULL

static void *wrong_fn(void *arg)
{
    return arg;
}

/* A named join with another function, or NULL, is EINVAL and joins
 * nothing, in order or not; forks joined out of order, before or after a
 * suspension, are EINVAL and join nothing; all stay joinable, across
 * further suspensions. A failed join leaves NULL in *result. */
static void *join_order(void *arg)
{
    int how = (int)(intptr_t)arg;
    struct counted ca = {1, 0}, cb = {2, 0}, cx = {3, 0};
    struct counted cc = {4, 0}, cd = {5, 0};
    heist_task a, b, x;
    void *ra = UNTOUCHED, *rb = UNTOUCHED;

    heist_fork(&a, counted_child, &ca);
    heist_fork(&b, counted_child, &cb);
    suspend(how);
    /* A before B: out of order, though both were taken off the deque by
     * the suspension (run, or stolen). */
    CHECK_EQ(heist_join(&a, &ra), EINVAL);
    CHECK_EQ(heist_join_fn(&a, counted_child, &ra), EINVAL);
    CHECK(ra == FAILED);
    ra = UNTOUCHED;
    CHECK_EQ(heist_join_fn(&b, wrong_fn, &rb), EINVAL);
    CHECK_EQ(heist_join_fn(&b, NULL, &rb), EINVAL);
    CHECK_EQ(heist_join_fn(&a, wrong_fn, &ra), EINVAL);
    CHECK(ra == FAILED && rb == FAILED);
    suspend(how);
    JOIN_EQ(&b, counted_child, COUNTED(2));
    CHECK_EQ(heist_join_fn(&a, wrong_fn, &ra), EINVAL);
    CHECK(ra == FAILED);
    JOIN_EQ(&a, NULL, COUNTED(1));
    RAN_ONCE(ca);
    RAN_ONCE(cb);

    /* X forked before a suspension, A and B after it (the task may have
     * moved to another worker): A before B is EINVAL; then B, A, X. */
    heist_fork(&x, counted_child, &cx);
    suspend(how);
    heist_fork(&a, counted_child, &cc);
    heist_fork(&b, counted_child, &cd);
    CHECK_EQ(heist_join(&a, &ra), EINVAL);
    CHECK_EQ(heist_join_fn(&a, counted_child, &ra), EINVAL);
    JOIN_EQ(&b, counted_child, COUNTED(5));
    CHECK_EQ(heist_join_fn(&x, wrong_fn, &ra), EINVAL);
    CHECK(ra == FAILED);
    JOIN_EQ(&a, NULL, COUNTED(4));
    JOIN_EQ(&x, counted_child, COUNTED(3));
    RAN_ONCE(cc);
    RAN_ONCE(cd);
    RAN_ONCE(cx);
    return NULL;
}

Test(fork_suspend, join_order_after_suspension_1_2_8_workers)
{
    run_rounds(each_how_at_once, FN_ARG(join_order), HT_SCALE(100, 40));
}

/* A second join of a fork joined after a suspension is EINVAL, leaves
 * NULL in *result and runs nothing, also after another suspension and with a
 * newer fork outstanding; the frame can then be forked again. */
static void *double_join(void *arg)
{
    int how = (int)(intptr_t)arg;
    struct counted ca = {6, 0}, cb = {7, 0}, cc = {8, 0};
    heist_task a, b;
    void *r2 = UNTOUCHED;

    heist_fork(&a, counted_child, &ca);
    suspend(how);
    JOIN_EQ(&a, NULL, COUNTED(6));
    CHECK_EQ(heist_join(&a, &r2), EINVAL);
    CHECK_EQ(heist_join_fn(&a, counted_child, &r2), EINVAL);
    heist_fork(&b, counted_child, &cb);
    suspend(how);
    CHECK_EQ(heist_join(&a, &r2), EINVAL);
    CHECK_EQ(heist_join_fn(&a, counted_child, &r2), EINVAL);
    JOIN_EQ(&b, counted_child, COUNTED(7));
    CHECK_EQ(heist_join(&b, &r2), EINVAL);
    CHECK(r2 == FAILED);
    RAN_ONCE(ca);
    RAN_ONCE(cb);

    heist_fork(&a, counted_child, &cc);
    suspend(how);
    JOIN_EQ(&a, counted_child, COUNTED(8));
    CHECK_EQ(heist_join(&a, &r2), EINVAL);
    CHECK(r2 == FAILED);
    RAN_ONCE(cc);
    return NULL;
}

Test(fork_suspend, double_join_after_suspension_1_2_8_workers)
{
    run_rounds(each_how_at_once, FN_ARG(double_join), HT_SCALE(100, 40));
}

/* ---- 5. trees of forks, suspending at several levels --------------------- */

/* tree(d, x) = x + tree(d-1, 2x+1) + tree(d-1, 2x+2), tree(0, x) = x; the
 * argument packs d in its low 3 bits. */
#define TREE_ARG(d, x) ((void *)(((uintptr_t)(x) << 3) | (uintptr_t)(d)))
#define DEPTH          4
#define TREES          200

static long tree_value(int d, long x)
{
    if (d == 0)
        return x;
    return x + tree_value(d - 1, 2 * x + 1) + tree_value(d - 1, 2 * x + 2);
}

/* Suspends between its forks (depth 3), after both (depth 4: an await;
 * depth 2, even x: a sleep) and between its joins (depth 1, x % 3 == 0),
 * so forked children suspend while their parents are suspended too. */
static void *tree(void *arg)
{
    int d = (int)((uintptr_t)arg & 7);
    long x = (long)((uintptr_t)arg >> 3);
    if (d == 0)
        return (void *)x;
    heist_task l, r;
    void *vl = NULL, *vr = NULL;
    heist_fork(&l, tree, TREE_ARG(d - 1, 2 * x + 1));
    if (d == 3)
        suspend(SLEEP);
    heist_fork(&r, tree, TREE_ARG(d - 1, 2 * x + 2));
    if (d == 4 || (d == 2 && x % 2 == 0))
        suspend(d == 4 ? AWAIT : SLEEP);
    CHECK_EQ(heist_join_fn(&r, tree, &vr), 0);
    if (d == 1 && x % 3 == 0)
        suspend(SLEEP);
    CHECK_EQ(heist_join(&l, &vl), 0);
    return (void *)(x + (long)vl + (long)vr);
}

/* TREES trees spawned at once and gathered; each result, and the sum. */
static void *forest(void *arg)
{
    (void)arg;
    heist_future *t[TREES];
    for (long i = 0; i < TREES; i++) {
        t[i] = heist_spawn(NULL, tree, TREE_ARG(DEPTH, i));
        CHECK(t[i] != NULL);
    }
    heist_future *all = heist_gather(t, TREES);
    CHECK(all != NULL);
    CHECK_EQ(heist_await(all, NULL), 0);
    long sum = 0, want = 0;
    for (long i = 0; i < TREES; i++) {
        void *v = NULL;
        CHECK_EQ(heist_future_result(t[i], &v), 0);
        CHECK_EQ((long)v, tree_value(DEPTH, i));
        sum += (long)v;
        want += tree_value(DEPTH, i);
        heist_future_unref(t[i]);
    }
    CHECK_EQ(sum, want);
    heist_future_unref(all);
    return NULL;
}

Test(fork_suspend, nested_trees_1_2_8_workers)
{
    run_rounds(forest, NULL, HT_SCALE(10, 4));
}

/* ---- 6. children stolen while their parent awaits one of them ------------ */

#define BUSY_KIDS 6
#define BUSY_FIB  16

struct busy {
    heist_future *f;
    long i, resolver;
};

/* Works a while (long enough to be stolen, if a worker is idle); the
 * resolver child then resolves the future its parent awaits. */
static void *busy_child(void *arg)
{
    const struct busy *c = arg;
    long v = (long)fib((void *)BUSY_FIB);
    if (c->i == c->resolver)
        CHECK_EQ(heist_future_set_result(c->f, (void *)RESOLVED), 0);
    return (void *)(v + c->i);
}

/* arg: the child that resolves (the first forked is the first a thief
 * takes, the last forked the first its parent would run). */
static void *await_a_child(void *arg)
{
    heist_future *f = heist_future_new();
    CHECK(f != NULL);
    struct busy kids[BUSY_KIDS];
    heist_task t[BUSY_KIDS];
    for (long i = 0; i < BUSY_KIDS; i++) {
        kids[i] = (struct busy){f, i, (long)(intptr_t)arg};
        heist_fork(&t[i], busy_child, &kids[i]);
    }
    /* Work of its own meanwhile, so that idle workers find the children. */
    CHECK_EQ((long)fib((void *)(BUSY_FIB + 1)), fib_seq(BUSY_FIB + 1));
    void *v = NULL;
    CHECK_EQ(heist_await(f, &v), 0);
    CHECK_EQ((long)v, RESOLVED);
    for (long i = BUSY_KIDS - 1; i >= 0; i--)
        JOIN_EQ(&t[i], (i & 1) ? NULL : busy_child, fib_seq(BUSY_FIB) + i);
    heist_future_unref(f);
    return NULL;
}

static void *await_a_child_both(void *arg)
{
    (void)arg;
    await_a_child((void *)0);
    return await_a_child((void *)(BUSY_KIDS - 1));
}

Test(fork_suspend, stolen_children_resolve_awaited_future_1_2_8_workers)
{
    run_rounds(await_a_child_both, NULL, HT_SCALE(200, 60));
}

/* ---- 7. wide forks of children that each suspend -------------------------- */

/* A task forks many children that each sleep, then sleeps itself. Its
 * suspension runs the newest child at once, whose sleep runs the next one
 * inside it, and so on: one level of the task's stack per child, which
 * overflowed the default 128 KiB stack at about 740 children. The runtime
 * bounds that nesting (lib/fork.c, "Bounded drains"): here 3,000 small
 * children, and 40 whose 20 KiB frames would fill the stack in 7 levels. */
enum { WIDE_SMALL = 3000, WIDE_BIG = 40, BIG_FRAME = 20 * 1024 };

static void *wide_small_child(void *arg)
{
    const long *i = arg;
    CHECK_EQ(heist_sleep(SHORT_NS), 0);
    return (void *)(*i * 3 + 1);
}

static void *wide_big_child(void *arg)
{
    const long *i = arg;
    volatile char frame[BIG_FRAME];
    frame[0] = (char)*i;
    frame[BIG_FRAME - 1] = (char)(*i + 1);
    CHECK_EQ(heist_sleep(SHORT_NS), 0);
    CHECK_EQ(frame[0], (char)*i);
    CHECK_EQ(frame[BIG_FRAME - 1], (char)(*i + 1));
    return (void *)(*i * 3 + 1);
}

/* A child's run counter and index, its argument. */
struct wide_arg {
    long i;
    atomic_int *runs;
};

static void *wide_counted(void *arg)
{
    struct wide_arg *a = arg;
    atomic_fetch_add(a->runs, 1);
    return wide_small_child(&a->i);
}

static void *wide_counted_big(void *arg)
{
    struct wide_arg *a = arg;
    atomic_fetch_add(a->runs, 1);
    return wide_big_child(&a->i);
}

/* arg: 0 small children, 1 big ones. Forks them all, suspends (how: the
 * round's), joins them in reverse with their values, each run once. */
static void *wide_suspending(void *arg)
{
    bool big = arg != NULL;
    long n = big ? WIDE_BIG : WIDE_SMALL;
    heist_fn fn = big ? wide_counted_big : wide_counted;
    heist_task *t = malloc((size_t)n * sizeof *t);
    struct wide_arg *a = malloc((size_t)n * sizeof *a);
    atomic_int *runs = calloc((size_t)n, sizeof *runs);
    CHECK(t && a && runs);
    if (!t || !a || !runs)
        goto out;
    for (long i = 0; i < n; i++) {
        a[i] = (struct wide_arg){i, &runs[i]};
        heist_fork(&t[i], fn, &a[i]);
    }
    CHECK_EQ(heist_sleep(SHORT_NS), 0);
    for (long i = n - 1; i >= 0; i--)
        JOIN_EQ(&t[i], (i & 1) ? NULL : fn, i * 3 + 1);
    for (long i = 0; i < n; i++)
        CHECK_EQ(atomic_load(&runs[i]), 1);
out:
    free(runs);
    free(a);
    free(t);
    return NULL;
}

static void *wide_both(void *arg)
{
    (void)arg;
    wide_suspending(NULL);
    return wide_suspending((void *)1);
}

Test(fork_suspend, wide_forks_of_suspending_children_1_2_8_workers)
{
    run_rounds(wide_both, NULL, HT_SCALE(3, 1));
}
