/*
 * test_future_stress.c - futures under load: racing completers (exactly one
 * wins, every waiter and callback runs exactly once), await against
 * completion, timeout and cancellation races on 1, 2 and 8 workers,
 * gathers and anys set up while their children complete, 100,000
 * tasks suspended at once, 10,000 concurrent sleeps, a fiber that migrates
 * between workers with its stack intact, and heist_join suspending on a
 * stolen child that is still running.
 *
 * Hangs are caught by watchdogs (test_util.h) that abort with a message
 * after 60 s without progress; nothing here depends on how fast it runs.
 */
#include <criterion/criterion.h>

#include <heist/heist.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "test_check.h"
#include "test_util.h"

/* A hang aborts with a message (test_util.h). */
HT_WATCHDOG_SUITE(future_stress, 600);

#define VAL(x)   ((void *)(uintptr_t)(x))
#define SENTINEL ((void *)(uintptr_t)0x5e5e5e5eu)
#define US(x)    ((uint64_t)(x)*1000u)
#define MS(x)    ((uint64_t)(x)*1000000u)
#define HOUR     (3600u * 1000000000ull)

static heist_sched *new_sched(unsigned workers, size_t stack_size)
{
    heist_config cfg = {.workers = workers, .stack_size = stack_size};
    heist_sched *s = NULL;
    int err = heist_sched_new(&cfg, &s);
    cr_assert_eq(err, 0, "heist_sched_new(workers=%u): error %d", workers, err);
    return s;
}

static heist_stats stats_of(heist_sched *s)
{
    heist_stats st;
    if (heist_sched_stats(s, &st) != 0)
        note_fail(__LINE__, "heist_sched_stats failed");
    return st;
}

/* Busy-waits about n iterations: shifts one side of a race by a little. */
static void spin(uint64_t n)
{
    for (volatile uint64_t i = 0; i < n; i++)
        ;
}

/* Waits, with the watchdog, until *v >= target; each change is progress. */
static void wait_count(struct ht_watchdog *wd, atomic_int *v, int target)
{
    int last = -1;
    while (atomic_load(v) < target) {
        int now = atomic_load(v);
        if (now != last) {
            last = now;
            ht_watchdog_tick(wd);
        }
        struct timespec nap = {0, 200 * 1000};
        nanosleep(&nap, NULL);
    }
}

/* ---- racing completers ------------------------------------------------- */

/*
 * Each round, one future and, racing to complete it: NTHREADS plain threads
 * and one task, each doing set_result, set_error or cancel (chosen at
 * random). NWAITERS tasks await it and register a callback; every completer
 * and the test's thread await it too. Exactly one completion may win, and
 * everybody must see the winner's outcome, exactly once.
 */
#define NTHREADS 3
#define NWAITERS 4
#define NOBS     (NWAITERS + NTHREADS + 1)

static const int race_errs[NTHREADS + 1] = {EIO, ENOSPC, EPIPE, EXDEV};

struct obs {
    struct round *r;
    int rc;
    void *v;
};

struct round {
    heist_future *f;
    atomic_int wins;
    atomic_int winner; /* kind * 100 + id */
    atomic_int cb_runs;
    atomic_int waiter_runs;
    struct obs obs[NOBS]; /* waiters, then threads, then the task */
};

static struct round *rounds;
static atomic_int cur_round = -1;
static atomic_int threads_done;
static int nrounds;

static void attempt(struct round *r, int kind, int id)
{
    bool won = false;
    int rc;
    switch (kind) {
    case 0:
        rc = heist_future_set_result(r->f, VAL(1000 + id));
        won = rc == 0;
        if (!won)
            CHECK_EQ(rc, EBUSY);
        break;
    case 1:
        rc = heist_future_set_error(r->f, race_errs[id]);
        won = rc == 0;
        if (!won)
            CHECK_EQ(rc, EBUSY);
        break;
    default:
        won = heist_future_cancel(r->f);
        break;
    }
    if (won) {
        atomic_fetch_add(&r->wins, 1);
        atomic_store(&r->winner, kind * 100 + id);
    }
}

static void race_cb(heist_future *f, void *arg)
{
    struct round *r = arg;
    CHECK(f == r->f);
    CHECK(heist_future_done(f));
    atomic_fetch_add(&r->cb_runs, 1);
}

static void *race_waiter(void *arg)
{
    struct obs *o = arg;
    CHECK_EQ(heist_future_then(o->r->f, race_cb, o->r), 0);
    o->v = SENTINEL;
    o->rc = heist_await(o->r->f, &o->v);
    atomic_fetch_add(&o->r->waiter_runs, 1);
    return NULL;
}

static void *race_task(void *arg)
{
    struct round *r = arg;
    uint64_t rng = (uint64_t)(uintptr_t)r;
    attempt(r, (int)(ht_rand(&rng) % 3), NTHREADS);
    struct obs *o = &r->obs[NWAITERS + NTHREADS];
    o->v = SENTINEL;
    o->rc = heist_await(r->f, &o->v);
    return NULL;
}

static void *race_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t rng = 0x1234u + (uint64_t)id;
    for (int i = 0; i < nrounds; i++) {
        while (atomic_load(&cur_round) < i)
            sched_yield();
        struct round *r = &rounds[i];
        uint64_t x = ht_rand(&rng);
        spin(x >> 60); /* 0-15 iterations: shuffle the order a little */
        attempt(r, (int)(x % 3), id);
        struct obs *o = &r->obs[NWAITERS + id];
        o->v = SENTINEL;
        o->rc = heist_await(r->f, &o->v);
        atomic_fetch_add(&threads_done, 1);
    }
    return NULL;
}

