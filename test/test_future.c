/*
 * test_future.c - futures and tasks (include/heist/future.h): the states of
 * a future and every error code, tasks (heist_spawn, heist_fail,
 * heist_cancelling), await and await_timeout in tasks and on plain threads,
 * then-callbacks, gather and any, sleep, cancellation (before start, while
 * awaiting, while sleeping, of gathers and anys), heist_run cancelling what
 * its main left running, reference counts, and the suspend/resume counters.
 *
 * Code on workers records failed checks with CHECK (test_check.h) and each
 * test ends with expect_clean(). Waits are bounded (30 s or more) and assert
 * nothing about speed; elapsed times are checked only against lower bounds
 * the API promises and generous upper bounds.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <heist/heist.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <time.h>

#include "test_check.h"
#include "test_util.h"

#define VAL(x)   ((void *)(uintptr_t)(x))
#define SENTINEL ((void *)(uintptr_t)0x5e5e5e5eu)
#define MS(x)    ((uint64_t)(x)*1000000u)
#define HOUR     (3600u * 1000000000ull)

/* ---- helpers ----------------------------------------------------------- */

/* A hang aborts with a message (test_util.h). */
HT_WATCHDOG_SUITE(future, 120);

static heist_sched *new_sched(unsigned workers)
{
    heist_config cfg = {.workers = workers};
    heist_sched *s = NULL;
    int err = heist_sched_new(&cfg, &s);
    cr_assert_eq(err, 0, "heist_sched_new(workers=%u): error %d", workers, err);
    return s;
}

static void free_sched(heist_sched *s)
{
    cr_assert_eq(heist_sched_free(s), 0);
}

static void *run_main(heist_sched *s, heist_fn fn, void *arg)
{
    void *r = SENTINEL;
    int err = heist_run(s, fn, arg, &r);
    cr_assert_eq(err, 0, "heist_run: error %d", err);
    return r;
}

static heist_stats stats_of(heist_sched *s)
{
    heist_stats st;
    int err = heist_sched_stats(s, &st);
    if (err)
        note_fail(__LINE__, "heist_sched_stats: %d", err);
    return st;
}

/* Waits until s's total suspends reach n: the way to know that a task is
 * really suspended (not merely about to await). False after 30 s. */
static bool wait_suspends(heist_sched *s, uint64_t n)
{
    uint64_t deadline = ht_now_ns() + 30ull * 1000000000u;
    while (stats_of(s).total.suspends < n) {
        if (ht_now_ns() > deadline)
            return false;
        struct timespec nap = {0, 100 * 1000};
        nanosleep(&nap, NULL);
    }
    return true;
}

/* Sleeps the task (or thread) in 1 ms steps until *v >= target; false
 * after 30 s. In a task this lets the worker run other tasks meanwhile. */
static bool sleep_until(atomic_int *v, int target)
{
    for (int i = 0; i < 30000; i++) {
        if (atomic_load(v) >= target)
            return true;
        if (heist_sleep(MS(1)) != 0)
            return atomic_load(v) >= target;
    }
    return atomic_load(v) >= target;
}

static void *identity(void *arg)
{
    return arg;
}

static void *add_one(void *arg)
{
    return (void *)((uintptr_t)arg + 1);
}

/* Returns a new pending future created in a task, so it belongs to the
 * task's scheduler; the caller takes the reference. */
static void *make_future(void *arg)
{
    (void)arg;
    return heist_future_new();
}

/* A plain thread that runs fn(arg). */
static pthread_t start_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, fn, arg), 0);
    return t;
}

/* ---- a future's states ------------------------------------------------- */

Test(future, new_is_pending)
{
    heist_future *f = heist_future_new();
    cr_assert_not_null(f);
    cr_assert(!heist_future_done(f));
    cr_assert(!heist_future_cancelled(f));
    void *v = SENTINEL;
    cr_assert_eq(heist_future_result(f, &v), EAGAIN);
    cr_assert_eq(v, SENTINEL, "result wrote *value of a pending future");
    cr_assert_eq(heist_future_result(f, NULL), EAGAIN);
    cr_assert_eq(heist_await_timeout(f, 0, &v), ETIMEDOUT);
    cr_assert_eq(v, SENTINEL);
    cr_assert(!heist_future_done(f));
    heist_future_unref(f);
}

Test(future, set_result_once)
{
    heist_future *f = heist_future_new();
    cr_assert_eq(heist_future_set_result(f, VAL(11)), 0);
    cr_assert(heist_future_done(f));
    cr_assert(!heist_future_cancelled(f));
    void *v = SENTINEL;
    cr_assert_eq(heist_future_result(f, &v), 0);
    cr_assert_eq(v, VAL(11));
    cr_assert_eq(heist_future_result(f, NULL), 0);
    /* Completing again in any way: EBUSY / false, and the result stays. */
    cr_assert_eq(heist_future_set_result(f, VAL(12)), EBUSY);
    cr_assert_eq(heist_future_set_error(f, EIO), EBUSY);
    cr_assert(!heist_future_cancel(f));
    cr_assert(!heist_future_cancelled(f));
    v = SENTINEL;
    cr_assert_eq(heist_future_result(f, &v), 0);
    cr_assert_eq(v, VAL(11));
    /* Await of a done future on a plain thread returns at once. */
    v = SENTINEL;
    cr_assert_eq(heist_await(f, &v), 0);
    cr_assert_eq(v, VAL(11));
    v = SENTINEL;
    cr_assert_eq(heist_await_timeout(f, 0, &v), 0);
    cr_assert_eq(v, VAL(11));
    cr_assert_eq(heist_await(f, NULL), 0);
    heist_future_unref(f);

    /* NULL is a value like any other. */
    f = heist_future_new();
    cr_assert_eq(heist_future_set_result(f, NULL), 0);
    v = SENTINEL;
    cr_assert_eq(heist_future_result(f, &v), 0);
    cr_assert_null(v);
    heist_future_unref(f);
}

Test(future, set_error_once)
{
    heist_future *f = heist_future_new();
    cr_assert_eq(heist_future_set_error(f, EIO), 0);
    cr_assert(heist_future_done(f));
    cr_assert(!heist_future_cancelled(f));
    void *v = SENTINEL;
    cr_assert_eq(heist_future_result(f, &v), EIO);
    cr_assert_eq(v, SENTINEL, "result wrote *value of a failed future");
    cr_assert_eq(heist_future_set_error(f, ENOSPC), EBUSY);
    cr_assert_eq(heist_future_set_result(f, VAL(1)), EBUSY);
    cr_assert(!heist_future_cancel(f));
    cr_assert_eq(heist_future_result(f, &v), EIO);
    cr_assert_eq(heist_await(f, &v), EIO);
    cr_assert_eq(heist_await_timeout(f, 0, &v), EIO);
    cr_assert_eq(v, SENTINEL);
    heist_future_unref(f);
}

Test(future, set_error_rejects_bad_codes)
{
    heist_future *f = heist_future_new();
    cr_assert_eq(heist_future_set_error(f, 0), EINVAL);
    cr_assert_eq(heist_future_set_error(f, -1), EINVAL);
    cr_assert_eq(heist_future_set_error(f, -EIO), EINVAL);
    cr_assert_eq(heist_future_set_error(f, ECANCELED), EINVAL);
    /* A rejected call leaves f pending and usable. */
    cr_assert(!heist_future_done(f));
    cr_assert_eq(heist_future_result(f, NULL), EAGAIN);
    cr_assert_eq(heist_future_set_error(f, EPIPE), 0);
    cr_assert_eq(heist_future_result(f, NULL), EPIPE);
    heist_future_unref(f);
}

Test(future, cancel_plain_future)
{
    heist_future *f = heist_future_new();
    cr_assert(heist_future_cancel(f));
    cr_assert(heist_future_done(f));
    cr_assert(heist_future_cancelled(f));
    void *v = SENTINEL;
    cr_assert_eq(heist_future_result(f, &v), ECANCELED);
    cr_assert_eq(v, SENTINEL);
    cr_assert(!heist_future_cancel(f), "cancel of a cancelled future");
    cr_assert_eq(heist_future_set_result(f, VAL(1)), EBUSY);
    cr_assert_eq(heist_future_set_error(f, EIO), EBUSY);
    cr_assert(heist_future_cancelled(f));
    cr_assert_eq(heist_await(f, &v), ECANCELED);
    cr_assert_eq(v, SENTINEL);
    heist_future_unref(f);
}

/* ---- bad arguments, on a plain thread and on a worker ------------------- */

static void never_cb(heist_future *f, void *arg)
{
    (void)f;
    (void)arg;
    note_fail(__LINE__, "a callback ran that must not");
}

static void *bad_args(void *arg)
{
    bool on_worker = arg != NULL;
    void *v = SENTINEL;
    heist_future *f = heist_future_new();
    CHECK(f != NULL);

    errno = 0;
    CHECK(heist_future_ref(NULL) == NULL);
    CHECK_EQ(get_errno(), EINVAL);
    heist_future_unref(NULL); /* ignored */
    CHECK_EQ(heist_future_set_result(NULL, VAL(1)), EINVAL);
    CHECK_EQ(heist_future_set_error(NULL, EIO), EINVAL);
    CHECK(!heist_future_cancel(NULL));
    CHECK(!heist_future_done(NULL));
    CHECK(!heist_future_cancelled(NULL));
    CHECK_EQ(heist_future_result(NULL, &v), EINVAL);
    CHECK_EQ(heist_future_then(NULL, never_cb, NULL), EINVAL);
    if (on_worker) {
        CHECK_EQ(heist_future_then(f, NULL, NULL), EINVAL);
    } else {
        /* f belongs to no scheduler: EPERM applies as well. */
        int rc = heist_future_then(f, NULL, NULL);
        CHECK(rc == EINVAL || rc == EPERM);
    }
    CHECK_EQ(heist_await(NULL, &v), EINVAL);
    CHECK_EQ(heist_await_timeout(NULL, MS(1), &v), EINVAL);
    CHECK_EQ(heist_await_timeout(NULL, 0, &v), EINVAL);
    CHECK(v == SENTINEL);

    heist_future *with_null[2] = {f, NULL};
    errno = 0;
    CHECK(heist_gather(NULL, 1) == NULL);
    CHECK_EQ(get_errno(), EINVAL);
    errno = 0;
    CHECK(heist_gather(with_null, 2) == NULL);
    CHECK_EQ(get_errno(), EINVAL);
    errno = 0;
    CHECK(heist_any(NULL, 1) == NULL);
    CHECK_EQ(get_errno(), EINVAL);
    errno = 0;
    CHECK(heist_any(with_null, 0) == NULL);
    CHECK_EQ(get_errno(), EINVAL);
    errno = 0;
    CHECK(heist_any(with_null, 2) == NULL);
    CHECK_EQ(get_errno(), EINVAL);

    errno = 0;
    CHECK(heist_spawn(NULL, NULL, NULL) == NULL);
    CHECK_EQ(get_errno(), EINVAL);
    if (!on_worker) {
        /* No scheduler named and none current. */
        errno = 0;
        CHECK(heist_spawn(NULL, identity, NULL) == NULL);
        CHECK_EQ(get_errno(), EINVAL);
        CHECK_EQ(heist_fail(EIO), EPERM);
        CHECK(!heist_cancelling());
    } else {
        CHECK_EQ(heist_fail(0), EINVAL);
        CHECK_EQ(heist_fail(-EIO), EINVAL);
        CHECK_EQ(heist_fail(ECANCELED), EINVAL);
        CHECK(!heist_cancelling());
    }

    /* f survived all of that untouched. */
    CHECK(!heist_future_done(f));
    heist_future_unref(f);
    return NULL;
}

