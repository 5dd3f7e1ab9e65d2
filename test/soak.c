/*
 * soak.c - issue 10, item 8: memory is given back. Repeats a mixed futures
 * round (spawned tasks that await, sleep, fork-join, gather, any,
 * then-callbacks, cancels, plain futures completed by a plain thread) on
 * one scheduler for HEIST_SOAK_SECONDS (default 60) and fails if the
 * resident set grows after the first tenth of the run: the largest RSS
 * seen after it may exceed the largest seen during it by at most
 * HEIST_SOAK_SLACK_KB (default 2048). Label `soak`; not in the default
 * ctest run (CMake option HEIST_TEST_SOAK registers it). Prints the RSS
 * at each tenth.
 */
#include "test_util.h"

#include <heist/heist.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define US(x) ((uint64_t)(x)*1000u)

static atomic_int bad;
static atomic_long cb_runs;

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c) && atomic_fetch_add(&bad, 1) == 0)                            \
            fprintf(stderr, "soak: check failed at line %d: %s\n", __LINE__,  \
                    #c);                                                       \
    } while (0)

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void *fib(void *arg)
{
    long n = (long)arg;
    if (n < 2)
        return (void *)n;
    heist_task t;
    void *a = NULL;
    heist_fork(&t, fib, (void *)(n - 1));
    void *b = fib((void *)(n - 2));
    CHECK(heist_join(&t, &a) == 0);
    return (void *)((long)a + (long)b);
}

static void cb(heist_future *f, void *arg)
{
    (void)f;
    (void)arg;
    atomic_fetch_add(&cb_runs, 1);
}

static void *worker_task(void *arg)
{
    long i = (long)arg;
    switch (i % 5) {
    case 0:
        CHECK(heist_sleep(US(i % 50)) == 0);
        break;
    case 1:
        CHECK((long)fib((void *)12L) == 144);
        break;
    case 2: {
        heist_future *c = heist_spawn(NULL, fib, (void *)8L);
        CHECK(c);
        void *v = NULL;
        if (c) {
            CHECK(heist_await(c, &v) == 0 && (long)v == 21);
            heist_future_unref(c);
        }
        break;
    }
    case 3: {
        heist_future *f = heist_future_new();
        CHECK(f);
        if (f) {
            CHECK(heist_await_timeout(f, US(20), NULL) == ETIMEDOUT);
            heist_future_unref(f);
        }
        break;
    }
    default:
        /* a suspended task that ends: awaits a sibling */
        heist_sleep(US(1));
        break;
    }
    return (void *)i;
}

static void *sleeper(void *arg)
{
    (void)arg;
    heist_sleep(3600ull * 1000000000u);
    return NULL;
}

enum { ROUND = 2000 };

static void *round_main(void *arg)
{
    heist_future **plain = arg; /* completed by the main thread meanwhile */
    static heist_future *t[ROUND];
    for (long i = 0; i < ROUND; i++) {
        t[i] = heist_spawn(NULL, worker_task, (void *)i);
        CHECK(t[i]);
        if (!t[i])
            return NULL;
    }
    heist_future *any = heist_any(t, ROUND);
    heist_future *all = heist_gather(t, ROUND);
    CHECK(any && all);
    CHECK(heist_future_then(all, cb, NULL) == 0);
    CHECK(heist_await(any, NULL) == 0);
    CHECK(heist_await(all, NULL) == 0);
    heist_future_unref(any);
    heist_future_unref(all);
    for (long i = 0; i < ROUND; i++) {
        void *v = NULL;
        CHECK(heist_future_result(t[i], &v) == 0 && (long)v == i);
        heist_future_unref(t[i]);
    }
    /* cancels */
    heist_future *s[64];
    for (int i = 0; i < 64; i++)
        s[i] = heist_spawn(NULL, sleeper, NULL);
    for (int i = 0; i < 64; i++) {
        heist_future_cancel(s[i]);
        CHECK(heist_await(s[i], NULL) == ECANCELED);
        heist_future_unref(s[i]);
    }
    /* plain futures, completed by the main thread */
    for (int i = 0; i < 16; i++) {
        void *v = NULL;
        CHECK(heist_await(plain[i], &v) == 0 && (long)v == i);
    }
    return NULL;
}

static unsigned env_uint(const char *name, unsigned dflt)
{
    const char *v = getenv(name);
    return v && *v ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

int main(void)
{
    unsigned secs = env_uint("HEIST_SOAK_SECONDS", 60);
    long slack = (long)env_uint("HEIST_SOAK_SLACK_KB", 2048);
    heist_config cfg = {.workers = 2};
    heist_sched *s = NULL;
    int r = heist_sched_new(&cfg, &s);
    if (r) {
        fprintf(stderr, "soak: heist_sched_new: %d\n", r);
        return 2;
    }
    uint64_t t0 = ht_now_ns(), dur = (uint64_t)secs * 1000000000u;
    long first_max = 0, later_max = 0, rounds = 0;
    int tenth = 0;
    printf("soak: %u s; RSS at start %ld KiB\n", secs, rss_kb());
    for (;;) {
        uint64_t el = ht_now_ns() - t0;
        if (el >= dur)
            break;
        heist_future *plain[16];
        for (int i = 0; i < 16; i++)
            plain[i] = heist_future_new();
        heist_future *m = heist_spawn(s, round_main, plain);
        for (int i = 0; i < 16; i++)
            heist_future_set_result(plain[i], (void *)(long)i);
        CHECK(m && heist_await(m, NULL) == 0);
        heist_future_unref(m);
        for (int i = 0; i < 16; i++)
            heist_future_unref(plain[i]);
        rounds++;
        long rss = rss_kb();
        if (el < dur / 10) {
            if (rss > first_max)
                first_max = rss;
        } else if (rss > later_max) {
            later_max = rss;
        }
        if ((int)(el * 10 / dur) > tenth) {
            tenth = (int)(el * 10 / dur);
            printf("soak: %d/10: %ld rounds, RSS %ld KiB\n", tenth, rounds,
                   rss);
            fflush(stdout);
        }
        if (atomic_load(&bad))
            break;
    }
    CHECK(heist_sched_free(s) == 0);
    CHECK(atomic_load(&cb_runs) == rounds);
    printf("soak: %ld rounds; RSS max %ld KiB in the first tenth, %ld KiB "
           "after\n", rounds, first_max, later_max);
    if (atomic_load(&bad))
        return 1;
    if (later_max > first_max + slack) {
        fprintf(stderr,
                "soak: FAIL: RSS grew by %ld KiB after the first tenth "
                "(slack %ld KiB)\n", later_max - first_max, slack);
        return 1;
    }
    printf("soak: ok\n");
    return 0;
}