static void racing_completers(unsigned workers, int n)
{
    struct ht_watchdog wd;
    ht_watchdog_start(&wd, "racing completers", 60);
    heist_sched *s = new_sched(workers, 0);
    nrounds = n;
    rounds = calloc((size_t)n, sizeof(*rounds));
    cr_assert_not_null(rounds);
    atomic_store(&cur_round, -1);
    atomic_store(&threads_done, 0);
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++)
        cr_assert_eq(
            pthread_create(&th[i], NULL, race_thread, (void *)(intptr_t)i), 0);

    int by_kind[3] = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        struct round *r = &rounds[i];
        r->f = heist_future_new();
        for (int k = 0; k < NOBS; k++)
            r->obs[k] = (struct obs){.r = r, .rc = -1, .v = SENTINEL};
        heist_future *w[NWAITERS];
        for (int k = 0; k < NWAITERS; k++)
            cr_assert_not_null(w[k] = heist_spawn(s, race_waiter, &r->obs[k]));
        atomic_store(&cur_round, i); /* the threads go */
        heist_future *t = heist_spawn(s, race_task, r);
        cr_assert_not_null(t);
        void *mv = SENTINEL;
        int mrc = heist_await(r->f, &mv);
        for (int k = 0; k < NWAITERS; k++) {
            cr_assert_eq(heist_await(w[k], NULL), 0);
            heist_future_unref(w[k]);
        }
        cr_assert_eq(heist_await(t, NULL), 0);
        heist_future_unref(t);
        cr_assert(ht_wait_at_least(&threads_done, NTHREADS * (i + 1), 60));
        cr_assert(ht_wait_at_least(&r->cb_runs, NWAITERS, 60),
                  "round %d: %d of %d callbacks ran", i,
                  atomic_load(&r->cb_runs), NWAITERS);

        cr_assert_eq(atomic_load(&r->wins), 1, "round %d: %d completions won",
                     i, atomic_load(&r->wins));
        int kind = atomic_load(&r->winner) / 100;
        int id = atomic_load(&r->winner) % 100;
        by_kind[kind]++;
        int want_rc = kind == 0 ? 0 : kind == 1 ? race_errs[id] : ECANCELED;
        void *want_v = kind == 0 ? VAL(1000 + id) : SENTINEL;
        void *v = SENTINEL;
        cr_assert_eq(heist_future_result(r->f, &v), want_rc);
        cr_assert_eq(v, want_v);
        cr_assert_eq(heist_future_cancelled(r->f), kind == 2);
        cr_assert_eq(mrc, want_rc, "round %d: plain await saw %d, want %d", i,
                     mrc, want_rc);
        cr_assert_eq(mv, want_v);
        for (int k = 0; k < NOBS; k++) {
            cr_assert_eq(r->obs[k].rc, want_rc,
                         "round %d: observer %d saw %d, want %d", i, k,
                         r->obs[k].rc, want_rc);
            cr_assert_eq(r->obs[k].v, want_v, "round %d: observer %d", i, k);
        }
        cr_assert_eq(atomic_load(&r->waiter_runs), NWAITERS);
        heist_future_unref(r->f);
        ht_watchdog_tick(&wd);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(heist_sched_free(s), 0);
    ht_watchdog_stop(&wd);
    /* Nothing ran twice, late. */
    for (int i = 0; i < n; i++)
        cr_assert_eq(atomic_load(&rounds[i].cb_runs), NWAITERS,
                     "round %d: callbacks ran %d times", i,
                     atomic_load(&rounds[i].cb_runs));
    cr_log_info("%u workers, %d rounds: %d results, %d errors, %d cancels won",
                workers, n, by_kind[0], by_kind[1], by_kind[2]);
    /* Every kind won sometimes: the race was a race. */
    for (int k = 0; k < 3; k++)
        cr_assert_gt(by_kind[k], 0, "kind %d never won in %d rounds", k, n);
    free(rounds);
    expect_clean();
}

Test(future_stress, race_completers_1_worker)
{
    racing_completers(1, HT_SCALE(2000, 200));
}

Test(future_stress, race_completers_4_workers)
{
    racing_completers(4, HT_SCALE(2000, 200));
}

/* ---- await against completion ------------------------------------------ */

/*
 * Pairs of an awaiter and a completer on one future, started in a random
 * order, the completer delayed by a random few iterations: the completion
 * lands before the awaiter suspends, while it switches away, or after it is
 * parked. Some awaiters use a short timeout and, on ETIMEDOUT, await again
 * without one: the timer firing against the completion. A lost wake-up is
 * a hang (the watchdog); a wrong wake-up is a wrong value.
 */
#define BATCH 64

struct pair {
    heist_future *f;
    uintptr_t val;
    uint64_t spin;
    uint64_t timeout_ns; /* 0: plain await */
    atomic_int *timeouts;
    struct ht_watchdog *wd;
};

static void *pair_awaiter(void *arg)
{
    struct pair *p = arg;
    void *v = SENTINEL;
    int rc;
    if (p->timeout_ns) {
        rc = heist_await_timeout(p->f, p->timeout_ns, &v);
        if (rc == ETIMEDOUT) {
            atomic_fetch_add(p->timeouts, 1);
            CHECK(v == SENTINEL);
            rc = heist_await(p->f, &v);
        }
    } else {
        rc = heist_await(p->f, &v);
    }
    CHECK_EQ(rc, 0);
    CHECK_EQ((uintptr_t)v, p->val);
    return v;
}

static void *pair_completer(void *arg)
{
    struct pair *p = arg;
    spin(p->spin);
    CHECK_EQ(heist_future_set_result(p->f, VAL(p->val)), 0);
    ht_watchdog_tick(p->wd);
    return NULL;
}

static void make_pairs(struct pair *ps, uint64_t *rng, uintptr_t base,
                       atomic_int *timeouts, struct ht_watchdog *wd)
{
    for (int i = 0; i < BATCH; i++) {
        uint64_t x = ht_rand(rng);
        ps[i] = (struct pair){
            .f = heist_future_new(),
            .val = base + (uintptr_t)i + 1,
            .spin = (x >> 8) % 2000,
            .timeout_ns = (x & 3) == 0 ? US((x >> 20) % 50) + 1 : 0,
            .timeouts = timeouts,
            .wd = wd,
        };
        CHECK(ps[i].f != NULL);
    }
}

struct pairs_job {
    int batches;
    uint64_t seed;
    atomic_int timeouts;
    struct ht_watchdog *wd;
};