Test(future, bad_args_plain_thread)
{
    bad_args(NULL);
    heist_sched *s = new_sched(2);
    errno = 0;
    cr_assert_null(heist_spawn(s, NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    free_sched(s);
    expect_clean();
}

Test(future, bad_args_on_worker)
{
    heist_sched *s = new_sched(2);
    /* The rejected heist_fail calls left main's outcome alone. */
    cr_assert_null(run_main(s, bad_args, s));
    free_sched(s);
    expect_clean();
}

/* ---- reference counts -------------------------------------------------- */

Test(future, ref_unref)
{
    heist_future *f = heist_future_new();
    cr_assert_eq(heist_future_ref(f), f);
    heist_future_unref(f); /* one reference left: still usable */
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(heist_future_ref(f), f);
    for (int i = 0; i < 1000; i++)
        heist_future_unref(f);
    cr_assert_eq(heist_future_set_result(f, VAL(3)), 0);
    void *v = NULL;
    cr_assert_eq(heist_future_result(f, &v), 0);
    cr_assert_eq(v, VAL(3));
    heist_future_unref(f);
    /* What is freed too early or never freed shows in the asan build. */
}

static atomic_int spawned_ran;

static void *slow_then_count(void *arg)
{
    heist_future *gate = arg;
    CHECK_EQ(heist_await(gate, NULL), 0);
    atomic_fetch_add(&spawned_ran, 1);
    return NULL;
}

/* The caller drops its references at once; the runtime keeps what it needs
 * (the task's own future, the gate it awaits), and heist_sched_free waits
 * for every task. */
Test(future, task_outlives_callers_reference)
{
    heist_sched *s = new_sched(2);
    heist_future *gate = heist_future_new();
    for (int i = 0; i < 50; i++) {
        heist_future *t = heist_spawn(s, slow_then_count, gate);
        cr_assert_not_null(t);
        heist_future_unref(t);
    }
    cr_assert(wait_suspends(s, 1));
    cr_assert_eq(heist_future_set_result(gate, NULL), 0);
    free_sched(s);
    /* Tasks that had not started yet hold only our pointer to the gate. */
    heist_future_unref(gate);
    cr_assert_eq(atomic_load(&spawned_ran), 50);
    expect_clean();
}

/* ---- spawn and await --------------------------------------------------- */

struct whoami {
    heist_sched *want;
    int nworkers;
};

static void *child_where(void *arg)
{
    struct whoami *w = arg;
    CHECK(heist_current() == w->want);
    int i = heist_worker_index();
    CHECK(i >= 0 && i < w->nworkers);
    return VAL(1000 + i);
}

static void *spawn_children(void *arg)
{
    struct whoami *w = arg;
    heist_future *t[16];
    for (int i = 0; i < 16; i++) {
        t[i] = heist_spawn(NULL, i % 2 ? add_one : child_where,
                           i % 2 ? VAL(i) : (void *)w);
        CHECK(t[i] != NULL);
    }
    for (int i = 0; i < 16; i++) {
        void *v = SENTINEL;
        CHECK_EQ(heist_await(t[i], &v), 0);
        if (i % 2)
            CHECK(v == VAL(i + 1));
        else
            CHECK((uintptr_t)v >= 1000 && (uintptr_t)v < 1000u + 16);
        CHECK(heist_future_done(t[i]));
        CHECK_EQ(heist_future_result(t[i], NULL), 0);
        heist_future_unref(t[i]);
    }
    return VAL(77);
}

Test(future, spawn_in_task_and_await)
{
    const unsigned counts[] = {1, 2, 8};
    for (int k = 0; k < 3; k++) {
        heist_sched *s = new_sched(counts[k]);
        struct whoami w = {s, (int)counts[k]};
        for (int rep = 0; rep < 20; rep++)
            cr_assert_eq(run_main(s, spawn_children, &w), VAL(77));
        free_sched(s);
    }
    expect_clean();
}

struct delayed_set {
    heist_future *f;
    uint64_t delay_ns;
    void *value;
};

static void *set_after(void *arg)
{
    struct delayed_set *d = arg;
    CHECK_EQ(heist_sleep(d->delay_ns), 0);
    CHECK_EQ(heist_future_set_result(d->f, d->value), 0);
    return NULL;
}

struct plain_await {
    heist_future *f;
    void *want;
    int rc;
    void *got;
};

static void *plain_awaiter(void *arg)
{
    struct plain_await *p = arg;
    p->got = SENTINEL;
    p->rc = heist_await(p->f, &p->got);
    return NULL;
}

/* A task's future awaited from plain threads, which block. */
Test(future, spawn_from_plain_thread_and_await)
{
    heist_sched *s = new_sched(2);
    heist_future *t = heist_spawn(s, add_one, VAL(41));
    cr_assert_not_null(t);
    void *v = SENTINEL;
    cr_assert_eq(heist_await(t, &v), 0);
    cr_assert_eq(v, VAL(42));
    cr_assert(heist_future_done(t));
    cr_assert(!heist_future_cancelled(t));
    /* A task completes itself: nobody else may. */
    cr_assert_eq(heist_future_set_result(t, VAL(1)), EPERM);
    cr_assert_eq(heist_future_set_error(t, EIO), EPERM);
    cr_assert(!heist_future_cancel(t), "cancel of a finished task");
    cr_assert_eq(heist_future_result(t, &v), 0);
    cr_assert_eq(v, VAL(42));
    heist_future_unref(t);

    /* Four plain threads await one future that a task completes. */
    heist_future *gate = heist_future_new();
    struct plain_await p[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        p[i] = (struct plain_await){.f = gate};
        th[i] = start_thread(plain_awaiter, &p[i]);
    }
    struct timespec nap = {0, 20 * 1000 * 1000};
    nanosleep(&nap, NULL); /* most of them are blocked by now */
    struct delayed_set d = {gate, MS(10), VAL(5)};
    heist_future *setter = heist_spawn(s, set_after, &d);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(p[i].rc, 0);
        cr_assert_eq(p[i].got, VAL(5));
    }
    cr_assert_eq(heist_await(setter, NULL), 0);
    heist_future_unref(setter);
    heist_future_unref(gate);
    free_sched(s);
    expect_clean();
}

/* ---- records that outlive their scheduler ---------------------------------
 * Task records and futures made on workers are carved from the workers'
 * slabs. A program may keep them past heist_sched_free: the results stay
 * readable, and each one freed later (on a plain thread, on a worker of
 * another scheduler, from several threads at once) gives its slab back
 * when it is the last (the asan preset's LeakSanitizer checks that). Freed
 * while the scheduler lives, from a plain thread, they go back to their
 * workers' caches. */
#define KEPT 20000

struct kept {
    heist_future *f[KEPT];
};

static void *make_kept(void *arg)
{
    struct kept *k = arg;
    for (long i = 0; i < KEPT; i++) {
        if (i % 2) {
            k->f[i] = heist_future_new();
            if (!k->f[i] || heist_future_set_result(k->f[i], VAL(i + 1)))
                return VAL(1);
        } else {
            k->f[i] = heist_spawn(NULL, add_one, VAL(i));
            if (!k->f[i])
                return VAL(2);
        }
    }
    heist_future *all = heist_gather(k->f, KEPT);
    if (!all || heist_await(all, NULL))
        return VAL(3);
    heist_future_unref(all);
    return NULL;
}

struct unref_range {
    struct kept *k;
    long from, to, bad;
};

static void *unref_range(void *arg)
{
    struct unref_range *u = arg;
    for (long i = u->from; i < u->to; i++) {
        void *v = NULL;
        if (heist_future_result(u->k->f[i], &v) || v != VAL(i + 1))
            u->bad++;
        heist_future_unref(u->k->f[i]);
    }
    return NULL;
}

Test(future, records_outlive_their_scheduler)
{
    static struct kept k;
    for (unsigned nw = 1; nw <= 4; nw *= 2) {
        heist_sched *s = new_sched(nw);
        cr_assert_null(run_main(s, make_kept, &k));
        /* A quarter freed while s lives, from this plain thread. */
        struct unref_range a = {&k, 0, KEPT / 4, 0};
        unref_range(&a);
        cr_assert_eq(a.bad, 0);
        free_sched(s);
        /* A quarter from a worker of another scheduler, the rest from two
         * plain threads at once. */
        heist_sched *s2 = new_sched(2);
        struct unref_range b = {&k, KEPT / 4, KEPT / 2, 0};
        cr_assert_null(run_main(s2, unref_range, &b));
        cr_assert_eq(b.bad, 0);
        struct unref_range c = {&k, KEPT / 2, 3 * KEPT / 4, 0};
        struct unref_range d = {&k, 3 * KEPT / 4, KEPT, 0};
        pthread_t th[2] = {start_thread(unref_range, &c),
                           start_thread(unref_range, &d)};
        pthread_join(th[0], NULL);
        pthread_join(th[1], NULL);
        cr_assert_eq(c.bad + d.bad, 0, "%u workers", nw);
        free_sched(s2);
    }
    expect_clean();
}

/* A task completes a future a plain thread is blocked on, and the plain
 * thread sees the task's plain writes made before the completion. */
struct handoff {
    heist_future *f;
    long data[32];
};

static void *write_then_set(void *arg)
{
    struct handoff *h = arg;
    CHECK_EQ(heist_sleep(MS(10)), 0);
    for (int i = 0; i < 32; i++)
        h->data[i] = (long)i * 3 + 1;
    CHECK_EQ(heist_future_set_result(h->f, h), 0);
    return NULL;
}

Test(future, plain_thread_awaits_task_completion)
{
    heist_sched *s = new_sched(2);
    for (int rep = 0; rep < 20; rep++) {
        struct handoff h;
        memset(&h, 0, sizeof(h));
        h.f = heist_future_new();
        heist_future *t = heist_spawn(s, write_then_set, &h);
        void *v = NULL;
        cr_assert_eq(heist_await(h.f, &v), 0);
        cr_assert_eq(v, &h);
        for (int i = 0; i < 32; i++)
            cr_assert_eq(h.data[i], (long)i * 3 + 1);
        cr_assert_eq(heist_await(t, NULL), 0);
        heist_future_unref(t);
        heist_future_unref(h.f);
    }
    free_sched(s);
    expect_clean();
}

/* A plain thread completes what a suspended task awaits. */
struct gate_wait {
    heist_future *gate;
    atomic_int arrived;
    int rc;
    void *got;
};

static void *await_gate(void *arg)
{
    struct gate_wait *g = arg;
    atomic_fetch_add(&g->arrived, 1);
    g->got = SENTINEL;
    g->rc = heist_await(g->gate, &g->got);
    return VAL(9);
}

Test(future, plain_thread_wakes_suspended_task)
{
    const unsigned counts[] = {1, 2};
    for (int k = 0; k < 2; k++) {
        heist_sched *s = new_sched(counts[k]);
        heist_stats before = stats_of(s);
        cr_assert_eq(before.total.suspends, 0);
        cr_assert_eq(before.total.resumes, 0);
        struct gate_wait g = {.gate = heist_future_new()};
        heist_future *t = heist_spawn(s, await_gate, &g);
        cr_assert(wait_suspends(s, 1), "the task never suspended");
        cr_assert(!heist_future_done(t));
        cr_assert_eq(heist_future_set_result(g.gate, VAL(3)), 0);
        void *v = NULL;
        cr_assert_eq(heist_await(t, &v), 0);
        cr_assert_eq(v, VAL(9));
        cr_assert_eq(g.rc, 0);
        cr_assert_eq(g.got, VAL(3));
        /* Once everything ended, every suspension had its resume. The
         * counters may lag the task's end a little; wait for them. */
        uint64_t deadline = ht_now_ns() + 30ull * 1000000000u;
        heist_stats st = stats_of(s);
        while (st.total.resumes < st.total.suspends && ht_now_ns() < deadline)
            st = stats_of(s);
        cr_assert_geq(st.total.suspends, 1);
        cr_assert_eq(st.total.resumes, st.total.suspends);
        heist_future_unref(t);
        heist_future_unref(g.gate);
        free_sched(s);
    }
    expect_clean();
}

/* Tasks that never block never switch stacks: no suspends counted. */
static void *fib(void *arg)
{
    long n = (long)arg;
    if (n < 2)
        return (void *)n;
    heist_task t;
    void *a = NULL;
    heist_fork(&t, fib, (void *)(n - 1));
    long b = (long)fib((void *)(n - 2));
    heist_join(&t, &a);
    return (void *)((long)a + b);
}

Test(future, no_suspends_without_blocking)
{
    heist_sched *s = new_sched(1);
    cr_assert_eq((long)run_main(s, fib, (void *)20L), 6765);
    heist_stats st = stats_of(s);
    cr_assert_eq(st.total.suspends, 0);
    cr_assert_eq(st.total.resumes, 0);
    free_sched(s);
    expect_clean();
}

/* ---- EDEADLK: a task awaiting its own future --------------------------- */

struct self_await {
    heist_future *gate, *self;
    int rc, rc_timeout;
};

static void *await_self(void *arg)
{
    struct self_await *a = arg;
    /* a->self is written before the gate is set. */
    CHECK_EQ(heist_await(a->gate, NULL), 0);
    a->rc = heist_await(a->self, NULL);
    a->rc_timeout = heist_await_timeout(a->self, MS(10), NULL);
    return VAL(7);
}

Test(future, await_own_future_is_edeadlk)
{
    heist_sched *s = new_sched(2);
    struct self_await a = {.gate = heist_future_new()};
    a.self = heist_spawn(s, await_self, &a);
    cr_assert_not_null(a.self);
    cr_assert_eq(heist_future_set_result(a.gate, NULL), 0);
    void *v = NULL;
    cr_assert_eq(heist_await(a.self, &v), 0);
    cr_assert_eq(v, VAL(7));
    cr_assert_eq(a.rc, EDEADLK);
    cr_assert_eq(a.rc_timeout, EDEADLK);
    heist_future_unref(a.self);
    heist_future_unref(a.gate);
    free_sched(s);
    expect_clean();
}

/* ---- heist_fail --------------------------------------------------------- */

static void *fail_with(void *arg)
{
    CHECK_EQ(heist_fail((int)(intptr_t)arg), 0);
    return VAL(99); /* ignored */
}

static void *fail_twice(void *arg)
{
    (void)arg;
    CHECK_EQ(heist_fail(EIO), 0);
    CHECK_EQ(heist_fail(ENOSPC), 0); /* the last call wins */
    return VAL(1);
}

static void *fail_after_await(void *arg)
{
    heist_future *gate = arg;
    CHECK_EQ(heist_fail(EPIPE), 0);
    /* The failure belongs to the task, not to the worker it ran on. */
    CHECK_EQ(heist_await(gate, NULL), 0);
    return VAL(1);
}

static void *fail_bad_codes(void *arg)
{
    (void)arg;
    CHECK_EQ(heist_fail(0), EINVAL);
    CHECK_EQ(heist_fail(-1), EINVAL);
    CHECK_EQ(heist_fail(ECANCELED), EINVAL);
    return VAL(5);
}

/* A child's heist_fail does not leak into its parent (on one worker they
 * share the thread). */
static void *parent_of_failing_child(void *arg)
{
    (void)arg;
    heist_future *c = heist_spawn(NULL, fail_with, VAL(ENOENT));
    void *v = SENTINEL;
    CHECK_EQ(heist_await(c, &v), ENOENT);
    CHECK(v == SENTINEL);
    CHECK(heist_future_done(c));
    CHECK(!heist_future_cancelled(c));
    CHECK_EQ(heist_future_result(c, &v), ENOENT);
    CHECK(v == SENTINEL);
    heist_future_unref(c);
    return VAL(8);
}

Test(future, heist_fail_outcomes)
{
    const unsigned counts[] = {1, 2};
    for (int k = 0; k < 2; k++) {
        heist_sched *s = new_sched(counts[k]);
        void *r = SENTINEL;
        cr_assert_eq(heist_run(s, fail_with, VAL(ENOENT), &r), ENOENT);
        cr_assert_eq(r, SENTINEL, "heist_run wrote *result of a failed main");
        cr_assert_eq(heist_run(s, fail_twice, NULL, &r), ENOSPC);
        cr_assert_eq(r, SENTINEL);
        cr_assert_eq(heist_run(s, fail_with, VAL(EIO), NULL), EIO);
        /* Rejected codes change nothing. */
        cr_assert_eq(run_main(s, fail_bad_codes, NULL), VAL(5));
        /* The next main on the same workers is not failed. */
        cr_assert_eq(run_main(s, identity, VAL(4)), VAL(4));
        cr_assert_eq(run_main(s, parent_of_failing_child, NULL), VAL(8));

        heist_future *t = heist_spawn(s, fail_twice, NULL);
        cr_assert_eq(heist_await(t, NULL), ENOSPC);
        cr_assert(!heist_future_cancelled(t));
        heist_future_unref(t);

        heist_future *gate = heist_future_new();
        uint64_t base = stats_of(s).total.suspends;
        t = heist_spawn(s, fail_after_await, gate);
        cr_assert(wait_suspends(s, base + 1));
        cr_assert_eq(run_main(s, identity, VAL(6)), VAL(6));
        cr_assert_eq(heist_future_set_result(gate, NULL), 0);
        cr_assert_eq(heist_await(t, NULL), EPIPE);
        heist_future_unref(t);
        heist_future_unref(gate);
        free_sched(s);
    }
    cr_assert_eq(heist_fail(EIO), EPERM);
    expect_clean();
}

/* ---- cancellation ------------------------------------------------------- */

static atomic_int blocker_running, blocker_release, victim_ran;

static void *blocker(void *arg)
{
    (void)arg;
    atomic_store(&blocker_running, 1);
    /* Holds the only worker (without suspending) until released. */
    CHECK(ht_wait_at_least(&blocker_release, 1, 60));
    return NULL;
}

static void *victim(void *arg)
{
    (void)arg;
    atomic_fetch_add(&victim_ran, 1);
    return VAL(1);
}

/* A task that has not started never runs and is cancelled at once. */
Test(future, cancel_before_start)
{
    heist_sched *s = new_sched(1);
    heist_future *b = heist_spawn(s, blocker, NULL);
    cr_assert(ht_wait_at_least(&blocker_running, 1, 30));
    heist_future *v[8];
    for (int i = 0; i < 8; i++)
        v[i] = heist_spawn(s, victim, NULL);
    for (int i = 0; i < 8; i++) {
        cr_assert(heist_future_cancel(v[i]));
        cr_assert(heist_future_done(v[i]), "not cancelled at once");
        cr_assert(heist_future_cancelled(v[i]));
        cr_assert_eq(heist_future_result(v[i], NULL), ECANCELED);
        cr_assert(!heist_future_cancel(v[i]), "cancelled twice");
    }
    atomic_store(&blocker_release, 1);
    cr_assert_eq(heist_await(b, NULL), 0);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(heist_await(v[i], NULL), ECANCELED);
        heist_future_unref(v[i]);
    }
    heist_future_unref(b);
    free_sched(s);
    cr_assert_eq(atomic_load(&victim_ran), 0, "a cancelled task ran");
    expect_clean();
}

