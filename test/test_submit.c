/*
 * test_submit.c - work handed to a scheduler from threads that are not its
 * workers (heist_run): many submitters at once, a hunt for lost wake-ups
 * (a submission that no worker notices hangs its caller forever), and an
 * idle scheduler woken by a new submission.
 *
 * Hangs are caught by a watchdog (test_util.h) that aborts with a message
 * after 30 s without progress; nothing here depends on how fast it runs.
 */
#include <criterion/criterion.h>

#include <heist/heist.h>
#include <sched.h>
#include <stdbool.h>
#include <time.h>

#include "test_util.h"

/* A hang aborts with a message (test_util.h). */
HT_WATCHDOG_SUITE(submit, 300);

static heist_sched *new_sched(unsigned workers)
{
    heist_config cfg = {.workers = workers};
    heist_sched *s = NULL;
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    return s;
}

/* fib with fork-join, and its value (test_util.h). */
#define fib ht_fib
#define fib_seq ht_fib_seq

static void *add_one(void *arg)
{
    return (void *)((uintptr_t)arg + 1);
}

/* ---- many submitters at once ------------------------------------------ */

struct submitter {
    heist_sched *s;
    atomic_int *go;
    int id, reps;
    int err;
    long wrong;
    struct ht_watchdog *wd;
};

static void *submitter_main(void *arg)
{
    struct submitter *m = arg;
    /* Start together, to make the submissions collide. */
    while (!atomic_load(m->go))
        sched_yield();
    for (int i = 0; i < m->reps; i++) {
        long n = 10 + (m->id + i) % 8;
        void *r = NULL;
        int err = heist_run(m->s, fib, (void *)n, &r);
        if (err) {
            m->err = err;
            return NULL;
        }
        if ((long)r != fib_seq(n))
            m->wrong++;
        ht_watchdog_tick(m->wd);
    }
    return NULL;
}

static void many_submitters(unsigned workers, int nthreads, int reps)
{
    struct ht_watchdog wd;
    ht_watchdog_start(&wd, "concurrent heist_run", 30);
    heist_sched *s = new_sched(workers);
    atomic_int go;
    atomic_init(&go, 0);
    struct submitter m[16];
    pthread_t t[16];
    cr_assert_leq(nthreads, 16);
    for (int i = 0; i < nthreads; i++) {
        m[i] = (struct submitter){
            .s = s, .go = &go, .id = i, .reps = reps, .wd = &wd};
        cr_assert_eq(pthread_create(&t[i], NULL, submitter_main, &m[i]), 0);
    }
    atomic_store(&go, 1);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(heist_sched_free(s), 0);
    ht_watchdog_stop(&wd);
    for (int i = 0; i < nthreads; i++) {
        cr_assert_eq(m[i].err, 0, "thread %d: heist_run error %d", i, m[i].err);
        cr_assert_eq(m[i].wrong, 0, "thread %d: %ld wrong results", i,
                     m[i].wrong);
    }
}

Test(submit, sixteen_threads_at_once)
{
    many_submitters(2, 16, HT_SCALE(200, 60));
    many_submitters(8, 16, HT_SCALE(100, 30));
}

/* ---- lost wake-ups ----------------------------------------------------- */

/* One tiny heist_run after another, each waited for: every submission finds
 * the workers in a different phase of going to sleep, so a window in the
 * park/wake protocol shows up as a hang. */
static void wakeup_hunt(unsigned workers, int n)
{
    struct ht_watchdog wd;
    ht_watchdog_start(&wd, "sequential heist_run (lost wake-up?)", 30);
    heist_sched *s = new_sched(workers);
    uint64_t rng = workers;
    for (int i = 0; i < n; i++) {
        /* A random pause, mostly 0-15 us, one time in eight up to 200 us:
         * the next submission meets the workers spinning, yielding,
         * preparing to park, or asleep. */
        uint64_t x = ht_rand(&rng);
        uint64_t until = ht_now_ns() + x % ((x >> 61) == 0 ? 200000 : 16000);
        while (ht_now_ns() < until)
            ;
        void *r = NULL;
        int err = heist_run(s, add_one, (void *)(uintptr_t)i, &r);
        cr_assert_eq(err, 0, "run %d: error %d", i, err);
        cr_assert_eq((uintptr_t)r, (uintptr_t)i + 1, "run %d: wrong result", i);
        ht_watchdog_tick(&wd);
    }
    heist_stats st;
    cr_assert_eq(heist_sched_stats(s, &st), 0);
    cr_log_info("%d runs on %u workers: %llu parks", n, workers,
                (unsigned long long)st.total.parks);
    cr_assert_eq(heist_sched_free(s), 0);
    ht_watchdog_stop(&wd);
}