/* Both sides are tasks. */
static void *pairs_in_tasks(void *arg)
{
    struct pairs_job *j = arg;
    uint64_t rng = j->seed;
    struct pair ps[BATCH];
    heist_future *t[2 * BATCH];
    for (int b = 0; b < j->batches; b++) {
        make_pairs(ps, &rng, (uintptr_t)b * BATCH, &j->timeouts, j->wd);
        for (int i = 0; i < BATCH; i++) {
            bool awaiter_first = ht_rand(&rng) & 1;
            t[2 * i] = heist_spawn(
                NULL, awaiter_first ? pair_awaiter : pair_completer, &ps[i]);
            t[2 * i + 1] = heist_spawn(
                NULL, awaiter_first ? pair_completer : pair_awaiter, &ps[i]);
        }
        heist_future *g = heist_gather(t, 2 * BATCH);
        CHECK_EQ(heist_await(g, NULL), 0);
        heist_future_unref(g);
        for (int i = 0; i < 2 * BATCH; i++)
            heist_future_unref(t[i]);
        for (int i = 0; i < BATCH; i++)
            heist_future_unref(ps[i].f);
    }
    return NULL;
}

static void await_vs_completion(unsigned workers, int pairs)
{
    struct ht_watchdog wd;
    ht_watchdog_start(&wd, "await against completion (lost wake-up?)", 60);
    heist_sched *s = new_sched(workers, 0);
    int batches = pairs / BATCH;

    /* Tasks on both sides. */
    struct pairs_job j = {.batches = batches, .seed = workers, .wd = &wd};
    cr_assert_eq(heist_run(s, pairs_in_tasks, &j, NULL), 0);

    /* A plain thread completes what tasks await, then awaits what tasks
     * complete. */
    uint64_t rng = 77 + workers;
    struct pair ps[BATCH];
    heist_future *t[BATCH];
    for (int b = 0; b < batches; b++) {
        bool thread_completes = b & 1;
        make_pairs(ps, &rng, (uintptr_t)b * BATCH, &j.timeouts, &wd);
        for (int i = 0; i < BATCH; i++) {
            t[i] = heist_spawn(
                s, thread_completes ? pair_awaiter : pair_completer, &ps[i]);
            cr_assert_not_null(t[i]);
        }
        for (int i = 0; i < BATCH; i++) {
            if (thread_completes)
                pair_completer(&ps[i]);
            else
                pair_awaiter(&ps[i]); /* blocks the thread */
        }
        for (int i = 0; i < BATCH; i++) {
            cr_assert_eq(heist_await(t[i], NULL), 0);
            heist_future_unref(t[i]);
            heist_future_unref(ps[i].f);
        }
        ht_watchdog_tick(&wd);
    }
    cr_assert_eq(heist_sched_free(s), 0);
    ht_watchdog_stop(&wd);
    cr_log_info("%u workers, %d pairs twice: %d awaits timed out first",
                workers, batches * BATCH, atomic_load(&j.timeouts));
    expect_clean();
}

Test(future_stress, race_await_vs_completion_1_worker)
{
    await_vs_completion(1, HT_SCALE(20000, 2000));
}

Test(future_stress, race_await_vs_completion_2_workers)
{
    await_vs_completion(2, HT_SCALE(20000, 2000));
}

Test(future_stress, race_await_vs_completion_8_workers)
{
    await_vs_completion(8, HT_SCALE(20000, 2000));
}

/* ---- cancel against completion ----------------------------------------- */

/*
 * A task awaits a future; at about the same time the test's thread cancels
 * the task and a plain thread completes the future. Whatever the order,
 * the outcome must be one of the consistent ones:
 *  - cancel returned false: the task had finished; it is done with the
 *    value it awaited;
 *  - cancel returned true: the task ends cancelled; if it ran, its await
 *    gave the value or ECANCELED (then heist_cancelling() was true).
 */
struct cancel_race {
    heist_future *f;
    heist_future *task;
    atomic_int go;
    int rc;
    void *v;
    bool ran, cancelling;
};

static void *cr_awaiter(void *arg)
{
    struct cancel_race *c = arg;
    c->ran = true;
    c->v = SENTINEL;
    c->rc = heist_await(c->f, &c->v);
    c->cancelling = c->rc == ECANCELED ? heist_cancelling() : true;
    return c->rc == 0 ? c->v : NULL;
}

static void *cr_completer(void *arg)
{
    struct cancel_race *c = arg;
    while (!atomic_load(&c->go))
        ;
    CHECK_EQ(heist_future_set_result(c->f, VAL(5)), 0);
    return NULL;
}

static void cancel_vs_completion(unsigned workers, int n)
{
    struct ht_watchdog wd;
    ht_watchdog_start(&wd, "cancel against completion", 60);
    heist_sched *s = new_sched(workers, 0);
    uint64_t rng = 99 + workers;
    int outcomes[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; i++) {
        struct cancel_race c = {.f = heist_future_new()};
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, cr_completer, &c), 0);
        c.task = heist_spawn(s, cr_awaiter, &c);
        uint64_t x = ht_rand(&rng);
        spin(x % 20000);
        atomic_store(&c.go, 1);
        spin((x >> 20) % 2000);
        bool cancelled = heist_future_cancel(c.task);
        pthread_join(th, NULL);
        void *v = SENTINEL;
        int rc = heist_await(c.task, &v);
        if (!cancelled) {
            cr_assert_eq(rc, 0, "rep %d: cancel failed, task ended %d", i, rc);
            cr_assert_eq(v, VAL(5));
            cr_assert(c.ran);
            cr_assert_eq(c.rc, 0);
            outcomes[0]++;
        } else {
            cr_assert_eq(rc, ECANCELED,
                         "rep %d: cancel succeeded, task ended %d", i, rc);
            cr_assert(heist_future_cancelled(c.task));
            if (!c.ran) {
                outcomes[1]++;
            } else if (c.rc == 0) {
                cr_assert_eq(c.v, VAL(5));
                outcomes[2]++;
            } else {
                cr_assert_eq(c.rc, ECANCELED);
                cr_assert(c.cancelling);
                outcomes[3]++;
            }
        }
        cr_assert_eq(heist_future_result(c.f, &v), 0);
        cr_assert_eq(v, VAL(5));
        heist_future_unref(c.task);
        heist_future_unref(c.f);
        ht_watchdog_tick(&wd);
    }
    cr_assert_eq(heist_sched_free(s), 0);
    ht_watchdog_stop(&wd);
    cr_log_info("%u workers: finished %d, never ran %d, cancelled after the "
                "value %d, cancelled in await %d",
                workers, outcomes[0], outcomes[1], outcomes[2], outcomes[3]);
    expect_clean();
}

