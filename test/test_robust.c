/*
 * test_robust.c - timers without faults injected (test_faults.c and
 * regress_faults.c cover the rest of issue "Nothing lost under faults"):
 *
 *  - a cancel racing the start of a sleep leaves no timer armed (the
 *    asan preset's LeakSanitizer reports a node left in the heap; every
 *    preset checks that every await says ECANCELED and heist_sched_free
 *    returns);
 *  - sleeps and timed awaits never end early.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <heist/heist.h>
#include <pthread.h>
#include <stdatomic.h>

#include "test_util.h"

static heist_sched *mk(unsigned workers)
{
    heist_config cfg = {.workers = workers};
    heist_sched *s = NULL;
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    return s;
}

/* ---- a cancel racing a sleep's start leaves no timer -------------------- */

static void *long_sleeper(void *arg)
{
    (void)arg;
    /* An hour: a node left in the heap would outlive the test. */
    int rc = heist_sleep(3600ull * 1000000000u);
    return (void *)(intptr_t)rc;
}

static void *cancel_storm(void *arg)
{
    (void)arg;
    int n = HT_SCALE(3000, 300);
    for (int i = 0; i < n; i++) {
        heist_future *t = heist_spawn(NULL, long_sleeper, NULL);
        cr_assert_not_null(t);
        /* Cancel at once: before, during or after the sleep's start. */
        heist_future_cancel(t);
        int rc = heist_await(t, NULL);
        cr_assert_eq(rc, ECANCELED, "round %d: %d", i, rc);
        heist_future_unref(t);
    }
    return NULL;
}

Test(robust, cancel_racing_sleep_leaves_no_timer)
{
    heist_sched *s = mk(2);
    cr_assert_eq(heist_run(s, cancel_storm, NULL, NULL), 0);
    cr_assert_eq(heist_sched_free(s), 0);
}

/* ---- no early ends ------------------------------------------------------ */

static void *timed(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        uint64_t ns = 2000000 + (uint64_t)i * 100000;
        uint64_t t0 = ht_now_ns();
        cr_assert_eq(heist_sleep(ns), 0);
        cr_assert_geq(ht_now_ns() - t0, ns, "sleep %d ended early", i);
        heist_future *f = heist_future_new();
        t0 = ht_now_ns();
        cr_assert_eq(heist_await_timeout(f, ns, NULL), ETIMEDOUT);
        cr_assert_geq(ht_now_ns() - t0, ns, "timeout %d came early", i);
        heist_future_unref(f);
    }
    return NULL;
}

Test(robust, sleeps_and_timeouts_never_end_early)
{
    heist_sched *s = mk(2);
    heist_future *t[4];
    for (int i = 0; i < 4; i++)
        cr_assert_not_null(t[i] = heist_spawn(s, timed, NULL));
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(heist_await(t[i], NULL), 0);
        heist_future_unref(t[i]);
    }
    cr_assert_eq(heist_sched_free(s), 0);
}