struct cancel_probe {
    heist_future *gate;
    atomic_int stage;
    atomic_int release;
    bool cancelling_before, cancelling_after;
    int rc_await, rc_later, rc_timeout, rc_sleep, rc_zero_sleep;
    void *got;
};

static void *cancellable_awaiter(void *arg)
{
    struct cancel_probe *c = arg;
    c->cancelling_before = heist_cancelling();
    atomic_store(&c->stage, 1);
    c->got = SENTINEL;
    c->rc_await = heist_await(c->gate, &c->got);
    c->cancelling_after = heist_cancelling();
    /* Later awaits and sleeps return ECANCELED without waiting. */
    heist_future *other = heist_future_new();
    c->rc_later = heist_await(other, NULL);
    c->rc_timeout = heist_await_timeout(other, HOUR, NULL);
    c->rc_sleep = heist_sleep(HOUR);
    c->rc_zero_sleep = heist_sleep(0);
    CHECK(!heist_future_done(other));
    heist_future_unref(other);
    atomic_store(&c->stage, 2);
    /* Still running: the task is not completed until this returns. */
    CHECK(ht_wait_at_least(&c->release, 1, 60));
    return VAL(5);
}

Test(future, cancel_while_awaiting)
{
    const unsigned counts[] = {1, 2};
    for (int k = 0; k < 2; k++) {
        heist_sched *s = new_sched(counts[k]);
        struct cancel_probe c = {.gate = heist_future_new()};
        heist_future *t = heist_spawn(s, cancellable_awaiter, &c);
        cr_assert(ht_wait_at_least(&c.stage, 1, 30));
        cr_assert(wait_suspends(s, 1), "the task never suspended");
        cr_assert(heist_future_cancel(t));
        cr_assert(ht_wait_at_least(&c.stage, 2, 30),
                  "awaits/sleeps of a cancelled task did not return");
        cr_assert(!heist_future_done(t), "completed before fn returned");
        cr_assert(!c.cancelling_before);
        cr_assert(c.cancelling_after);
        cr_assert_eq(c.rc_await, ECANCELED);
        cr_assert_eq(c.got, SENTINEL);
        cr_assert_eq(c.rc_later, ECANCELED);
        cr_assert_eq(c.rc_timeout, ECANCELED);
        cr_assert_eq(c.rc_sleep, ECANCELED);
        cr_assert_eq(c.rc_zero_sleep, ECANCELED);
        /* The awaited future is left as it was. */
        cr_assert(!heist_future_done(c.gate));
        atomic_store(&c.release, 1);
        void *v = SENTINEL;
        cr_assert_eq(heist_await(t, &v), ECANCELED);
        cr_assert_eq(v, SENTINEL);
        cr_assert(heist_future_cancelled(t));
        cr_assert_eq(heist_future_result(t, NULL), ECANCELED);
        cr_assert(!heist_future_cancel(t));
        /* Nobody waits on the gate any more; completing it is harmless. */
        cr_assert_eq(heist_future_set_result(c.gate, VAL(1)), 0);
        heist_future_unref(t);
        heist_future_unref(c.gate);
        free_sched(s);
    }
    expect_clean();
}

/* "Later awaits return ECANCELED" holds for a future that is already done,
 * too: the request is not consumed by the first await. */
static void *cancelled_then_await_done(void *arg)
{
    struct cancel_probe *c = arg;
    atomic_store(&c->stage, 1);
    c->rc_await = heist_await(c->gate, NULL);
    heist_future *done = heist_future_new();
    CHECK_EQ(heist_future_set_result(done, VAL(1)), 0);
    c->got = SENTINEL;
    c->rc_later = heist_await(done, &c->got);
    heist_future_unref(done);
    return NULL;
}

Test(future, cancelled_task_later_await_of_done_future)
{
    heist_sched *s = new_sched(2);
    struct cancel_probe c = {.gate = heist_future_new()};
    heist_future *t = heist_spawn(s, cancelled_then_await_done, &c);
    cr_assert(wait_suspends(s, 1));
    cr_assert(heist_future_cancel(t));
    cr_assert_eq(heist_await(t, NULL), ECANCELED);
    cr_assert_eq(c.rc_await, ECANCELED);
    cr_assert_eq(c.rc_later, ECANCELED);
    cr_assert_eq(c.got, SENTINEL);
    heist_future_unref(t);
    heist_future_unref(c.gate);
    free_sched(s);
    expect_clean();
}

/* A running task that never awaits still ends cancelled. */
static void *busy_until_cancelled(void *arg)
{
    struct cancel_probe *c = arg;
    atomic_store(&c->stage, 1);
    uint64_t deadline = ht_now_ns() + 60ull * 1000000000u;
    while (!heist_cancelling() && ht_now_ns() < deadline)
        sched_yield();
    c->cancelling_after = heist_cancelling();
    return VAL(3);
}

Test(future, cancel_running_task_without_awaits)
{
    heist_sched *s = new_sched(2);
    struct cancel_probe c = {0};
    heist_future *t = heist_spawn(s, busy_until_cancelled, &c);
    cr_assert(ht_wait_at_least(&c.stage, 1, 30));
    cr_assert(heist_future_cancel(t));
    cr_assert_eq(heist_await(t, NULL), ECANCELED);
    cr_assert(c.cancelling_after, "heist_cancelling() never turned true");
    cr_assert(heist_future_cancelled(t));
    heist_future_unref(t);
    free_sched(s);
    expect_clean();
}

struct sleep_probe {
    atomic_int stage;
    uint64_t ns;
    int rc;
    uint64_t elapsed;
};

static void *sleeper(void *arg)
{
    struct sleep_probe *p = arg;
    atomic_store(&p->stage, 1);
    uint64_t t0 = ht_now_ns();
    p->rc = heist_sleep(p->ns);
    p->elapsed = ht_now_ns() - t0;
    return NULL;
}

Test(future, cancel_while_sleeping)
{
    /* UINT64_MAX too: a deadline computed as now + ns must not wrap. */
    const uint64_t lengths[] = {HOUR, UINT64_MAX};
    for (int k = 0; k < 2; k++) {
        heist_sched *s = new_sched(2);
        struct sleep_probe p = {.ns = lengths[k]};
        heist_future *t = heist_spawn(s, sleeper, &p);
        cr_assert(ht_wait_at_least(&p.stage, 1, 30));
        cr_assert(wait_suspends(s, 1), "the sleeping task never suspended");
        cr_assert(!heist_future_done(t), "sleep of %llu ns returned early",
                  (unsigned long long)lengths[k]);
        cr_assert(heist_future_cancel(t));
        cr_assert_eq(heist_await(t, NULL), ECANCELED);
        cr_assert_eq(p.rc, ECANCELED);
        cr_assert_lt(p.elapsed, 60ull * 1000000000u,
                     "the cancelled sleep was not cut short");
        heist_future_unref(t);
        free_sched(s);
    }
    expect_clean();
}