Test(future_stress, race_cancel_vs_completion)
{
    cancel_vs_completion(1, HT_SCALE(3000, 300));
    cancel_vs_completion(2, HT_SCALE(3000, 300));
    cancel_vs_completion(4, HT_SCALE(3000, 300));
}

/* ---- cancel at the suspension -------------------------------------------- */

/*
 * A task awaits a future that never completes; the test's thread cancels
 * it a moment after the task said it is about to await. Some cancels land
 * before the await (ECANCELED at once), some after the wait is listed, and
 * some in between: after the await checked for a cancel, before the wait
 * was published from the fiber switched to (wait.c, publish_steps: the
 * wait is then never listed and its node drops every reference it was made
 * with). Every await must end ECANCELED; a node whose references are
 * miscounted on that path is never freed, which the asan preset's leak
 * check reports (its slab stays).
 */
struct cancel_susp {
    heist_future *f;
    atomic_int armed;
    int rc;
};

static void *cs_awaiter(void *arg)
{
    struct cancel_susp *c = arg;
    atomic_store(&c->armed, 1);
    void *v = SENTINEL;
    c->rc = heist_await(c->f, &v);
    return NULL;
}

static void cancel_at_suspension(unsigned workers, int n)
{
    struct ht_watchdog wd;
    ht_watchdog_start(&wd, "cancel at the suspension", 60);
    heist_sched *s = new_sched(workers, 0);
    uint64_t rng = 7 + workers;
    for (int i = 0; i < n; i++) {
        struct cancel_susp c = {.f = heist_future_new(), .rc = -1};
        cr_assert_not_null(c.f);
        heist_future *task = heist_spawn(s, cs_awaiter, &c);
        cr_assert_not_null(task);
        while (!atomic_load(&c.armed))
            ;
        spin(ht_rand(&rng) % 400);
        cr_assert(heist_future_cancel(task), "rep %d: cancel of a running "
                  "task said false", i);
        void *v = SENTINEL;
        cr_assert_eq(heist_await(task, &v), ECANCELED, "rep %d", i);
        cr_assert_eq(c.rc, ECANCELED, "rep %d: the await ended %d", i, c.rc);
        cr_assert_not(heist_future_done(c.f));
        heist_future_unref(task);
        heist_future_unref(c.f);
        ht_watchdog_tick(&wd);
    }
    cr_assert_eq(heist_sched_free(s), 0);
    ht_watchdog_stop(&wd);
    expect_clean();
}

Test(future_stress, race_cancel_at_suspension)
{
    cancel_at_suspension(2, HT_SCALE(20000, 2000));
    cancel_at_suspension(4, HT_SCALE(5000, 500));
}

/* ---- a timed await, its task's cancel and the completion, all at once ---- */

/*
 * A task awaits a future with a time limit of 1-50 us; a thread completes
 * the future and the test's thread cancels the task, each after a random
 * delay. A fiber wait can then be ended by any of the three holders of its
 * node (the future's list, the timer, the cancel), in any order, each
 * racing the others' claim: its references (wait.c, fiber_wait_refs: the
 * waiter, the list, the timer, the task) must add up on every path. A
 * miscount is a double free (asan, tsan) or a node never freed (the asan
 * preset's leak check: its slab stays); a lost claim is a hang (the
 * watchdog). Every outcome must be one the API allows:
 *  - the cancel said false: the task ended before it, its await gave the
 *    value or ETIMEDOUT;
 *  - the cancel said true: the task ends cancelled; its await gave the
 *    value or ETIMEDOUT (both before the cancel landed) or ECANCELED
 *    (then heist_cancelling() was true).
 */
struct timed_race {
    heist_future *f;
    uint64_t timeout_ns;
    uint64_t complete_spin;
    atomic_int armed, go;
    int rc;
    void *v;
    bool cancelling;
};

static void *tr_awaiter(void *arg)
{
    struct timed_race *c = arg;
    atomic_store(&c->armed, 1);
    c->v = SENTINEL;
    c->rc = heist_await_timeout(c->f, c->timeout_ns, &c->v);
    c->cancelling = c->rc == ECANCELED ? heist_cancelling() : true;
    return NULL;
}

static void *tr_completer(void *arg)
{
    struct timed_race *c = arg;
    /* Yielding: three threads wait on two cores here. */
    while (!atomic_load(&c->go))
        sched_yield();
    spin(c->complete_spin);
    CHECK_EQ(heist_future_set_result(c->f, VAL(9)), 0);
    return NULL;
}

