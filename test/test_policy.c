/*
 * test_policy.c - the scheduling policy (ready.c, worker.c): run-next
 * slots, batch steals and the wake rule lose no task and run none twice,
 * and no wake-up is lost, on 1, 2 and 8 (oversubscribed) workers.
 *
 * Every task counts its own runs in a slot of its own; a lost task or a
 * lost wake-up shows as a hang, which the suite's watchdog turns into an
 * abort naming the case. Nothing here depends on timing.
 *
 * Tasks record failed checks with CHECK / CHECK_EQ (test_check.h); the
 * test thread calls expect_clean() after each heist_run or await.
 */
#include <criterion/criterion.h>

#include <heist/heist.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "test_check.h"
#include "test_util.h"

static struct ht_watchdog wd;
static void wd_start(void) { ht_watchdog_start(&wd, "test_policy", 60); }
static void wd_stop(void) { ht_watchdog_stop(&wd); }
TestSuite(policy, .init = wd_start, .fini = wd_stop);

static const unsigned worker_counts[] = {1, 2, 8};

static heist_sched *mk(unsigned workers)
{
    heist_config cfg = {.workers = workers};
    heist_sched *s = NULL;
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    return s;
}

/* ---- spawn everything first: batch steals ------------------------------ */

struct spawn_all {
    long n;
    atomic_int *runs;
};

struct slot {
    struct spawn_all *sa;
    long i;
};

static void *counted(void *arg)
{
    struct slot *sl = arg;
    atomic_fetch_add_explicit(&sl->sa->runs[sl->i], 1, memory_order_relaxed);
    ht_watchdog_tick(&wd);
    return (void *)(sl->i + 1);
}

static void *spawn_all_main(void *arg)
{
    struct spawn_all *sa = arg;
    heist_future **f = malloc((size_t)sa->n * sizeof(*f));
    struct slot *sl = malloc((size_t)sa->n * sizeof(*sl));
    CHECK(f && sl);
    if (!f || !sl) {
        free(f);
        free(sl);
        return NULL;
    }
    for (long i = 0; i < sa->n; i++) {
        sl[i] = (struct slot){sa, i};
        CHECK((f[i] = heist_spawn(NULL, counted, &sl[i])) != NULL);
    }
    heist_future *all = heist_gather(f, (size_t)sa->n);
    CHECK(all != NULL);
    CHECK_EQ(heist_await(all, NULL), 0);
    heist_future_unref(all);
    for (long i = 0; i < sa->n; i++) {
        void *v = NULL;
        CHECK_EQ(heist_future_result(f[i], &v), 0);
        CHECK_EQ(v, (void *)(i + 1));
        heist_future_unref(f[i]);
    }
    free(sl);
    free(f);
    return NULL;
}