/* Cancelling a gather cancels its children: suspended tasks and a pending
 * plain future (a done child stays done). */
static atomic_int gathered_rc_count;

static void *await_gate_count_cancel(void *arg)
{
    heist_future *gate = arg;
    int rc = heist_await(gate, NULL);
    if (rc == ECANCELED && heist_cancelling())
        atomic_fetch_add(&gathered_rc_count, 1);
    return NULL;
}

Test(future, cancel_gather_cancels_children)
{
    heist_sched *s = new_sched(2);
    heist_future *gate = heist_future_new();
    heist_future *fs[5];
    for (int i = 0; i < 3; i++)
        fs[i] = heist_spawn(s, await_gate_count_cancel, gate);
    cr_assert(wait_suspends(s, 3));
    fs[3] = heist_future_new();
    heist_future *done = heist_future_new();
    cr_assert_eq(heist_future_set_result(done, VAL(1)), 0);
    fs[4] = done;
    heist_future *g = heist_gather(fs, 5);
    cr_assert_not_null(g);
    cr_assert_eq(heist_future_set_result(g, NULL), EPERM);
    cr_assert_eq(heist_future_set_error(g, EIO), EPERM);
    cr_assert(heist_future_cancel(g));
    cr_assert_eq(heist_await(g, NULL), ECANCELED);
    cr_assert(heist_future_cancelled(g));
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(heist_await(fs[i], NULL), ECANCELED);
        cr_assert(heist_future_cancelled(fs[i]));
    }
    cr_assert(heist_future_cancelled(fs[3]), "plain child not cancelled");
    /* A child already done stays done. */
    void *v = NULL;
    cr_assert_eq(heist_future_result(done, &v), 0);
    cr_assert_eq(v, VAL(1));
    cr_assert(!heist_future_done(gate));
    cr_assert_eq(atomic_load(&gathered_rc_count), 3);
    for (int i = 0; i < 5; i++)
        heist_future_unref(fs[i]);
    heist_future_unref(g);
    heist_future_unref(gate);
    free_sched(s);
    expect_clean();
}

Test(future, cancel_any_leaves_children)
{
    heist_sched *s = new_sched(2);
    heist_future *gate = heist_future_new();
    heist_future *fs[2] = {heist_future_new(),
                           heist_spawn(s, await_gate_count_cancel, gate)};
    heist_future *y = heist_any(fs, 2);
    cr_assert_not_null(y);
    cr_assert_eq(heist_future_set_result(y, NULL), EPERM);
    cr_assert_eq(heist_future_set_error(y, EIO), EPERM);
    cr_assert(heist_future_cancel(y));
    cr_assert(heist_future_cancelled(y));
    cr_assert_eq(heist_await(y, NULL), ECANCELED);
    cr_assert(!heist_future_done(fs[0]));
    cr_assert(!heist_future_done(fs[1]));
    /* The children go on and complete normally; y stays cancelled. */
    cr_assert_eq(heist_future_set_result(fs[0], VAL(4)), 0);
    cr_assert_eq(heist_future_set_result(gate, NULL), 0);
    cr_assert_eq(heist_await(fs[1], NULL), 0);
    cr_assert(!heist_future_cancelled(fs[1]));
    cr_assert_eq(heist_future_result(y, NULL), ECANCELED);
    cr_assert_eq(atomic_load(&gathered_rc_count), 0);
    heist_future_unref(fs[0]);
    heist_future_unref(fs[1]);
    heist_future_unref(y);
    heist_future_unref(gate);
    free_sched(s);
    expect_clean();
}

/* ---- heist_run cancels what main left running --------------------------- */

struct leftovers {
    heist_future *never;
    heist_future *t_await, *t_sleep, *t_parent, *t_grand;
    atomic_int started;
    int rc_await, rc_sleep, rc_grand;
    bool cancelling_await;
};

static void *left_await(void *arg)
{
    struct leftovers *l = arg;
    atomic_fetch_add(&l->started, 1);
    l->rc_await = heist_await(l->never, NULL);
    l->cancelling_await = heist_cancelling();
    return NULL;
}

static void *left_sleep(void *arg)
{
    struct leftovers *l = arg;
    atomic_fetch_add(&l->started, 1);
    l->rc_sleep = heist_sleep(HOUR);
    return NULL;
}

static void *left_grand(void *arg)
{
    struct leftovers *l = arg;
    atomic_fetch_add(&l->started, 1);
    l->rc_grand = heist_await(l->never, NULL);
    return NULL;
}

/* Spawns a grandchild of main and returns: the grandchild is main's too. */
static void *left_parent(void *arg)
{
    struct leftovers *l = arg;
    l->t_grand = heist_spawn(NULL, left_grand, l);
    CHECK(l->t_grand != NULL);
    atomic_fetch_add(&l->started, 1);
    return NULL;
}

static void *leaving_main(void *arg)
{
    struct leftovers *l = arg;
    l->t_await = heist_spawn(NULL, left_await, l);
    l->t_sleep = heist_spawn(NULL, left_sleep, l);
    l->t_parent = heist_spawn(NULL, left_parent, l);
    /* Let them all start (on one worker they need this one to yield). */
    CHECK(sleep_until(&l->started, 4));
    return VAL(3);
}

Test(future, run_cancels_leftovers)
{
    const unsigned counts[] = {1, 4};
    for (int k = 0; k < 2; k++) {
        heist_sched *s = new_sched(counts[k]);
        struct leftovers l = {.never = heist_future_new()};
        uint64_t t0 = ht_now_ns();
        cr_assert_eq(run_main(s, leaving_main, &l), VAL(3));
        cr_assert_lt(ht_now_ns() - t0, 60ull * 1000000000u);
        /* heist_run waited for them: all ended, cancelled. */
        heist_future *ts[4] = {l.t_await, l.t_sleep, l.t_parent, l.t_grand};
        for (int i = 0; i < 3; i++)
            cr_assert(heist_future_cancelled(ts[i]) ||
                          (i == 2 && heist_future_done(ts[i])),
                      "leftover %d not cancelled", i);
        cr_assert(heist_future_cancelled(l.t_grand),
                  "a grandchild of main was not cancelled");
        cr_assert_eq(l.rc_await, ECANCELED);
        cr_assert(l.cancelling_await);
        cr_assert_eq(l.rc_sleep, ECANCELED);
        cr_assert_eq(l.rc_grand, ECANCELED);
        cr_assert(!heist_future_done(l.never));
        for (int i = 0; i < 4; i++)
            heist_future_unref(ts[i]);
        heist_future_unref(l.never);
        free_sched(s);
    }
    expect_clean();
}

/* A gather or any made on a plain thread of a future whose scheduler was
 * freed (futures outlive their scheduler): it names that scheduler
 * without reading it (ASan saw heist_gather read the freed scheduler's
 * id), completes as usual, and a then-callback on it says EPERM (its
 * scheduler is gone). */
static void *done_future_on_worker(void *arg)
{
    heist_future *f = heist_future_new();
    CHECK(f != NULL);
    CHECK_EQ(heist_future_set_result(f, arg), 0);
    return f;
}

static void never_called(heist_future *f, void *arg)
{
    (void)f;
    (void)arg;
    abort();
}

Test(future, combining_futures_of_a_freed_scheduler)
{
    for (int k = 0; k < 2; k++) {
        heist_sched *s = new_sched(1);
        heist_future *f = run_main(s, done_future_on_worker, VAL(5));
        cr_assert_not_null(f);
        free_sched(s);
        heist_future *g = k ? heist_any(&f, 1) : heist_gather(&f, 1);
        cr_assert_not_null(g);
        void *r = SENTINEL;
        cr_assert_eq(heist_await(g, &r), 0);
        cr_assert_eq(r, k ? VAL(0) : NULL);
        cr_assert_eq(heist_future_then(g, never_called, NULL), EPERM);
        heist_future_unref(g);
        heist_future_unref(f);
    }
    expect_clean();
}

/* A gather or an any of a pending future that nobody else holds: once
 * both are dropped, both are freed (each held the other: they leaked). A
 * then-callback registered on the combined future shows it: it is dropped
 * with it, never run, so heist_sched_free does not say EBUSY (before, the
 * gather lived on and its callback kept the scheduler busy for good). A
 * child that someone else holds (a running task) still completes the
 * dropped combined future, which then runs its callback. */
static atomic_int orphan_cb_runs;

static void orphan_cb(heist_future *f, void *arg)
{
    (void)f;
    (void)arg;
    atomic_fetch_add(&orphan_cb_runs, 1);
}

static void *await_gate_arg(void *arg)
{
    CHECK_EQ(heist_await(arg, NULL), 0);
    return VAL(4);
}

static void *drop_pending_combined(void *arg)
{
    (void)arg;
    for (int k = 0; k < 4; k++) {
        heist_future *z = heist_future_new();
        CHECK(z != NULL);
        heist_future *g = k % 2 ? heist_any(&z, 1) : heist_gather(&z, 1);
        CHECK(g != NULL);
        CHECK_EQ(heist_future_then(g, orphan_cb, NULL), 0);
        /* Both orders of the two drops. */
        heist_future_unref(k < 2 ? g : z);
        heist_future_unref(k < 2 ? z : g);
    }
    /* A held child: the dropped gather completes when it does. */
    heist_future *gate = heist_future_new();
    heist_future *t = heist_spawn(NULL, await_gate_arg, gate);
    CHECK(gate != NULL && t != NULL);
    heist_future *g = heist_gather(&t, 1);
    CHECK(g != NULL);
    CHECK_EQ(heist_future_then(g, orphan_cb, NULL), 0);
    heist_future_unref(g);
    CHECK_EQ(heist_future_set_result(gate, NULL), 0);
    void *r = NULL;
    CHECK_EQ(heist_await(t, &r), 0);
    CHECK_EQ(r, VAL(4));
    heist_future_unref(t);
    heist_future_unref(gate);
    return NULL;
}

Test(future, dropped_combined_future_of_a_dropped_pending_one_is_freed)
{
    heist_sched *s = new_sched(2);
    cr_assert_null(run_main(s, drop_pending_combined, NULL));
    cr_assert_eq(heist_sched_free(s), 0,
                 "a dropped gather's callback still waits: the gather and "
                 "its child were leaked");
    cr_assert_eq(atomic_load(&orphan_cb_runs), 1,
                 "callbacks run: %d (want only the held child's gather's)",
                 atomic_load(&orphan_cb_runs));
    expect_clean();
}

/* A leftover that had not started when its heist_run began cancelling is
 * completed as cancelled without running; a cancel after that is a cancel
 * of a complete future and returns false (future.h). On one worker, a
 * task that main spawned first holds the worker until the cancel began. */
static atomic_int unstarted_ran;

static void *unstarted_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&unstarted_ran, 1);
    return VAL(1);
}

/* Holds the only worker until heist_run cancels the leftovers. */
static void *hold_until_cancelling(void *arg)
{
    (void)arg;
    uint64_t deadline = ht_now_ns() + 60ull * 1000000000u;
    while (!heist_cancelling() && ht_now_ns() < deadline)
        sched_yield();
    return NULL;
}

static void *leave_unstarted_main(void *arg)
{
    heist_future **out = arg;
    heist_future *h = heist_spawn(NULL, hold_until_cancelling, NULL);
    CHECK(h != NULL);
    heist_future_unref(h);
    /* Queued behind the holder (a worker's queue is first in, first
     * out). */
    *out = heist_spawn(NULL, unstarted_task, NULL);
    CHECK(*out != NULL);
    return VAL(2);
}

Test(future, run_cancels_unstarted_leftover_which_stays_complete)
{
    heist_sched *s = new_sched(1);
    heist_future *t = NULL;
    cr_assert_eq(run_main(s, leave_unstarted_main, &t), VAL(2));
    cr_assert_not_null(t);
    cr_assert(heist_future_done(t));
    cr_assert(heist_future_cancelled(t));
    cr_assert_eq(atomic_load(&unstarted_ran), 0, "the leftover ran");
    cr_assert(!heist_future_cancel(t),
              "cancel of a complete (cancelled) leftover returned true");
    cr_assert(heist_future_cancelled(t));
    heist_future_unref(t);
    free_sched(s);
    expect_clean();
}