static void timeout_cancel_completion(unsigned workers, int n)
{
    struct ht_watchdog wd;
    ht_watchdog_start(&wd, "timed await, cancel and completion", 60);
    heist_sched *s = new_sched(workers, 0);
    uint64_t rng = 31 + workers;
    /* value, timed out, cancelled in the await; each with and without a
     * successful cancel */
    int outcomes[2][3] = {{0, 0, 0}, {0, 0, 0}};
    for (int i = 0; i < n; i++) {
        uint64_t x = ht_rand(&rng);
        struct timed_race c = {.f = heist_future_new(),
                               .timeout_ns = US(1 + x % 50),
                               .complete_spin = (x >> 8) % 20000,
                               .rc = -1};
        cr_assert_not_null(c.f);
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, tr_completer, &c), 0);
        heist_future *task = heist_spawn(s, tr_awaiter, &c);
        cr_assert_not_null(task);
        while (!atomic_load(&c.armed))
            sched_yield();
        atomic_store(&c.go, 1);
        spin((x >> 24) % 40000);
        bool cancelled = heist_future_cancel(task);
        pthread_join(th, NULL);
        void *v = SENTINEL;
        int rc = heist_await(task, &v);
        int kind;
        if (c.rc == 0) {
            cr_assert_eq(c.v, VAL(9), "rep %d: the await gave %p", i, c.v);
            kind = 0;
        } else if (c.rc == ETIMEDOUT) {
            cr_assert_eq(c.v, SENTINEL, "rep %d: a timed-out await wrote "
                         "its value", i);
            kind = 1;
        } else {
            cr_assert_eq(c.rc, ECANCELED, "rep %d: the await ended %d", i,
                         c.rc);
            cr_assert(cancelled, "rep %d: ECANCELED with no cancel", i);
            cr_assert(c.cancelling, "rep %d: heist_cancelling() false "
                      "after ECANCELED", i);
            kind = 2;
        }
        if (cancelled) {
            cr_assert_eq(rc, ECANCELED, "rep %d: cancel said true, the task "
                         "ended %d", i, rc);
            cr_assert(heist_future_cancelled(task));
        } else {
            cr_assert_eq(rc, 0, "rep %d: cancel said false, the task ended "
                         "%d", i, rc);
        }
        outcomes[cancelled][kind]++;
        cr_assert_eq(heist_future_result(c.f, &v), 0);
        cr_assert_eq(v, VAL(9));
        heist_future_unref(task);
        heist_future_unref(c.f);
        ht_watchdog_tick(&wd);
    }
    cr_assert_eq(heist_sched_free(s), 0);
    ht_watchdog_stop(&wd);
    cr_log_info("%u workers: not cancelled: value %d, timed out %d; "
                "cancelled: value %d, timed out %d, in the await %d",
                workers, outcomes[0][0], outcomes[0][1], outcomes[1][0],
                outcomes[1][1], outcomes[1][2]);
    expect_clean();
}

Test(future_stress, race_timeout_cancel_completion)
{
    timeout_cancel_completion(1, HT_SCALE(3000, 1000));
    timeout_cancel_completion(2, HT_SCALE(3000, 1000));
    timeout_cancel_completion(8, HT_SCALE(2000, 600));
}

/* ---- gather and any against their children's completions --------------- */

/*
 * A gather or an any is made of GK plain futures while two threads
 * complete them, so set-up races the completions: a child completes
 * before its node is pushed, or after, and a failure can complete the
 * gather while set-up still pushes its nodes (it then drops the
 * children's references, which set-up took first). On some rounds a
 * third thread cancels the gather meanwhile. Some children are never
 * completed: the combined future must still complete and let go of
 * them, and they are freed pending when the test drops its own
 * references. The outcome is checked against what
 * the threads did; a child reference miscounted on any of these paths is
 * a use after free or a leak, which the asan preset reports.
 *
 * Round kinds: 0 gather, every child gets a result (done); 1 gather, one
 * child fails with EIO, a quarter never complete (failed EIO, the pending
 * ones left alone); 2 gather cancelled by the third thread while a quarter
 * (one at least) never complete (cancelled, and the gather's cancel
 * cancels those); 3 any,
 * a quarter never complete (done with the index of a completed child).
 */
#define GK 48
enum { G_NEVER, G_RESULT, G_ERROR };

struct gather_race {
    heist_future *kids[GK];
    int plan[GK];
    int kind;
    _Atomic(heist_future *) g; /* published for the cancelling thread */
    atomic_bool cancel_won;
};

static struct gather_race *grounds;
static atomic_int gcur = -1;
static atomic_int gdone;
static int gnrounds;

static void *gather_completer(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t rng = 0x9e37u + (uint64_t)id;
    for (int i = 0; i < gnrounds; i++) {
        while (atomic_load(&gcur) < i)
            sched_yield();
        struct gather_race *r = &grounds[i];
        spin(ht_rand(&rng) >> 56); /* 0-255 iterations */
        /* Thread 0 completes the even children upward, thread 1 the odd
         * ones downward: they cross set-up's walk at different points. */
        for (int k = 0; k < GK / 2; k++) {
            int j = id == 0 ? 2 * k : GK - 1 - 2 * k;
            if (r->plan[j] == G_RESULT) {
                /* The gather's cancel may be cancelling it (the test's
                 * thread checks, once the round is over, that it was). */
                int rc = heist_future_set_result(r->kids[j], VAL(j));
                if (rc != 0 && !(r->kind == 2 && rc == EBUSY))
                    note_fail(__LINE__, "round %d kind %d child %d: rc %d", i,
                              r->kind, j, rc);
            } else if (r->plan[j] == G_ERROR)
                CHECK_EQ(heist_future_set_error(r->kids[j], EIO), 0);
            if ((ht_rand(&rng) & 7) == 0)
                spin(ht_rand(&rng) >> 58);
        }
        atomic_fetch_add(&gdone, 1);
    }
    return NULL;
}

static void *gather_canceller(void *arg)
{
    (void)arg;
    uint64_t rng = 0x51edu;
    for (int i = 0; i < gnrounds; i++) {
        while (atomic_load(&gcur) < i)
            sched_yield();
        struct gather_race *r = &grounds[i];
        if (r->kind == 2) {
            heist_future *g;
            while (!(g = atomic_load(&r->g)))
                sched_yield();
            spin(ht_rand(&rng) >> 56);
            atomic_store(&r->cancel_won, heist_future_cancel(g));
        }
        atomic_fetch_add(&gdone, 1);
    }
    return NULL;
}