Test(policy, stress_spawn_all_exactly_once)
{
    long n = HT_SCALE(200000, 20000);
    for (size_t k = 0; k < 3; k++) {
        heist_sched *s = mk(worker_counts[k]);
        struct spawn_all sa = {n, calloc((size_t)n, sizeof(atomic_int))};
        cr_assert_not_null(sa.runs);
        for (int rep = 0; rep < 2; rep++) {
            cr_assert_eq(heist_run(s, spawn_all_main, &sa, NULL), 0);
            expect_clean();
            for (long i = 0; i < n; i++)
                cr_assert_eq(atomic_load(&sa.runs[i]), rep + 1,
                             "%u workers: task %ld ran %d times after %d runs",
                             worker_counts[k], i, atomic_load(&sa.runs[i]),
                             rep + 1);
        }
        free(sa.runs);
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

/* ---- ping-pong through fresh futures: run-next ---------------------------- */

struct pp {
    long rounds;
    heist_future **ping, **pong; /* one of each per round */
    atomic_long pings, pongs;
};

static void *pinger(void *arg)
{
    struct pp *p = arg;
    for (long r = 0; r < p->rounds; r++) {
        CHECK_EQ(heist_future_set_result(p->ping[r], (void *)r), 0);
        void *v = NULL;
        CHECK_EQ(heist_await(p->pong[r], &v), 0);
        CHECK_EQ(v, (void *)(r + 1));
        atomic_fetch_add(&p->pings, 1);
        ht_watchdog_tick(&wd);
    }
    return NULL;
}

static void *ponger(void *arg)
{
    struct pp *p = arg;
    for (long r = 0; r < p->rounds; r++) {
        void *v = NULL;
        CHECK_EQ(heist_await(p->ping[r], &v), 0);
        CHECK_EQ(v, (void *)r);
        atomic_fetch_add(&p->pongs, 1);
        CHECK_EQ(heist_future_set_result(p->pong[r], (void *)(r + 1)), 0);
    }
    return NULL;
}

struct pp_all {
    int pairs;
    struct pp *pp;
};

static void *pp_main(void *arg)
{
    struct pp_all *a = arg;
    heist_future **t = malloc(2 * (size_t)a->pairs * sizeof(*t));
    CHECK(t != NULL);
    if (!t)
        return NULL;
    for (int i = 0; i < a->pairs; i++) {
        CHECK((t[2 * i] = heist_spawn(NULL, ponger, &a->pp[i])) != NULL);
        CHECK((t[2 * i + 1] = heist_spawn(NULL, pinger, &a->pp[i])) != NULL);
    }
    for (int i = 0; i < 2 * a->pairs; i++) {
        CHECK_EQ(heist_await(t[i], NULL), 0);
        heist_future_unref(t[i]);
    }
    free(t);
    return NULL;
}

Test(policy, stress_pingpong_pairs)
{
    int pairs = 16;
    long rounds = HT_SCALE(2000, 200);
    for (size_t k = 0; k < 3; k++) {
        heist_sched *s = mk(worker_counts[k]);
        struct pp_all a = {pairs, calloc((size_t)pairs, sizeof(struct pp))};
        cr_assert_not_null(a.pp);
        for (int i = 0; i < pairs; i++) {
            struct pp *p = &a.pp[i];
            p->rounds = rounds;
            p->ping = malloc((size_t)rounds * sizeof(heist_future *));
            p->pong = malloc((size_t)rounds * sizeof(heist_future *));
            cr_assert(p->ping && p->pong);
            for (long r = 0; r < rounds; r++) {
                cr_assert_not_null(p->ping[r] = heist_future_new());
                cr_assert_not_null(p->pong[r] = heist_future_new());
            }
        }
        cr_assert_eq(heist_run(s, pp_main, &a, NULL), 0);
        expect_clean();
        for (int i = 0; i < pairs; i++) {
            struct pp *p = &a.pp[i];
            cr_assert_eq(atomic_load(&p->pings), rounds);
            cr_assert_eq(atomic_load(&p->pongs), rounds);
            for (long r = 0; r < rounds; r++) {
                heist_future_unref(p->ping[r]);
                heist_future_unref(p->pong[r]);
            }
            free(p->ping);
            free(p->pong);
        }
        free(a.pp);
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

/* ---- a chain spawned before its first link can run ---------------------- */

struct link {
    heist_future *in, *out;
    atomic_int runs;
};

static void *link_task(void *arg)
{
    struct link *l = arg;
    atomic_fetch_add(&l->runs, 1);
    void *v = NULL;
    CHECK_EQ(heist_await(l->in, &v), 0);
    CHECK_EQ(heist_future_set_result(l->out, (void *)((long)v + 1)), 0);
    ht_watchdog_tick(&wd);
    return NULL;
}

struct chain {
    long n;
    struct link *links;
    heist_future **f;
};

static void *chain_main(void *arg)
{
    struct chain *c = arg;
    heist_future **t = malloc((size_t)c->n * sizeof(*t));
    CHECK(t != NULL);
    if (!t)
        return NULL;
    for (long i = 0; i < c->n; i++)
        CHECK((t[i] = heist_spawn(NULL, link_task, &c->links[i])) != NULL);
    CHECK_EQ(heist_future_set_result(c->f[0], (void *)0), 0);
    void *v = NULL;
    CHECK_EQ(heist_await(c->f[c->n], &v), 0);
    CHECK_EQ((long)v, c->n);
    for (long i = 0; i < c->n; i++) {
        CHECK_EQ(heist_await(t[i], NULL), 0);
        heist_future_unref(t[i]);
    }
    free(t);
    return NULL;
}

/* n links and their n + 1 futures, link i from future i to i + 1. */
static struct chain chain_make(long n)
{
    struct chain c = {n, calloc((size_t)n, sizeof(struct link)),
                      malloc(((size_t)n + 1) * sizeof(heist_future *))};
    cr_assert(c.links && c.f);
    for (long i = 0; i <= n; i++)
        cr_assert_not_null(c.f[i] = heist_future_new());
    for (long i = 0; i < n; i++) {
        c.links[i].in = c.f[i];
        c.links[i].out = c.f[i + 1];
    }
    return c;
}

/* Every link ran exactly once; frees the chain. */
static void chain_check_free(struct chain *c)
{
    for (long i = 0; i < c->n; i++)
        cr_assert_eq(atomic_load(&c->links[i].runs), 1);
    for (long i = 0; i <= c->n; i++)
        heist_future_unref(c->f[i]);
    free(c->f);
    free(c->links);
}

Test(policy, stress_chain_links_exactly_once)
{
    long n = HT_SCALE(50000, 3000);
    for (size_t k = 0; k < 3; k++) {
        heist_sched *s = mk(worker_counts[k]);
        struct chain c = chain_make(n);
        cr_assert_eq(heist_run(s, chain_main, &c, NULL), 0);
        expect_clean();
        chain_check_free(&c);
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

/* A chain mixed with independent tasks in the same queues: a worker that
 * pauses its own queue because its links sleep and wake elsewhere
 * (worker.c, "Running ahead") must leave nothing stranded there; with
 * `late`, main sleeps before it resolves the first link, so every link
 * starts and sleeps first. */
struct mixed {
    struct chain c;
    struct spawn_all sa;
    struct slot *sl;
    bool late;
};

static void *mixed_main(void *arg)
{
    struct mixed *m = arg;
    long n = m->c.n;
    heist_future **t = malloc((size_t)n * 2 * sizeof(*t));
    CHECK(t != NULL);
    if (!t)
        return NULL;
    for (long i = 0; i < n; i++) {
        CHECK((t[2 * i] = heist_spawn(NULL, link_task, &m->c.links[i])) !=
              NULL);
        m->sl[i] = (struct slot){&m->sa, i};
        CHECK((t[2 * i + 1] = heist_spawn(NULL, counted, &m->sl[i])) != NULL);
    }
    if (m->late)
        CHECK_EQ(heist_sleep(1000000), 0);
    CHECK_EQ(heist_future_set_result(m->c.f[0], (void *)0), 0);
    void *v = NULL;
    CHECK_EQ(heist_await(m->c.f[n], &v), 0);
    CHECK_EQ((long)v, n);
    heist_future *all = heist_gather(t, (size_t)n * 2);
    CHECK(all != NULL);
    CHECK_EQ(heist_await(all, NULL), 0);
    heist_future_unref(all);
    for (long i = 0; i < 2 * n; i++)
        heist_future_unref(t[i]);
    free(t);
    return NULL;
}

Test(policy, stress_chain_mixed_with_independent_tasks)
{
    long n = HT_SCALE(20000, 2000);
    for (int late = 0; late < 2; late++) {
        for (size_t k = 0; k < 3; k++) {
            heist_sched *s = mk(worker_counts[k]);
            struct mixed m = {
                .c = chain_make(n),
                .sa = {n, calloc((size_t)n, sizeof(atomic_int))},
                .sl = malloc((size_t)n * sizeof(struct slot)),
                .late = late,
            };
            cr_assert(m.sa.runs && m.sl);
            cr_assert_eq(heist_run(s, mixed_main, &m, NULL), 0);
            expect_clean();
            for (long i = 0; i < n; i++)
                cr_assert_eq(atomic_load(&m.sa.runs[i]), 1);
            chain_check_free(&m.c);
            free(m.sa.runs);
            free(m.sl);
            cr_assert_eq(heist_sched_free(s), 0);
        }
    }
}

/* ---- wake-ups inside the scheduler -------------------------------------- */

static void *child(void *arg)
{
    return arg;
}

/* The other workers park between rounds (a sleep); then one spawn must
 * wake one, or the spawner runs it itself: either way it runs. */
static void *wake_main(void *arg)
{
    long rounds = (long)arg;
    for (long r = 0; r < rounds; r++) {
        if (r % 64 == 0)
            CHECK_EQ(heist_sleep(200000), 0); /* let the others park */
        heist_future *c[3];
        for (int i = 0; i < 3; i++)
            CHECK((c[i] = heist_spawn(NULL, child, (void *)r)) != NULL);
        for (int i = 0; i < 3; i++) {
            void *v = NULL;
            CHECK_EQ(heist_await(c[i], &v), 0);
            CHECK_EQ(v, (void *)r);
            heist_future_unref(c[i]);
        }
        ht_watchdog_tick(&wd);
    }
    return NULL;
}

Test(policy, stress_wake_hunt_inside)
{
    long rounds = HT_SCALE(20000, 2000);
    for (size_t k = 0; k < 3; k++) {
        heist_sched *s = mk(worker_counts[k]);
        cr_assert_eq(heist_run(s, wake_main, (void *)rounds, NULL), 0);
        expect_clean();
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

/* ---- a woken task is not held by a waker that runs on -------------------- */

struct hold {
    heist_future *f;
    atomic_int waiting, resumed;
};

static void *held(void *arg)
{
    struct hold *h = arg;
    atomic_store(&h->waiting, 1);
    CHECK_EQ(heist_await(h->f, NULL), 0);
    atomic_store(&h->resumed, 1);
    return NULL;
}

/* Completes the future, then keeps its worker until the woken task ran
 * elsewhere: the woken task sits in this worker's run-next slot, and
 * another worker (parked meanwhile) must be woken to take it. */
static void *waker(void *arg)
{
    struct hold *h = arg;
    while (!atomic_load(&h->waiting))
        sched_yield();
    /* Let the other worker park (it has had nothing to do). */
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHECK_EQ(heist_future_set_result(h->f, NULL), 0);
    while (!atomic_load(&h->resumed))
        sched_yield(); /* a hang here is the bug: the watchdog reports it */
    return NULL;
}

Test(policy, woken_task_runs_while_its_waker_runs_on)
{
    for (int round = 0; round < 20; round++) {
        heist_sched *s = mk(2);
        struct hold h = {.f = heist_future_new()};
        cr_assert_not_null(h.f);
        heist_future *r = heist_spawn(s, held, &h);
        cr_assert_not_null(r);
        while (!atomic_load(&h.waiting))
            sched_yield();
        /* Let the reader suspend before the waker starts. */
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
        heist_future *w = heist_spawn(s, waker, &h);
        cr_assert_not_null(w);
        cr_assert_eq(heist_await(w, NULL), 0);
        cr_assert_eq(heist_await(r, NULL), 0);
        expect_clean();
        heist_future_unref(w);
        heist_future_unref(r);
        heist_future_unref(h.f);
        cr_assert_eq(heist_sched_free(s), 0);
        ht_watchdog_tick(&wd);
    }
}

/* ---- a busy worker's queue, once it stops being busy --------------------- */

/* Thieves leave the ready items of a worker that starts items quickly,
 * and a searcher that sees nothing else naps (worker.c, "Busy victims",
 * "Idle"). Once that worker runs a long item instead, its queue must be
 * taken: here the long item spins until a task it spawned has run, so
 * only another worker can end it. A worker kept busy forever, or a
 * searcher that naps without searching again, hangs this test. Busy
 * needs items under 250 ns, which an optimized build's ping-pong has:
 * with heist__worker_busy made to ignore the stamp's age, the release
 * build of this test hangs (checked by hand); in the debug and sanitizer
 * builds the items are slower, the worker is never busy, and the test
 * checks the plain steal of a long item's queue. */
struct turn {
    struct pp pp;
    atomic_int flag;
};

static void *busy_then_long(void *arg)
{
    struct turn *t = arg;
    /* Busy: a ping-pong of short items on this worker. */
    heist_future *p = heist_spawn(NULL, ponger, &t->pp);
    heist_future *q = heist_spawn(NULL, pinger, &t->pp);
    CHECK(p && q);
    CHECK_EQ(heist_await(p, NULL), 0);
    CHECK_EQ(heist_await(q, NULL), 0);
    heist_future_unref(p);
    heist_future_unref(q);
    /* Long: spin until another worker ran the task queued here. */
    atomic_store(&t->flag, 0);
    heist_future *c = heist_spawn(NULL, ht_set_flag, &t->flag);
    CHECK(c != NULL);
    if (!c)
        return NULL; /* nothing to wait for */
    while (!atomic_load_explicit(&t->flag, memory_order_acquire))
        ; /* a hang here is the bug: the watchdog reports it */
    CHECK_EQ(heist_await(c, NULL), 0);
    heist_future_unref(c);
    ht_watchdog_tick(&wd);
    return NULL;
}

Test(policy, busy_worker_queue_taken_once_it_runs_long)
{
    long rounds = HT_SCALE(500, 100);
    int reps = HT_SCALE(40, 10);
    for (size_t k = 1; k < 3; k++) { /* 2 and 8 workers: 1 would hang */
        heist_sched *s = mk(worker_counts[k]);
        for (int rep = 0; rep < reps; rep++) {
            struct turn t = {.pp = {.rounds = rounds}};
            t.pp.ping = malloc((size_t)rounds * sizeof(heist_future *));
            t.pp.pong = malloc((size_t)rounds * sizeof(heist_future *));
            cr_assert(t.pp.ping && t.pp.pong);
            for (long r = 0; r < rounds; r++) {
                cr_assert_not_null(t.pp.ping[r] = heist_future_new());
                cr_assert_not_null(t.pp.pong[r] = heist_future_new());
            }
            cr_assert_eq(heist_run(s, busy_then_long, &t, NULL), 0);
            expect_clean();
            cr_assert_eq(atomic_load(&t.pp.pings), rounds);
            cr_assert_eq(atomic_load(&t.flag), 1);
            for (long r = 0; r < rounds; r++) {
                heist_future_unref(t.pp.ping[r]);
                heist_future_unref(t.pp.pong[r]);
            }
            free(t.pp.ping);
            free(t.pp.pong);
        }
        cr_assert_eq(heist_sched_free(s), 0);
    }
}