/* Many leftovers waiting on every worker: heist_run keeps its waiting
 * tasks in a list per worker (spawn.c), and its cancel must reach every
 * list. */
#define MANY_LEFT 2000
struct many_left {
    heist_future *never;
    atomic_int started, cancelled;
    heist_future *t[MANY_LEFT];
};

static void *many_left_task(void *arg)
{
    struct many_left *m = arg;
    atomic_fetch_add(&m->started, 1);
    if (heist_await(m->never, NULL) == ECANCELED)
        atomic_fetch_add(&m->cancelled, 1);
    return NULL;
}

static void *many_left_main(void *arg)
{
    struct many_left *m = arg;
    for (int i = 0; i < MANY_LEFT; i++)
        CHECK((m->t[i] = heist_spawn(NULL, many_left_task, m)) != NULL);
    CHECK(sleep_until(&m->started, MANY_LEFT));
    return VAL(5);
}

Test(future, run_cancels_leftovers_waiting_on_every_worker)
{
    const unsigned counts[] = {2, 8};
    for (int k = 0; k < 2; k++) {
        heist_sched *s = new_sched(counts[k]);
        struct many_left *m = calloc(1, sizeof(*m));
        cr_assert_not_null(m);
        m->never = heist_future_new();
        cr_assert_eq(run_main(s, many_left_main, m), VAL(5));
        cr_assert_eq(atomic_load(&m->started), MANY_LEFT);
        cr_assert_eq(atomic_load(&m->cancelled), MANY_LEFT);
        for (int i = 0; i < MANY_LEFT; i++) {
            cr_assert(heist_future_cancelled(m->t[i]));
            heist_future_unref(m->t[i]);
        }
        cr_assert(!heist_future_done(m->never));
        heist_future_unref(m->never);
        free(m);
        free_sched(s);
    }
    expect_clean();
}

/* Two threads run mains on one scheduler; one's leftovers are cancelled,
 * the other's running tasks are not touched. */
struct two_runs {
    heist_sched *s;
    heist_future *gate;
    atomic_int a_child_waiting;
    int a_child_rc;
    int a_run_rc;
    void *a_result;
};

static void *a_child(void *arg)
{
    struct two_runs *r = arg;
    atomic_store(&r->a_child_waiting, 1);
    r->a_child_rc = heist_await(r->gate, NULL);
    return VAL(21);
}

static void *a_main(void *arg)
{
    struct two_runs *r = arg;
    heist_future *c = heist_spawn(NULL, a_child, r);
    void *v = NULL;
    int rc = heist_await(c, &v);
    heist_future_unref(c);
    return rc == 0 ? v : NULL;
}

static void *a_thread(void *arg)
{
    struct two_runs *r = arg;
    r->a_result = SENTINEL;
    r->a_run_rc = heist_run(r->s, a_main, r, &r->a_result);
    return NULL;
}

Test(future, run_cancels_only_its_own_tasks)
{
    struct two_runs r = {.s = new_sched(2), .gate = heist_future_new()};
    pthread_t a = start_thread(a_thread, &r);
    cr_assert(ht_wait_at_least(&r.a_child_waiting, 1, 30));
    cr_assert(wait_suspends(r.s, 1));
    struct leftovers l = {.never = heist_future_new()};
    cr_assert_eq(run_main(r.s, leaving_main, &l), VAL(3));
    cr_assert(heist_future_cancelled(l.t_await));
    cr_assert_eq(heist_future_set_result(r.gate, NULL), 0);
    pthread_join(a, NULL);
    cr_assert_eq(r.a_run_rc, 0);
    cr_assert_eq(r.a_child_rc, 0, "another run's task was cancelled");
    cr_assert_eq(r.a_result, VAL(21));
    heist_future *ts[4] = {l.t_await, l.t_sleep, l.t_parent, l.t_grand};
    for (int i = 0; i < 4; i++)
        heist_future_unref(ts[i]);
    heist_future_unref(l.never);
    heist_future_unref(r.gate);
    free_sched(r.s);
    expect_clean();
}

/* ---- a run's end is seen while its worker runs other work ------------- */

/* A worker counts the ends of tasks later (lib/live.c, "Deferred ends"),
 * but never holds them back while it runs code of something else: run A's
 * tasks end on the only worker, whose next item (run B's main task, a
 * callback, or the resumption of run B's main task) spins until heist_run
 * A has returned. Had the worker kept A's ends, A would never return and
 * the blocker would give up. */
enum handover_kind { HO_TASK, HO_CALLBACK, HO_RESUME };
struct handover {
    heist_sched *s;
    enum handover_kind kind;  /* the blocker */
    heist_future *gate;       /* callback, resume: completed by the test */
    atomic_int b_waiting;     /* resume: B's main is about to await gate */
    atomic_int a_ending;      /* A's main is about to return */
    atomic_int b_queued;      /* the blocker was handed to the scheduler */
    atomic_int a_returned;    /* heist_run A returned */
    atomic_int blocker_saw;   /* 1: the blocker saw A return; 2: gave up */
    int a_rc, b_rc;
    void *b_result;
};

static void *trivial_child(void *arg)
{
    return arg;
}

static void *handover_a_main(void *arg)
{
    struct handover *h = arg;
    heist_future *c = heist_spawn(NULL, trivial_child, VAL(5));
    CHECK(c != NULL);
    void *v = NULL;
    CHECK_EQ(heist_await(c, &v), 0);
    CHECK(v == VAL(5));
    heist_future_unref(c);
    atomic_store(&h->a_ending, 1);
    /* Hold the worker until the blocker is queued behind us, so that it is
     * the next item this worker takes once we return. */
    CHECK(ht_wait_at_least(&h->b_queued, 1, 30));
    struct timespec nap = {0, 50 * 1000 * 1000};
    nanosleep(&nap, NULL);
    return VAL(7);
}

static void *handover_a_thread(void *arg)
{
    struct handover *h = arg;
    void *r = NULL;
    h->a_rc = heist_run(h->s, handover_a_main, h, &r);
    CHECK(r == VAL(7));
    atomic_store(&h->a_returned, 1);
    return NULL;
}

/* Spins until A returned: 1, or 2 after 20 s. */
static void handover_block(struct handover *h)
{
    atomic_store(&h->blocker_saw,
                 ht_wait_at_least(&h->a_returned, 1, 20) ? 1 : 2);
}

static void *handover_b_main(void *arg)
{
    struct handover *h = arg;
    if (h->kind == HO_RESUME) {
        atomic_store(&h->b_waiting, 1);
        CHECK_EQ(heist_await(h->gate, NULL), 0);
    }
    handover_block(h);
    return VAL(9);
}

static void *handover_b_thread(void *arg)
{
    struct handover *h = arg;
    h->b_rc = heist_run(h->s, handover_b_main, h, &h->b_result);
    return NULL;
}

static void handover_cb(heist_future *f, void *arg)
{
    (void)f;
    handover_block(arg);
}

static void handover_case(enum handover_kind kind)
{
    struct handover h = {.s = new_sched(1), .kind = kind};
    pthread_t b = 0;
    if (kind == HO_CALLBACK) {
        h.gate = run_main(h.s, make_future, NULL); /* belongs to s */
        cr_assert_not_null(h.gate);
        cr_assert_eq(heist_future_then(h.gate, handover_cb, &h), 0);
    } else if (kind == HO_RESUME) {
        /* B's main waits on the gate before A starts. */
        h.gate = heist_future_new();
        b = start_thread(handover_b_thread, &h);
        cr_assert(ht_wait_at_least(&h.b_waiting, 1, 30));
        cr_assert(wait_suspends(h.s, 1));
    }
    pthread_t a = start_thread(handover_a_thread, &h);
    cr_assert(ht_wait_at_least(&h.a_ending, 1, 30));
    if (kind != HO_TASK) {
        /* Completed here, on no worker: the callback, or B's main, is
         * queued. */
        cr_assert_eq(heist_future_set_result(h.gate, NULL), 0);
        atomic_store(&h.b_queued, 1);
    } else {
        /* heist_run queues B's main before it blocks: flag first, and A's
         * main naps long enough for the queueing to happen. */
        atomic_store(&h.b_queued, 1);
        handover_b_thread(&h);
    }
    if (kind == HO_RESUME)
        pthread_join(b, NULL);
    if (kind != HO_CALLBACK) {
        cr_assert_eq(h.b_rc, 0);
        cr_assert_eq(h.b_result, VAL(9));
    }
    pthread_join(a, NULL);
    cr_assert_eq(h.a_rc, 0);
    cr_assert(ht_wait_at_least(&h.blocker_saw, 1, 30));
    static const char *const what[] = {"run B's main task", "a callback",
                                       "run B's main task, resumed"};
    cr_assert_eq(atomic_load(&h.blocker_saw), 1,
                 "heist_run A did not return while its worker ran %s",
                 what[kind]);
    if (h.gate)
        heist_future_unref(h.gate);
    free_sched(h.s);
    expect_clean();
}

Test(future, run_returns_while_its_worker_runs_another_runs_task)
{
    handover_case(HO_TASK);
}

Test(future, run_returns_while_its_worker_runs_a_callback)
{
    handover_case(HO_CALLBACK);
}

Test(future, run_returns_while_its_worker_resumes_another_runs_task)
{
    handover_case(HO_RESUME);
}

/* The same for a fork a worker steals right after it ran the end of run
 * A's main: run B's main forks and joins leaves on one worker without
 * pause, while run A is made again and again on the others; a leaf that
 * starts between the end of A's main and the return of heist_run A spins
 * until that return. A thief that still owed A's end while it ran such a
 * leaf would keep heist_run A from returning: the leaf gives up after
 * 10 s and says so. Whether a thief steals in that window is up to the
 * scheduler, so the case runs many times. */
struct steal_handover {
    heist_sched *s;
    atomic_int stop;          /* B's main: stop forking */
    atomic_int a_ended;       /* A's mains that reached their end */
    atomic_int a_returned;    /* heist_run A calls that returned */
    atomic_int stuck;         /* leaves that gave up */
    atomic_int a_runs;        /* run A's done (the watchdog's progress) */
};

static void *sh_leaf(void *arg)
{
    struct steal_handover *h = arg;
    int ended = atomic_load(&h->a_ended);
    if (ended != atomic_load(&h->a_returned) &&
        !ht_wait_at_least(&h->a_returned, ended, 10))
        atomic_fetch_add(&h->stuck, 1);
    return NULL;
}

static void *sh_b_main(void *arg)
{
    struct steal_handover *h = arg;
    while (!atomic_load(&h->stop)) {
        heist_task t[8];
        for (int j = 0; j < 8; j++)
            heist_fork(&t[j], sh_leaf, h);
        for (int j = 7; j >= 0; j--)
            CHECK_EQ(heist_join(&t[j], NULL), 0);
    }
    return NULL;
}

static void *sh_b_thread(void *arg)
{
    struct steal_handover *h = arg;
    void *r = SENTINEL;
    CHECK_EQ(heist_run(h->s, sh_b_main, h, &r), 0);
    CHECK(r == NULL);
    return NULL;
}

static void *sh_a_main(void *arg)
{
    struct steal_handover *h = arg;
    atomic_fetch_add(&h->a_ended, 1);
    return VAL(3);
}

Test(future, run_returns_while_a_thief_runs_another_runs_fork)
{
    struct steal_handover h = {.s = new_sched(3)};
    pthread_t b = start_thread(sh_b_thread, &h);
    int runs = HT_SCALE(3000, 300);
    for (int i = 0; i < runs && !atomic_load(&h.stuck); i++) {
        cr_assert_eq(run_main(h.s, sh_a_main, &h), VAL(3));
        atomic_fetch_add(&h.a_returned, 1);
        ht_watchdog_tick(&suite_wd);
    }
    atomic_store(&h.stop, 1);
    pthread_join(b, NULL);
    cr_assert_eq(atomic_load(&h.stuck), 0,
                 "heist_run A did not return while a thief ran run B's "
                 "fork (%d leaves gave up)", atomic_load(&h.stuck));
    free_sched(h.s);
    expect_clean();
}

/* ---- heist_cancelling --------------------------------------------------- */