/* One worker: no other worker can pick up a job whose wake-up was lost. */
Test(submit, lost_wakeup_hunt_1_worker)
{
    wakeup_hunt(1, HT_SCALE(100000, 50000));
}

Test(submit, lost_wakeup_hunt_2_workers)
{
    wakeup_hunt(2, HT_SCALE(100000, 50000));
}

Test(submit, lost_wakeup_hunt_8_workers)
{
    wakeup_hunt(8, HT_SCALE(100000, 50000));
}

/* Several submitters, each with its own rhythm, on a scheduler whose
 * workers keep falling asleep. */
Test(submit, lost_wakeup_hunt_4_submitters)
{
    many_submitters(3, 4, HT_SCALE(5000, 2000));
}

/* ---- a worker's own pushes ---------------------------------------------- */

/*
 * A task spawns a child onto its own worker's ready queue, then busy-waits
 * for it without awaiting: only another worker can run the child, so a
 * lost wake-up of that worker hangs (the watchdog aborts). Before each
 * spawn the task waits a random 0-60 us, so the push meets the other
 * worker at every stage of going to sleep (spinning, yielding, announcing
 * itself, re-checking, asleep): the race of the ready queue's publish
 * (heist__park_publish_i64) against the parking protocol (park.c). The
 * hunt itself is ht_push_hunt (test_util.c), shared with regress_faults.
 */
static void push_hunt(unsigned workers, int reps)
{
    struct ht_watchdog wd;
    ht_watchdog_start(&wd, "a worker's push was never taken (lost wake-up)",
                      30);
    heist_sched *s = new_sched(workers);
    cr_assert_eq(ht_push_hunt(s, reps, 12345 + workers, &wd), 0);
    cr_assert_eq(heist_sched_free(s), 0);
    ht_watchdog_stop(&wd);
}

Test(submit, lost_wakeup_hunt_worker_push)
{
    push_hunt(2, HT_SCALE(20000, 3000));
    push_hunt(4, HT_SCALE(5000, 1000));
}

/* ---- a burst that needs every worker ------------------------------------ */

/*
 * As many tasks as workers, injected at once from this thread; each holds
 * its worker until all of them run, so they must start on every worker
 * (ht_round_every_worker). The workers are searching (no pause between
 * rounds) or parked (a pause): a searcher that takes a task and sees more
 * wakes a parked worker, which must pass the wake on in turn (worker.c,
 * "Waking"). Woken workers that did not left tasks queued behind the
 * running ones while workers slept (6 of 8 started, on a loaded machine).
 */
static void burst_hunt(unsigned workers, int rounds, bool pause)
{
    heist_sched *s = new_sched(workers);
    for (int round = 0; round < rounds; round++) {
        if (pause)
            nanosleep(&(struct timespec){0, 2 * 1000 * 1000}, NULL);
        int r = ht_round_every_worker(s, workers, NULL, NULL);
        cr_assert_eq(r, 0,
                     "round %d: %d (-1: a task waited 30 s for the others "
                     "to start while workers slept, a lost wake-up; -2: two "
                     "ran on one worker)",
                     round, r);
    }
    cr_assert_eq(heist_sched_free(s), 0);
}

Test(submit, burst_needs_every_worker_4_8_workers)
{
    burst_hunt(4, HT_SCALE(300, 100), false);
    burst_hunt(8, HT_SCALE(300, 100), false);
    burst_hunt(8, HT_SCALE(100, 30), true);
}

/* ---- idle, then woken -------------------------------------------------- */

Test(submit, idle_scheduler_wakes_on_submit)
{
    struct ht_watchdog wd;
    ht_watchdog_start(&wd, "heist_run on an idle scheduler", 30);
    heist_sched *s = new_sched(2);
    for (int i = 0; i < 20; i++) {
        /* Long enough for the workers to give up spinning and park. */
        struct timespec nap = {0, 50 * 1000 * 1000};
        nanosleep(&nap, NULL);
        void *r = NULL;
        cr_assert_eq(heist_run(s, fib, (void *)15L, &r), 0);
        cr_assert_eq((long)r, fib_seq(15));
        ht_watchdog_tick(&wd);
    }
    heist_stats st;
    cr_assert_eq(heist_sched_stats(s, &st), 0);
    cr_assert_gt(st.total.parks, 0,
                 "workers never parked in 20 idle periods of 50 ms");
    cr_assert_eq(heist_sched_free(s), 0);
    ht_watchdog_stop(&wd);
}