static void gather_vs_completion(int n)
{
    struct ht_watchdog wd;
    ht_watchdog_start(&wd, "gather against completions", 60);
    gnrounds = n;
    grounds = calloc((size_t)n, sizeof(*grounds));
    cr_assert_not_null(grounds);
    atomic_store(&gcur, -1);
    atomic_store(&gdone, 0);
    pthread_t th[3];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, gather_completer,
                                    (void *)(intptr_t)i), 0);
    cr_assert_eq(pthread_create(&th[2], NULL, gather_canceller, NULL), 0);
    uint64_t rng = 0x77u;
    for (int i = 0; i < n; i++) {
        struct gather_race *r = &grounds[i];
        r->kind = i % 4;
        for (int k = 0; k < GK; k++) {
            cr_assert_not_null(r->kids[k] = heist_future_new());
            r->plan[k] = r->kind == 0 || ht_rand(&rng) % 4 ? G_RESULT
                                                           : G_NEVER;
        }
        if (r->kind == 1)
            r->plan[ht_rand(&rng) % GK] = G_ERROR;
        if (r->kind == 2)
            r->plan[ht_rand(&rng) % GK] = G_NEVER; /* the cancel must win */
        if (r->kind == 3)
            r->plan[ht_rand(&rng) % GK] = G_RESULT; /* one at least */
        atomic_store(&gcur, i); /* the threads go */
        heist_future *g = r->kind == 3 ? heist_any(r->kids, GK)
                                       : heist_gather(r->kids, GK);
        cr_assert_not_null(g);
        atomic_store(&r->g, g);
        void *v = SENTINEL;
        int rc = heist_await(g, &v);
        cr_assert(ht_wait_at_least(&gdone, 3 * (i + 1), 60));
        switch (r->kind) {
        case 0:
            cr_assert_eq(rc, 0, "round %d: gather gave %d", i, rc);
            cr_assert_null(v);
            break;
        case 1:
            cr_assert_eq(rc, EIO, "round %d: gather gave %d", i, rc);
            break;
        case 2:
            cr_assert(atomic_load(&r->cancel_won),
                      "round %d: a gather with pending children was not "
                      "cancellable", i);
            cr_assert_eq(rc, ECANCELED, "round %d: gather gave %d", i, rc);
            cr_assert(heist_future_cancelled(g));
            break;
        default:
            cr_assert_eq(rc, 0, "round %d: any gave %d", i, rc);
            cr_assert_lt((uintptr_t)v, (uintptr_t)GK);
            cr_assert_eq(r->plan[(uintptr_t)v], G_RESULT,
                         "round %d: any chose child %zu, never completed", i,
                         (size_t)(uintptr_t)v);
            break;
        }
        for (int k = 0; k < GK; k++) {
            void *kv = SENTINEL;
            int krc = heist_future_result(r->kids[k], &kv);
            if (r->plan[k] == G_RESULT &&
                !(r->kind == 2 && heist_future_cancelled(r->kids[k]))) {
                cr_assert_eq(krc, 0);
                cr_assert_eq(kv, VAL(k));
            } else if (r->plan[k] == G_ERROR) {
                cr_assert_eq(krc, EIO);
            } else if (r->kind == 2) {
                cr_assert(heist_future_cancelled(r->kids[k]),
                          "round %d: child %d not cancelled with the gather",
                          i, k);
            } else {
                cr_assert_eq(krc, EAGAIN, "round %d: child %d completed", i,
                             k);
            }
        }
        /* The pending children are freed here, after the gather let go. */
        for (int k = 0; k < GK; k++)
            heist_future_unref(r->kids[k]);
        heist_future_unref(g);
        ht_watchdog_tick(&wd);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    ht_watchdog_stop(&wd);
    free(grounds);
    expect_clean();
}

Test(future_stress, race_gather_vs_completion)
{
    gather_vs_completion(HT_SCALE(4000, 400));
}

/* ---- 100,000 suspended tasks ------------------------------------------- */

struct gate_ctx {
    heist_future *gate;
    atomic_int arrived, woke, wrong;
};

static void *gate_task(void *arg)
{
    struct gate_ctx *g = arg;
    atomic_fetch_add(&g->arrived, 1);
    void *v = NULL;
    if (heist_await(g->gate, &v) != 0 || v != VAL(42))
        atomic_fetch_add(&g->wrong, 1);
    atomic_fetch_add(&g->woke, 1);
    return NULL;
}