static void *report_cancelling(void *arg)
{
    (void)arg;
    return VAL(heist_cancelling() ? 1 : 2);
}

Test(future, cancelling_false_unless_cancelled)
{
    cr_assert(!heist_cancelling());
    heist_sched *s = new_sched(2);
    cr_assert_eq(run_main(s, report_cancelling, NULL), VAL(2));
    heist_future *t = heist_spawn(s, report_cancelling, NULL);
    void *v = NULL;
    cr_assert_eq(heist_await(t, &v), 0);
    cr_assert_eq(v, VAL(2));
    heist_future_unref(t);
    free_sched(s);
    cr_assert(!heist_cancelling());
    expect_clean();
}

/* ---- then-callbacks ----------------------------------------------------- */

struct cb_rec {
    atomic_int runs;
    heist_future *want_f;
    heist_sched *want_sched; /* NULL: any */
    int want_rc;
    void *want_val;
};

static void cb_record(heist_future *f, void *arg)
{
    struct cb_rec *c = arg;
    CHECK(f == c->want_f);
    void *v = SENTINEL;
    int rc = heist_future_result(f, &v);
    CHECK_EQ(rc, c->want_rc);
    if (rc == 0)
        CHECK(v == c->want_val);
    /* As a task on a worker: never inline in a plain thread. */
    CHECK(heist_worker_index() >= 0);
    if (c->want_sched)
        CHECK(heist_current() == c->want_sched);
    atomic_fetch_add(&c->runs, 1);
}

Test(future, then_runs_once_on_a_worker)
{
    heist_sched *s = new_sched(2);
    heist_future *f = run_main(s, make_future, NULL); /* belongs to s */
    cr_assert_not_null(f);
    struct cb_rec c = {.want_f = f, .want_sched = s, .want_val = VAL(9)};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(heist_future_then(f, cb_record, &c), 0);
    struct timespec nap = {0, 5 * 1000 * 1000};
    nanosleep(&nap, NULL);
    cr_assert_eq(atomic_load(&c.runs), 0, "a callback ran before completion");
    cr_assert_eq(heist_future_set_result(f, VAL(9)), 0);
    cr_assert(ht_wait_at_least(&c.runs, 3, 30));
    /* Registered after completion: scheduled at once. */
    cr_assert_eq(heist_future_then(f, cb_record, &c), 0);
    cr_assert(ht_wait_at_least(&c.runs, 4, 30));
    heist_future_unref(f);
    free_sched(s);
    cr_assert_eq(atomic_load(&c.runs), 4);

    /* A task's future belongs to the scheduler it was spawned to. */
    s = new_sched(2);
    heist_future *gate = heist_future_new();
    heist_future *t = heist_spawn(s, slow_then_count, gate);
    struct cb_rec d = {.want_f = t, .want_sched = s, .want_val = NULL};
    cr_assert_eq(heist_future_then(t, cb_record, &d), 0);
    cr_assert_eq(heist_future_set_result(gate, NULL), 0);
    cr_assert(ht_wait_at_least(&d.runs, 1, 30));
    heist_future_unref(t);
    heist_future_unref(gate);
    free_sched(s);
    cr_assert_eq(atomic_load(&d.runs), 1);
    expect_clean();
}

/* Failed and cancelled futures run their callbacks too. */
Test(future, then_on_failed_and_cancelled)
{
    heist_sched *s = new_sched(2);
    heist_future *f = run_main(s, make_future, NULL);
    heist_future *g = run_main(s, make_future, NULL);
    struct cb_rec cf = {.want_f = f, .want_sched = s, .want_rc = ENOSPC};
    struct cb_rec cg = {.want_f = g, .want_sched = s, .want_rc = ECANCELED};
    cr_assert_eq(heist_future_then(f, cb_record, &cf), 0);
    cr_assert_eq(heist_future_then(g, cb_record, &cg), 0);
    cr_assert_eq(heist_future_set_error(f, ENOSPC), 0);
    cr_assert(heist_future_cancel(g));
    cr_assert(ht_wait_at_least(&cf.runs, 1, 30));
    cr_assert(ht_wait_at_least(&cg.runs, 1, 30));
    heist_future_unref(f);
    heist_future_unref(g);
    free_sched(s);
    cr_assert_eq(atomic_load(&cf.runs), 1);
    cr_assert_eq(atomic_load(&cg.runs), 1);
    expect_clean();
}

/* On one worker, completion and registration from the running task cannot
 * run the callback inline: it runs only once the task lets the worker go.
 * The task also drops its last reference before the callback runs; cb's f
 * must still be valid (the asan build checks). */
static void *then_not_inline(void *arg)
{
    struct cb_rec *c = arg;
    heist_future *f = heist_future_new();
    c->want_f = f;
    CHECK_EQ(heist_future_then(f, cb_record, c), 0);
    CHECK_EQ(heist_future_set_result(f, VAL(12)), 0);
    CHECK_EQ(atomic_load(&c->runs), 0);
    CHECK_EQ(heist_future_then(f, cb_record, c), 0); /* already done */
    CHECK_EQ(atomic_load(&c->runs), 0);
    heist_future_unref(f);
    CHECK_EQ(atomic_load(&c->runs), 0);
    CHECK(sleep_until(&c->runs, 2));
    return NULL;
}

Test(future, then_never_inline)
{
    heist_sched *s = new_sched(1);
    struct cb_rec c = {.want_sched = s, .want_val = VAL(12)};
    run_main(s, then_not_inline, &c);
    free_sched(s);
    cr_assert_eq(atomic_load(&c.runs), 2);
    expect_clean();
}

static atomic_int dropped_runs;

static void cb_count(heist_future *f, void *arg)
{
    (void)f;
    (void)arg;
    atomic_fetch_add(&dropped_runs, 1);
}

static void *then_on_dropped(void *arg)
{
    (void)arg;
    heist_future *f = heist_future_new();
    CHECK_EQ(heist_future_then(f, cb_count, NULL), 0);
    heist_future_unref(f); /* pending: the callback goes with it */
    return NULL;
}

Test(future, then_dropped_with_pending_future)
{
    heist_sched *s = new_sched(2);
    for (int i = 0; i < 10; i++)
        run_main(s, then_on_dropped, NULL);
    free_sched(s);
    cr_assert_eq(atomic_load(&dropped_runs), 0);
    expect_clean();
}

/* A future created outside any scheduler: a plain thread has nowhere to
 * run its callback (EPERM); a worker's registration runs on its own
 * scheduler. */
static void *register_on_worker(void *arg)
{
    struct cb_rec *c = arg;
    CHECK_EQ(heist_future_then(c->want_f, cb_record, c), 0);
    return NULL;
}

Test(future, then_scheduler_choice)
{
    heist_future *lone = heist_future_new();
    cr_assert_eq(heist_future_then(lone, never_cb, NULL), EPERM);

    heist_sched *s1 = new_sched(1), *s2 = new_sched(2);
    struct cb_rec on_s2 = {
        .want_f = lone, .want_sched = s2, .want_val = VAL(1)};
    run_main(s2, register_on_worker, &on_s2);

    /* f belongs to s1: a plain thread's registration runs there, a worker
     * of s2's runs on s2. */
    heist_future *f = run_main(s1, make_future, NULL);
    struct cb_rec a = {.want_f = f, .want_sched = s1, .want_val = VAL(2)};
    struct cb_rec b = {.want_f = f, .want_sched = s2, .want_val = VAL(2)};
    cr_assert_eq(heist_future_then(f, cb_record, &a), 0);
    run_main(s2, register_on_worker, &b);

    cr_assert_eq(heist_future_set_result(lone, VAL(1)), 0);
    cr_assert_eq(heist_future_set_result(f, VAL(2)), 0);
    cr_assert(ht_wait_at_least(&on_s2.runs, 1, 30));
    cr_assert(ht_wait_at_least(&a.runs, 1, 30));
    cr_assert(ht_wait_at_least(&b.runs, 1, 30));
    heist_future_unref(lone);
    heist_future_unref(f);
    free_sched(s1);
    free_sched(s2);
    cr_assert_eq(atomic_load(&on_s2.runs), 1);
    cr_assert_eq(atomic_load(&a.runs), 1);
    cr_assert_eq(atomic_load(&b.runs), 1);
    expect_clean();
}

/* heist_sched_free waits for a callback whose future completed. */
static atomic_int slow_cb_done;

static void slow_cb(heist_future *f, void *arg)
{
    (void)f;
    (void)arg;
    struct timespec nap = {0, 50 * 1000 * 1000};
    nanosleep(&nap, NULL);
    atomic_store(&slow_cb_done, 1);
}

Test(future, sched_free_waits_for_callbacks)
{
    heist_sched *s = new_sched(2);
    heist_future *f = run_main(s, make_future, NULL);
    cr_assert_eq(heist_future_then(f, slow_cb, NULL), 0);
    cr_assert_eq(heist_future_set_result(f, NULL), 0);
    heist_future_unref(f);
    free_sched(s);
    cr_assert_eq(atomic_load(&slow_cb_done), 1,
                 "heist_sched_free returned before the callback ended");
    expect_clean();
}

/* ---- gather ------------------------------------------------------------- */

static void *sleep_then_return(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    CHECK_EQ(heist_sleep(MS(i % 5)), 0);
    return VAL(i * 10);
}

static void *gather_tasks(void *arg)
{
    (void)arg;
    heist_future *t[8];
    for (int i = 0; i < 8; i++)
        t[i] = heist_spawn(NULL, sleep_then_return, VAL(i));
    heist_future *g = heist_gather(t, 8);
    CHECK(g != NULL);
    /* Only the gather's references keep them now... */
    heist_future *keep = heist_future_ref(t[3]);
    for (int i = 0; i < 8; i++)
        heist_future_unref(t[i]);
    void *v = SENTINEL;
    CHECK_EQ(heist_await(g, &v), 0);
    CHECK(v == NULL);
    CHECK(!heist_future_cancelled(g));
    /* ...and the one kept answers. */
    CHECK_EQ(heist_future_result(keep, &v), 0);
    CHECK(v == VAL(30));
    heist_future_unref(keep);
    heist_future_unref(g);
    return VAL(1);
}

Test(future, gather_all_done)
{
    const unsigned counts[] = {1, 2, 8};
    for (int k = 0; k < 3; k++) {
        heist_sched *s = new_sched(counts[k]);
        for (int rep = 0; rep < 10; rep++)
            cr_assert_eq(run_main(s, gather_tasks, NULL), VAL(1));
        free_sched(s);
    }
    expect_clean();
}

/* Children done before the gather count at once, with no node and no
 * reference each (lib/combine.c): many of them, mixed with children a
 * thread completes after the gather was made; the done ones may be freed
 * right after (the gather holds none of them); a gather of done children
 * only is done at once; one failed before the gather fails it with its
 * error. */
enum { DONE_KIDS = 20000 };

static void *complete_odd(void *arg)
{
    heist_future **f = arg;
    for (size_t i = 1; i < DONE_KIDS; i += 2)
        if (heist_future_set_result(f[i], VAL(i)) != 0)
            return VAL(1);
    return NULL;
}

Test(future, gather_of_done_children)
{
    heist_future **f = malloc(DONE_KIDS * sizeof *f);
    cr_assert_not_null(f);
    for (size_t i = 0; i < DONE_KIDS; i++) {
        f[i] = heist_future_new();
        cr_assert_not_null(f[i]);
        if (i % 2 == 0)
            cr_assert_eq(heist_future_set_result(f[i], VAL(i)), 0);
    }
    heist_future *g = heist_gather(f, DONE_KIDS);
    cr_assert_not_null(g);
    cr_assert(!heist_future_done(g), "done with half its children pending");
    for (size_t i = 0; i < DONE_KIDS; i += 2) {
        heist_future_unref(f[i]);
        f[i] = NULL;
    }
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, complete_odd, f), 0);
    void *v = SENTINEL;
    cr_assert_eq(heist_await_timeout(g, 30ull * 1000000000u, &v), 0);
    cr_assert_null(v);
    void *tr = VAL(1);
    pthread_join(th, &tr);
    cr_assert_null(tr);
    for (size_t i = 1; i < DONE_KIDS; i += 2) {
        cr_assert_eq(heist_future_result(f[i], &v), 0);
        cr_assert_eq(v, VAL(i));
        heist_future_unref(f[i]);
    }
    heist_future_unref(g);

    /* Every child done: the gather is done as it is made. */
    for (size_t i = 0; i < DONE_KIDS; i++) {
        f[i] = heist_future_new();
        cr_assert_eq(heist_future_set_result(f[i], VAL(i)), 0);
    }
    g = heist_gather(f, DONE_KIDS);
    cr_assert_not_null(g);
    cr_assert(heist_future_done(g));
    cr_assert_eq(heist_future_result(g, NULL), 0);
    /* Cancelling a done gather changes nothing (and touches no child). */
    cr_assert(!heist_future_cancel(g));
    for (size_t i = 0; i < DONE_KIDS; i++)
        heist_future_unref(f[i]);
    heist_future_unref(g);

    /* Done children and one that failed before the gather: it fails. */
    for (size_t i = 0; i < 64; i++) {
        f[i] = heist_future_new();
        if (i == 40)
            cr_assert_eq(heist_future_set_error(f[i], EIO), 0);
        else if (i % 4 != 3)
            cr_assert_eq(heist_future_set_result(f[i], VAL(i)), 0);
    }
    g = heist_gather(f, 64);
    cr_assert_not_null(g);
    cr_assert_eq(heist_await_timeout(g, 30ull * 1000000000u, NULL), EIO);
    for (size_t i = 3; i < 64; i += 4)
        cr_assert(!heist_future_done(f[i]), "a pending child completed");
    for (size_t i = 0; i < 64; i++)
        heist_future_unref(f[i]);
    heist_future_unref(g);
    free(f);
    expect_clean();
}

Test(future, gather_empty_is_done)
{
    heist_future *fs[1] = {NULL};
    heist_future *g = heist_gather(NULL, 0);
    cr_assert_not_null(g);
    cr_assert(heist_future_done(g));
    void *v = SENTINEL;
    cr_assert_eq(heist_future_result(g, &v), 0);
    cr_assert_null(v);
    heist_future_unref(g);
    g = heist_gather(fs, 0);
    cr_assert_not_null(g);
    cr_assert_eq(heist_await(g, NULL), 0);
    heist_future_unref(g);
}

/* The gather fails with the first failure while the others are pending. */
static void gather_fails_fast_body(void)
{
    heist_future *f[3] = {heist_future_new(), heist_future_new(),
                          heist_future_new()};
    heist_future *g = heist_gather(f, 3);
    CHECK(g != NULL);
    CHECK_EQ(heist_future_set_result(g, NULL), EPERM);
    CHECK(!heist_future_done(g));
    CHECK_EQ(heist_future_set_error(f[1], EIO), 0);
    void *v = SENTINEL;
    CHECK_EQ(heist_await_timeout(g, 30ull * 1000000000u, &v), EIO);
    CHECK(v == SENTINEL);
    CHECK(!heist_future_cancelled(g));
    CHECK(!heist_future_done(f[0]));
    CHECK(!heist_future_done(f[2]));
    /* Later outcomes change nothing. */
    CHECK_EQ(heist_future_set_error(f[2], ENOSPC), 0);
    CHECK_EQ(heist_future_set_result(f[0], VAL(1)), 0);
    CHECK_EQ(heist_future_result(g, NULL), EIO);
    for (int i = 0; i < 3; i++)
        heist_future_unref(f[i]);
    heist_future_unref(g);

    /* A cancelled child counts as failed with ECANCELED. */
    heist_future *h[2] = {heist_future_new(), heist_future_new()};
    g = heist_gather(h, 2);
    CHECK(heist_future_cancel(h[0]));
    CHECK_EQ(heist_await_timeout(g, 30ull * 1000000000u, NULL), ECANCELED);
    CHECK(!heist_future_done(h[1]));
    heist_future_unref(h[0]);
    heist_future_unref(h[1]);
    heist_future_unref(g);

    /* Children done before the gather; the same child twice. */
    heist_future *d = heist_future_new();
    CHECK_EQ(heist_future_set_result(d, VAL(1)), 0);
    heist_future *p = heist_future_new();
    heist_future *mix[4] = {d, p, d, p};
    g = heist_gather(mix, 4);
    CHECK(!heist_future_done(g));
    CHECK_EQ(heist_future_set_result(p, VAL(2)), 0);
    CHECK_EQ(heist_await_timeout(g, 30ull * 1000000000u, NULL), 0);
    heist_future_unref(g);
    heist_future *dd[2] = {d, d};
    g = heist_gather(dd, 2);
    CHECK_EQ(heist_await_timeout(g, 30ull * 1000000000u, NULL), 0);
    heist_future_unref(g);
    heist_future_unref(d);
    heist_future_unref(p);
}

static void *gather_fails_fast_task(void *arg)
{
    (void)arg;
    gather_fails_fast_body();
    return NULL;
}

Test(future, gather_in_task)
{
    heist_sched *s = new_sched(2);
    run_main(s, gather_fails_fast_task, NULL);
    free_sched(s);
    expect_clean();
}

/* Futures of no scheduler, gathered and awaited by a plain thread. */
Test(future, gather_on_plain_thread)
{
    gather_fails_fast_body();
    expect_clean();
}

/* ---- any ---------------------------------------------------------------- */

static void any_body(void)
{
    heist_future *f[3] = {heist_future_new(), heist_future_new(),
                          heist_future_new()};
    heist_future *y = heist_any(f, 3);
    CHECK(y != NULL);
    CHECK_EQ(heist_future_set_result(y, NULL), EPERM);
    CHECK_EQ(heist_future_set_error(y, EIO), EPERM);
    CHECK(!heist_future_done(y));
    CHECK_EQ(heist_future_set_result(f[1], VAL(7)), 0);
    void *v = SENTINEL;
    CHECK_EQ(heist_await_timeout(y, 30ull * 1000000000u, &v), 0);
    CHECK(v == VAL(1));
    CHECK(!heist_future_done(f[0]));
    CHECK(!heist_future_done(f[2]));
    CHECK_EQ(heist_future_set_result(f[0], VAL(8)), 0);
    v = SENTINEL;
    CHECK_EQ(heist_future_result(y, &v), 0);
    CHECK(v == VAL(1));
    heist_future_unref(y);

    /* Whatever the outcome: a failure, a cancel. */
    y = heist_any(f, 3); /* f[0] and f[1] are done now */
    v = SENTINEL;
    CHECK_EQ(heist_await_timeout(y, 30ull * 1000000000u, &v), 0);
    CHECK(v == VAL(0) || v == VAL(1));
    heist_future_unref(y);
    heist_future *g[2] = {f[2], heist_future_new()};
    y = heist_any(g, 2);
    CHECK_EQ(heist_future_set_error(g[1], ENOSPC), 0);
    v = SENTINEL;
    CHECK_EQ(heist_await_timeout(y, 30ull * 1000000000u, &v), 0);
    CHECK(v == VAL(1));
    heist_future_unref(y);
    y = heist_any(g, 1);
    CHECK(heist_future_cancel(g[0]));
    v = SENTINEL;
    CHECK_EQ(heist_await_timeout(y, 30ull * 1000000000u, &v), 0);
    CHECK(v == VAL(0));
    heist_future_unref(y);
    heist_future_unref(g[1]);
    for (int i = 0; i < 3; i++)
        heist_future_unref(f[i]);
}

static void *any_task(void *arg)
{
    (void)arg;
    any_body();
    /* A fast task beats one that waits forever, which keeps running. */
    heist_future *never = heist_future_new();
    heist_future *t[2] = {heist_spawn(NULL, await_gate_count_cancel, never),
                          heist_spawn(NULL, sleep_then_return, VAL(2))};
    heist_future *y = heist_any(t, 2);
    heist_future_unref(t[1]);
    void *v = SENTINEL;
    CHECK_EQ(heist_await(y, &v), 0);
    CHECK(v == VAL(1));
    CHECK(!heist_future_done(t[0]));
    CHECK(heist_future_cancel(t[0]));
    CHECK_EQ(heist_await(t[0], NULL), ECANCELED);
    heist_future_unref(t[0]);
    heist_future_unref(y);
    heist_future_unref(never);
    return NULL;
}

Test(future, any_in_task)
{
    heist_sched *s = new_sched(2);
    run_main(s, any_task, NULL);
    free_sched(s);
    cr_assert_eq(atomic_load(&gathered_rc_count), 1);
    expect_clean();
}

/* A combined future that nobody holds any more but its children's nodes,
 * completed by one child, while another child is held only by it: the
 * completion's release of the children frees that child pending, whose
 * node then drops the last reference to the combined future, in the
 * middle of the release (it went on reading the freed future: ASan saw a
 * use after free). */
static void release_frees_its_own_future(bool any)
{
    heist_future *fs[3] = {heist_future_new(), heist_future_new(),
                           heist_future_new()};
    cr_assert(fs[0] && fs[1] && fs[2]);
    heist_future *y = any ? heist_any(fs, 3) : heist_gather(fs, 3);
    cr_assert(y != NULL);
    heist_future_unref(y);
    heist_future_unref(fs[1]);
    heist_future_unref(fs[2]);
    if (any)
        cr_assert_eq(heist_future_set_result(fs[0], VAL(1)), 0);
    else
        cr_assert_eq(heist_future_set_error(fs[0], ENOSPC), 0);
    heist_future_unref(fs[0]);
}

static void *release_frees_in_task(void *arg)
{
    (void)arg;
    release_frees_its_own_future(true);
    release_frees_its_own_future(false);
    return NULL;
}

Test(future, release_of_children_frees_the_combined_future)
{
    release_frees_its_own_future(true);
    release_frees_its_own_future(false);
    heist_sched *s = new_sched(1);
    run_main(s, release_frees_in_task, NULL);
    free_sched(s);
    expect_clean();
}

Test(future, any_on_plain_thread)
{
    any_body();
    expect_clean();
}

/* ---- await_timeout ------------------------------------------------------ */

/* Runs on a worker (arg: the scheduler) or on a plain thread (NULL). */
static void *timeouts(void *arg)
{
    heist_sched *s = arg;
    heist_future *f = heist_future_new();
    void *v = SENTINEL;
    uint64_t t0 = ht_now_ns();
    CHECK_EQ(heist_await_timeout(f, MS(20), &v), ETIMEDOUT);
    uint64_t dt = ht_now_ns() - t0;
    CHECK(dt >= MS(20));
    CHECK(v == SENTINEL);
    CHECK(!heist_future_done(f)); /* left pending */
    CHECK_EQ(heist_await_timeout(f, 0, &v), ETIMEDOUT);
    CHECK_EQ(heist_await_timeout(f, 1, &v), ETIMEDOUT);
    /* The timed-out waits left nothing behind: completing f now wakes
     * nobody twice, and f works as before. */
    CHECK_EQ(heist_future_set_result(f, VAL(4)), 0);
    CHECK_EQ(heist_await_timeout(f, 0, &v), 0);
    CHECK(v == VAL(4));
    heist_future_unref(f);

    /* Completed while waiting, with a long and an endless limit (a deadline
     * computed as now + ns must not wrap around). */
    const uint64_t limits[] = {60ull * 1000000000u, UINT64_MAX};
    for (int i = 0; i < 2; i++) {
        struct delayed_set d = {heist_future_new(), MS(10), VAL(5 + i)};
        heist_future *t = heist_spawn(s, set_after, &d);
        CHECK(t != NULL);
        v = SENTINEL;
        t0 = ht_now_ns();
        CHECK_EQ(heist_await_timeout(d.f, limits[i], &v), 0);
        CHECK(v == VAL(5 + i));
        CHECK(ht_now_ns() - t0 < 60ull * 1000000000u);
        CHECK_EQ(heist_await(t, NULL), 0);
        heist_future_unref(t);
        heist_future_unref(d.f);
    }

    /* Failed and cancelled futures: their outcome, not ETIMEDOUT. */
    f = heist_future_new();
    CHECK_EQ(heist_future_set_error(f, EXDEV), 0);
    CHECK_EQ(heist_await_timeout(f, MS(1), &v), EXDEV);
    heist_future_unref(f);
    f = heist_future_new();
    CHECK(heist_future_cancel(f));
    CHECK_EQ(heist_await_timeout(f, MS(1), &v), ECANCELED);
    heist_future_unref(f);
    return NULL;
}

Test(future, await_timeout_in_task)
{
    const unsigned counts[] = {1, 2};
    for (int k = 0; k < 2; k++) {
        heist_sched *s = new_sched(counts[k]);
        run_main(s, timeouts, NULL);
        free_sched(s);
    }
    expect_clean();
}