Test(future_stress, scale_100000_suspended)
{
    const int n = HT_SCALE(100000, 10000);
    struct ht_watchdog wd;
    ht_watchdog_start(&wd, "100,000 suspended tasks", 60);
    /* Small stacks: n of them are alive at once. */
    heist_sched *s = new_sched(4, 64 * 1024);
    struct gate_ctx g = {.gate = heist_future_new()};
    for (int i = 0; i < n; i++) {
        heist_future *t = heist_spawn(s, gate_task, &g);
        cr_assert_not_null(t, "spawn %d failed: errno %d", i, errno);
        heist_future_unref(t);
        if (i % 1024 == 0)
            ht_watchdog_tick(&wd);
    }
    /* Nobody can resume before the gate is set, so n suspends means n
     * tasks suspended at the same time. */
    uint64_t last = 0, susp;
    while ((susp = stats_of(s).total.suspends) < (uint64_t)n) {
        if (susp != last) {
            last = susp;
            ht_watchdog_tick(&wd);
        }
        struct timespec nap = {0, 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    cr_assert_eq(susp, (uint64_t)n, "more suspends than tasks");
    cr_assert_eq(atomic_load(&g.arrived), n);
    cr_assert_eq(atomic_load(&g.woke), 0);
    cr_assert_eq(heist_future_set_result(g.gate, VAL(42)), 0);
    wait_count(&wd, &g.woke, n);
    cr_assert_eq(heist_sched_free(s), 0);
    ht_watchdog_stop(&wd);
    cr_assert_eq(atomic_load(&g.woke), n);
    cr_assert_eq(atomic_load(&g.wrong), 0);
    heist_future_unref(g.gate);
    expect_clean();
}

/* ---- 10,000 concurrent sleeps ------------------------------------------ */

struct sleeps_ctx {
    atomic_int done;
    struct ht_watchdog *wd;
};

static void *sleep_1ms(void *arg)
{
    struct sleeps_ctx *c = arg;
    uint64_t t0 = ht_now_ns();
    CHECK_EQ(heist_sleep(MS(1)), 0);
    uint64_t dt = ht_now_ns() - t0;
    if (dt < MS(1))
        note_fail(__LINE__, "heist_sleep(1 ms) returned after %llu ns",
                  (unsigned long long)dt);
    atomic_fetch_add(&c->done, 1);
    ht_watchdog_tick(c->wd);
    return NULL;
}

struct sleeps_job {
    int n;
    struct sleeps_ctx *c;
};

static void *spawn_sleepers(void *arg)
{
    struct sleeps_job *j = arg;
    heist_future **t = malloc((size_t)j->n * sizeof(*t));
    CHECK(t != NULL);
    if (!t)
        return NULL;
    for (int i = 0; i < j->n; i++) {
        t[i] = heist_spawn(NULL, sleep_1ms, j->c);
        CHECK(t[i] != NULL);
        if (!t[i])
            return NULL;
    }
    heist_future *g = heist_gather(t, (size_t)j->n);
    CHECK_EQ(heist_await(g, NULL), 0);
    heist_future_unref(g);
    for (int i = 0; i < j->n; i++)
        heist_future_unref(t[i]);
    free(t);
    return NULL;
}

Test(future_stress, scale_10000_sleeps)
{
    const unsigned counts[] = {1, 2, 8};
    const int n = HT_SCALE(10000, 2000);
    for (int k = 0; k < 3; k++) {
        struct ht_watchdog wd;
        ht_watchdog_start(&wd, "10,000 sleeps of 1 ms", 60);
        heist_sched *s = new_sched(counts[k], 64 * 1024);
        struct sleeps_ctx c = {.wd = &wd};
        struct sleeps_job j = {n, &c};
        cr_assert_eq(heist_run(s, spawn_sleepers, &j, NULL), 0);
        cr_assert_eq(atomic_load(&c.done), n, "%u workers", counts[k]);
        cr_assert_eq(heist_sched_free(s), 0);
        ht_watchdog_stop(&wd);
    }
    expect_clean();
}

/* ---- the timer thread's sleep against arms ------------------------------ */

static void *sleep_ns(void *arg)
{
    CHECK_EQ(heist_sleep((uint64_t)(uintptr_t)arg), 0);
    return NULL;
}

static void *sleep_hour(void *arg)
{
    int rc = heist_sleep(HOUR);
    if (rc != ECANCELED)
        note_fail(__LINE__, "the hour's sleep returned %d", rc);
    (void)arg;
    return NULL;
}

/*
 * A hunt for a lost wake-up of the timer thread (lib/timer.c, "Shards"):
 * while a task sleeps for an hour, so that the thread goes back to
 * sleeping toward the hour after each fire, short sleeps (1-100 us) are
 * armed one at a time, each a random 0-100 us after the previous one
 * ended, on whichever worker runs them: they meet the thread at every
 * point of its look at the heaps' tops, its store of the deadline it
 * sleeps until, its second look and its wait. An arm whose signal is lost
 * sleeps until the hour, and the watchdog (ticked every round) aborts.
 * With the arm's signal removed it aborts at once; with the thread's
 * second look removed (a window of a few instructions just after a fire,
 * which these arms seldom meet) it passed 3 runs of 3.
 */
static void timer_wakeup_hunt(unsigned workers, int arms)
{
    struct ht_watchdog wd;
    ht_watchdog_start(&wd, "a short sleep never ended (lost timer wake-up)",
                      30);
    heist_sched *s = new_sched(workers, 0);
    heist_future *l = heist_spawn(s, sleep_hour, NULL);
    cr_assert(l != NULL);
    uint64_t rng = 0x5eed + workers;
    for (int i = 0; i < arms; i++) {
        uint64_t ns = 1000 + ht_rand(&rng) % 99000;
        heist_future *t =
            heist_spawn(s, sleep_ns, (void *)(uintptr_t)ns);
        cr_assert(t != NULL);
        cr_assert_eq(heist_await(t, NULL), 0);
        heist_future_unref(t);
        uint64_t until = ht_now_ns() + ht_rand(&rng) % 100000;
        while (ht_now_ns() < until)
            ;
        ht_watchdog_tick(&wd);
    }
    cr_assert(heist_future_cancel(l));
    cr_assert_eq(heist_await(l, NULL), ECANCELED);
    heist_future_unref(l);
    cr_assert_eq(heist_sched_free(s), 0);
    ht_watchdog_stop(&wd);
    expect_clean();
}

Test(future_stress, timer_wakeup_hunt_1_2_8_workers)
{
    timer_wakeup_hunt(1, HT_SCALE(2000, 400));
    timer_wakeup_hunt(2, HT_SCALE(2000, 400));
    timer_wakeup_hunt(8, HT_SCALE(2000, 400));
}

/* ---- a fiber that migrates --------------------------------------------- */

/*
 * A task awaits futures that other tasks complete, sleeps, and joins
 * stolen forks, many times; each time it may come back on another worker.
 * It records the workers it ran on and checks, after every switch, that
 * its stack locals (an array and scalars, addressed and not) are intact
 * and that heist_current() is still its scheduler.
 */
#define WANDERERS 4

struct wander {
    heist_sched *s;
    int nworkers;
    int iters;
    uint64_t seed;
    int moves;
    uint64_t visited; /* bit per worker index */
    struct ht_watchdog *wd;
};

static void *complete_soon(void *arg)
{
    spin(500);
    CHECK_EQ(heist_future_set_result(arg, VAL(3)), 0);
    return NULL;
}

static void *fork_body(void *arg)
{
    spin(2000);
    return arg;
}

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t z = a * 0x9e3779b97f4a7c15u ^ b;
    return z ^ (z >> 29);
}

static void *wanderer(void *arg)
{
    struct wander *w = arg;
    volatile uint64_t pad[64];
    for (int i = 0; i < 64; i++)
        pad[i] = mix(w->seed, (uint64_t)i);
    volatile uint64_t *pad_addr = pad;
    uint64_t rng = w->seed;
    double d = (double)w->seed * 0.5;
    int last = heist_worker_index();
    CHECK(last >= 0 && last < w->nworkers);
    if (last >= 0 && last < 64)
        w->visited = 1ull << last;
    for (int it = 0; it < w->iters; it++) {
        uint64_t x = ht_rand(&rng);
        switch (x % 3) {
        case 0: {
            heist_future *f = heist_future_new();
            heist_future *t = heist_spawn(NULL, complete_soon, f);
            void *v = NULL;
            CHECK_EQ(heist_await(f, &v), 0);
            CHECK(v == VAL(3));
            CHECK_EQ(heist_await(t, NULL), 0);
            heist_future_unref(t);
            heist_future_unref(f);
            break;
        }
        case 1:
            CHECK_EQ(heist_sleep(US((x >> 8) % 100)), 0);
            break;
        default: {
            heist_task t;
            void *r = NULL;
            heist_fork(&t, fork_body, VAL(it));
            spin((x >> 8) % 3000);
            CHECK_EQ(heist_join(&t, &r), 0);
            CHECK(r == VAL(it));
            break;
        }
        }
        int now = heist_worker_index();
        CHECK(now >= 0 && now < w->nworkers);
        CHECK(heist_current() == w->s);
        if (now != last)
            w->moves++;
        last = now;
        if (now >= 0 && now < 64)
            w->visited |= 1ull << now;
        CHECK(pad_addr == pad);
        for (int i = 0; i < 64; i++)
            if (pad[i] != mix(w->seed, (uint64_t)i)) {
                note_fail(__LINE__, "stack local pad[%d] changed at iter %d", i,
                          it);
                break;
            }
        CHECK(d == (double)w->seed * 0.5);
        ht_watchdog_tick(w->wd);
    }
    return VAL(w->moves);
}

static void *spawn_wanderers(void *arg)
{
    struct wander *w = arg;
    heist_future *t[WANDERERS];
    for (int i = 0; i < WANDERERS; i++)
        t[i] = heist_spawn(NULL, wanderer, &w[i]);
    heist_future *g = heist_gather(t, WANDERERS);
    CHECK_EQ(heist_await(g, NULL), 0);
    heist_future_unref(g);
    for (int i = 0; i < WANDERERS; i++)
        heist_future_unref(t[i]);
    return NULL;
}

Test(future_stress, migrate_fiber_across_workers)
{
    const unsigned counts[] = {4, 8};
    for (int k = 0; k < 2; k++) {
        struct ht_watchdog wd;
        ht_watchdog_start(&wd, "migrating fibers", 60);
        heist_sched *s = new_sched(counts[k], 0);
        struct wander w[WANDERERS];
        for (int i = 0; i < WANDERERS; i++)
            w[i] = (struct wander){.s = s,
                                   .nworkers = (int)counts[k],
                                   .iters = HT_SCALE(3000, 300),
                                   .seed = 1000u * counts[k] + (uint64_t)i,
                                   .wd = &wd};
        cr_assert_eq(heist_run(s, spawn_wanderers, w, NULL), 0);
        cr_assert_eq(heist_sched_free(s), 0);
        ht_watchdog_stop(&wd);
        for (int i = 0; i < WANDERERS; i++) {
            cr_log_info("%u workers, wanderer %d: %d moves, %d workers seen",
                        counts[k], i, w[i].moves,
                        __builtin_popcountll(w[i].visited));
            cr_assert_gt(w[i].moves, 0,
                         "%u workers: wanderer %d never changed worker in %d "
                         "switches",
                         counts[k], i, w[i].iters);
        }
        expect_clean();
    }
}

/* ---- heist_join suspends on a stolen, running child --------------------- */

/*
 * The parent forks a child, waits until another worker has stolen and
 * started it, and joins. The child awaits a future that the test's thread
 * completes only once the scheduler has counted two suspends: the child's
 * and the parent's join. A join that blocked its worker instead, or ran
 * the child's continuation inline, never makes the second one, and the
 * test fails after 30 s.
 */
struct join_probe {
    heist_future *g;
    atomic_int child_started;
    int child_worker, parent_worker_before;
    int join_rc;
    void *join_v;
    bool stolen;
};

static void *jp_child(void *arg)
{
    struct join_probe *p = arg;
    p->child_worker = heist_worker_index();
    atomic_store(&p->child_started, 1);
    void *v = NULL;
    CHECK_EQ(heist_await(p->g, &v), 0);
    return v;
}

static void *jp_parent(void *arg)
{
    struct join_probe *p = arg;
    heist_task t;
    heist_fork(&t, jp_child, p);
    p->parent_worker_before = heist_worker_index();
    /* Spin (never suspend) until a thief runs the child. */
    p->stolen = ht_wait_at_least(&p->child_started, 1, 30);
    p->join_v = SENTINEL;
    p->join_rc = heist_join(&t, &p->join_v);
    return NULL;
}

struct run_thread {
    heist_sched *s;
    struct join_probe *p;
    int rc;
};

static void *run_parent(void *arg)
{
    struct run_thread *r = arg;
    r->rc = heist_run(r->s, jp_parent, r->p, NULL);
    return NULL;
}

Test(future_stress, migrate_join_suspends_on_stolen_child)
{
    const unsigned counts[] = {2, 4};
    const int reps = HT_SCALE(200, 30);
    for (int k = 0; k < 2; k++) {
        heist_sched *s = new_sched(counts[k], 0);
        for (int rep = 0; rep < reps; rep++) {
            struct join_probe p = {.g = heist_future_new()};
            uint64_t base = stats_of(s).total.suspends;
            struct run_thread r = {s, &p, -1};
            pthread_t th;
            cr_assert_eq(pthread_create(&th, NULL, run_parent, &r), 0);
            uint64_t deadline = ht_now_ns() + 30ull * 1000000000u;
            uint64_t susp;
            while ((susp = stats_of(s).total.suspends) < base + 2 &&
                   ht_now_ns() < deadline) {
                struct timespec nap = {0, 50 * 1000};
                nanosleep(&nap, NULL);
            }
            /* Set the gate whatever happened, so the run can end. */
            cr_assert_eq(heist_future_set_result(p.g, VAL(8)), 0);
            pthread_join(th, NULL);
            cr_assert_eq(r.rc, 0);
            cr_assert(p.stolen, "rep %d: no worker stole the child in 30 s",
                      rep);
            cr_assert_neq(p.child_worker, p.parent_worker_before);
            cr_assert_geq(susp, base + 2,
                          "%u workers, rep %d: %llu suspends, want 2 (the "
                          "child's await and the parent's join)",
                          counts[k], rep, (unsigned long long)(susp - base));
            cr_assert_eq(p.join_rc, 0);
            cr_assert_eq(p.join_v, VAL(8));
            heist_future_unref(p.g);
        }
        cr_assert_eq(heist_sched_free(s), 0);
    }
    expect_clean();
}