Test(future, await_timeout_on_plain_thread)
{
    heist_sched *s = new_sched(2);
    timeouts(s);
    free_sched(s);
    expect_clean();
}

/* A task that timed out goes on to await something else: the first
 * future's later completion must not resume it a second time. */
struct stale {
    heist_future *first, *second;
    atomic_int stage;
    int rc1, rc2;
    void *got2;
};

static void *timeout_then_await(void *arg)
{
    struct stale *st = arg;
    st->rc1 = heist_await_timeout(st->first, MS(5), NULL);
    atomic_store(&st->stage, 1);
    st->got2 = SENTINEL;
    st->rc2 = heist_await(st->second, &st->got2);
    atomic_store(&st->stage, 2);
    return NULL;
}

Test(future, timed_out_waiter_is_removed)
{
    heist_sched *s = new_sched(2);
    for (int rep = 0; rep < 20; rep++) {
        struct stale st = {.first = heist_future_new(),
                           .second = heist_future_new()};
        heist_future *t = heist_spawn(s, timeout_then_await, &st);
        cr_assert(ht_wait_at_least(&st.stage, 1, 30));
        cr_assert_eq(st.rc1, ETIMEDOUT);
        cr_assert_eq(heist_future_set_result(st.first, VAL(1)), 0);
        struct timespec nap = {0, 1000 * 1000};
        nanosleep(&nap, NULL);
        cr_assert_eq(atomic_load(&st.stage), 1,
                     "completing a timed-out future resumed its old waiter");
        cr_assert_eq(heist_future_set_result(st.second, VAL(2)), 0);
        cr_assert_eq(heist_await(t, NULL), 0);
        cr_assert_eq(st.rc2, 0);
        cr_assert_eq(st.got2, VAL(2));
        heist_future_unref(t);
        heist_future_unref(st.first);
        heist_future_unref(st.second);
    }
    free_sched(s);
    expect_clean();
}

/* ---- sleep -------------------------------------------------------------- */

static void *sleeps(void *arg)
{
    (void)arg;
    CHECK_EQ(heist_sleep(0), 0);
    for (int i = 0; i < 5; i++) {
        uint64_t ns = MS(1 + i * 5);
        uint64_t t0 = ht_now_ns();
        CHECK_EQ(heist_sleep(ns), 0);
        uint64_t dt = ht_now_ns() - t0;
        if (dt < ns)
            note_fail(__LINE__, "heist_sleep(%llu) returned after %llu ns",
                      (unsigned long long)ns, (unsigned long long)dt);
    }
    return VAL(1);
}

Test(future, sleep_lasts_at_least_ns)
{
    sleeps(NULL); /* plain thread */
    heist_sched *s = new_sched(2);
    cr_assert_eq(run_main(s, sleeps, NULL), VAL(1));
    free_sched(s);
    expect_clean();
}

/* On one worker, a sleeping task leaves the worker to the others. */
static void *sleep_does_not_block_worker(void *arg)
{
    (void)arg;
    struct sleep_probe p = {.ns = HOUR};
    heist_future *sl = heist_spawn(NULL, sleeper, &p);
    CHECK(sleep_until(&p.stage, 1));
    heist_future *t = heist_spawn(NULL, add_one, VAL(1));
    void *v = NULL;
    CHECK_EQ(heist_await(t, &v), 0);
    CHECK(v == VAL(2));
    CHECK(!heist_future_done(sl));
    CHECK(heist_future_cancel(sl));
    CHECK_EQ(heist_await(sl, NULL), ECANCELED);
    CHECK_EQ(p.rc, ECANCELED);
    heist_future_unref(t);
    heist_future_unref(sl);
    return NULL;
}

Test(future, sleep_suspends_only_the_task)
{
    heist_sched *s = new_sched(1);
    run_main(s, sleep_does_not_block_worker, NULL);
    free_sched(s);
    expect_clean();
}

/* What the tasks of one round of short_sleeps_wake_the_timer saw. */
struct sleep_round {
    int rc[HT_ROUND_MAX];
    uint64_t elapsed[HT_ROUND_MAX];
};

/* Each round task, once one runs on every worker: a 1 ms sleep. */
static void round_sleep(unsigned i, void *arg)
{
    struct sleep_round *r = arg;
    uint64_t t0 = ht_now_ns();
    r->rc[i] = heist_sleep(MS(1));
    r->elapsed[i] = ht_now_ns() - t0;
}

/* Each worker arms its sleeps in a heap of its own (lib/timer.c, "Shards");
 * the timer thread sleeps until the earliest deadline of them all. While it
 * sleeps until a task's one-hour deadline, 1 ms sleeps armed on every
 * worker (one task per worker, held there by ht_round_every_worker) must
 * wake it: a lost wake-up would leave them asleep for the hour, and the
 * suite's watchdog would fail the test. */
static void short_sleeps_wake_the_timer(unsigned workers)
{
    heist_sched *s = new_sched(workers);
    struct sleep_probe lp = {.ns = HOUR};
    heist_future *l = heist_spawn(s, sleeper, &lp);
    cr_assert(l != NULL);
    cr_assert(wait_suspends(s, 1), "the long sleep never suspended");
    for (int round = 0; round < 20; round++) {
        /* Let the timer thread settle into its sleep until the hour. */
        nanosleep(&(struct timespec){0, 2 * 1000 * 1000}, NULL);
        struct sleep_round r = {0};
        int e = ht_round_every_worker(s, workers, round_sleep, &r);
        cr_assert_eq(e, 0, "round %d: %d", round, e);
        for (unsigned i = 0; i < workers; i++) {
            cr_assert_eq(r.rc[i], 0);
            cr_assert(r.elapsed[i] >= MS(1) &&
                          r.elapsed[i] < 30ull * 1000000000u,
                      "round %d: a 1 ms sleep took %llu ns", round,
                      (unsigned long long)r.elapsed[i]);
        }
    }
    cr_assert(!heist_future_done(l));
    cr_assert(heist_future_cancel(l));
    cr_assert_eq(heist_await(l, NULL), ECANCELED);
    cr_assert_eq(lp.rc, ECANCELED);
    heist_future_unref(l);
    free_sched(s);
    expect_clean();
}

Test(future, short_sleeps_wake_the_timer_2_workers)
{
    short_sleeps_wake_the_timer(2);
}

Test(future, short_sleeps_wake_the_timer_8_workers)
{
    short_sleeps_wake_the_timer(8);
}

/* ---- the seed's example ------------------------------------------------- */

static void *bar(void *arg)
{
    CHECK_EQ(heist_sleep(MS(30)), 0);
    CHECK_EQ(heist_future_set_result(arg, "resolved"), 0);
    return NULL;
}

static void *foo(void *arg)
{
    void *v = NULL;
    CHECK_EQ(heist_await(arg, &v), 0);
    return v;
}

static void *seed_main(void *arg)
{
    (void)arg;
    heist_future *fut = heist_future_new();
    heist_future *t[2] = {heist_spawn(NULL, foo, fut),
                          heist_spawn(NULL, bar, fut)};
    heist_future *all = heist_gather(t, 2);
    CHECK_EQ(heist_await(all, NULL), 0);
    void *v = NULL;
    CHECK_EQ(heist_future_result(t[0], &v), 0);
    heist_future_unref(all);
    heist_future_unref(t[0]);
    heist_future_unref(t[1]);
    heist_future_unref(fut);
    return v;
}

Test(future, seed_example)
{
    const unsigned counts[] = {1, 2, 8};
    for (int k = 0; k < 3; k++) {
        heist_sched *s = new_sched(counts[k]);
        void *r = run_main(s, seed_main, NULL);
        cr_assert_not_null(r);
        cr_assert_str_eq((const char *)r, "resolved");
        free_sched(s);
    }
    expect_clean();
}

/* ---- heist_sched_free with callbacks still registered ----------------- */

static void *make_future_on_worker(void *arg)
{
    (void)arg;
    return heist_future_new(); /* belongs to this worker's scheduler */
}

static void count_callback(heist_future *f, void *arg)
{
    (void)f;
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* A callback registered on a pending future keeps its scheduler busy:
 * heist_sched_free says EBUSY and leaves it running, until the future
 * completes (then the callback runs and the free succeeds). */
Test(future, sched_free_busy_while_callback_waits)
{
    heist_sched *s = new_sched(2);
    void *r = NULL;
    cr_assert_eq(heist_run(s, make_future_on_worker, NULL, &r), 0);
    heist_future *f = r;
    cr_assert_not_null(f);
    atomic_int ran = 0;
    cr_assert_eq(heist_future_then(f, count_callback, &ran), 0);
    cr_assert_eq(heist_sched_free(s), EBUSY);
    cr_assert_eq(atomic_load(&ran), 0);
    /* Still running: it takes work. */
    cr_assert_eq(heist_run(s, make_future_on_worker, NULL, &r), 0);
    heist_future_unref(r);
    cr_assert_eq(heist_future_set_result(f, NULL), 0);
    cr_assert_eq(heist_sched_free(s), 0);
    cr_assert_eq(atomic_load(&ran), 1);
    heist_future_unref(f);
    expect_clean();
}

/* Dropping the future drops its callback: the free then succeeds and the
 * callback never runs. */
Test(future, sched_free_after_pending_future_dropped)
{
    heist_sched *s = new_sched(1);
    void *r = NULL;
    cr_assert_eq(heist_run(s, make_future_on_worker, NULL, &r), 0);
    atomic_int ran = 0;
    cr_assert_eq(heist_future_then(r, count_callback, &ran), 0);
    cr_assert_eq(heist_sched_free(s), EBUSY);
    heist_future_unref(r);
    cr_assert_eq(heist_sched_free(s), 0);
    cr_assert_eq(atomic_load(&ran), 0);
    expect_clean();
}

/* A plain thread completes the future that heist_run's main awaits; the
 * caller frees the scheduler as soon as heist_run returns, while the
 * completer may still be in the wake-up that follows its injection of
 * main's fiber. heist_sched_free must wait for it: under ThreadSanitizer
 * its reads of the scheduler then come before the free (before, TSan saw
 * them race with the free whenever they came first, and under ASan the
 * later ones would read freed memory). And a then-callback that the same
 * thread fires: once it ran, the free must not say EBUSY (it did, in 3
 * runs of 3, while the firing thread ended the callback's wait only after
 * queueing it). */
struct foreign_done {
    heist_sched *s;
    heist_future *f;
    heist_future *cbf; /* or NULL: completed first, fires a callback */
};

static void *await_foreign(void *arg)
{
    void *r = NULL;
    if (heist_await(arg, &r) != 0)
        return NULL;
    return r;
}

static void *complete_when_awaited(void *arg)
{
    struct foreign_done *d = arg;
    if (!wait_suspends(d->s, 1))
        return VAL(1);
    if (heist_future_set_result(d->f, VAL(7)) != 0)
        return VAL(2);
    /* After main's: the caller, back from heist_run, waits for the
     * callback to run and frees the scheduler at once. */
    if (d->cbf && heist_future_set_result(d->cbf, NULL) != 0)
        return VAL(4);
    return NULL;
}

Test(future, free_right_after_a_plain_thread_woke_main)
{
    int reps = HT_SCALE(300, 60);
    for (int i = 0; i < reps; i++) {
        heist_sched *s = new_sched(i % 2 ? 2 : 8);
        struct foreign_done d = {.s = s, .f = heist_future_new()};
        cr_assert_not_null(d.f);
        atomic_int called = 0;
        if (i % 3 == 0) {
            /* A callback on a future of s, registered here and fired by
             * the completer (no worker either): it runs on s. */
            d.cbf = run_main(s, make_future_on_worker, NULL);
            cr_assert_not_null(d.cbf);
            cr_assert_eq(heist_future_then(d.cbf, count_callback, &called),
                         0);
        }
        pthread_t th = start_thread(complete_when_awaited, &d);
        cr_assert_eq(run_main(s, await_foreign, d.f), VAL(7));
        if (d.cbf) {
            /* Ran: no longer waiting, whatever the completer does now. */
            while (atomic_load(&called) == 0)
                sched_yield();
        }
        cr_assert_eq(heist_sched_free(s), 0, "rep %d", i);
        void *tr = VAL(3);
        pthread_join(th, &tr);
        cr_assert_null(tr, "rep %d: the completer failed", i);
        if (d.cbf)
            heist_future_unref(d.cbf);
        heist_future_unref(d.f);
    }
    expect_clean();
}
