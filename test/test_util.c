/* test_util.c - see test_util.h. */
#include "test_util.h"

#include <heist/heist.h>

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

uint64_t ht_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t ht_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

bool ht_wait_at_least(atomic_int *v, int target, unsigned timeout_s)
{
    uint64_t deadline = ht_now_ns() + (uint64_t)timeout_s * 1000000000u;
    for (unsigned i = 0;; i++) {
        if (atomic_load(v) >= target)
            return true;
        if ((i & 1023) == 1023 && ht_now_ns() > deadline)
            return false;
        if ((i & 15) == 15)
            sched_yield();
    }
}

static void *watchdog_main(void *arg)
{
    struct ht_watchdog *w = arg;
    uint64_t last = atomic_load(&w->progress), since = ht_now_ns();
    while (!atomic_load(&w->stop)) {
        struct timespec nap = {0, 100 * 1000 * 1000};
        nanosleep(&nap, NULL);
        uint64_t now = ht_now_ns(), p = atomic_load(&w->progress);
        if (p != last) {
            last = p;
            since = now;
        } else if (now - since > (uint64_t)w->limit_s * 1000000000u) {
            fprintf(stderr,
                    "watchdog: %s: no progress for %u s (progress %llu); "
                    "aborting\n",
                    w->what, w->limit_s, (unsigned long long)p);
            fflush(stderr);
            abort();
        }
    }
    return NULL;
}

void ht_watchdog_start(struct ht_watchdog *w, const char *what,
                       unsigned limit_s)
{
    atomic_init(&w->progress, 0);
    atomic_init(&w->stop, false);
    w->limit_s = limit_s;
    w->what = what;
    if (pthread_create(&w->thread, NULL, watchdog_main, w) != 0) {
        fprintf(stderr, "watchdog: cannot start a thread\n");
        abort();
    }
}

void ht_watchdog_stop(struct ht_watchdog *w)
{
    atomic_store(&w->stop, true);
    pthread_join(w->thread, NULL);
}

/* ---- the push hunt -------------------------------------------------------- */

struct push_hunt {
    atomic_int done;
    int reps;
    struct ht_watchdog *wd;
    uint64_t rng;
};

void *ht_set_flag(void *arg)
{
    /* Release: pairs with the spinner's acquire load of the flag. */
    atomic_store_explicit((atomic_int *)arg, 1, memory_order_release);
    return NULL;
}

static void *push_hunter(void *arg)
{
    struct push_hunt *h = arg;
    for (int i = 0; i < h->reps; i++) {
        uint64_t until = ht_now_ns() + ht_rand(&h->rng) % 60000u;
        while (ht_now_ns() < until)
            ;
        atomic_store_explicit(&h->done, 0, memory_order_relaxed);
        heist_future *c = heist_spawn(NULL, ht_set_flag, &h->done);
        if (!c)
            return (void *)1;
        while (!atomic_load_explicit(&h->done, memory_order_acquire))
            ;
        if (heist_await(c, NULL) != 0)
            return (void *)2;
        heist_future_unref(c);
        ht_watchdog_tick(h->wd);
    }
    return NULL;
}

int ht_push_hunt(heist_sched *s, int reps, uint64_t seed,
                 struct ht_watchdog *wd)
{
    struct push_hunt h = {.reps = reps, .wd = wd, .rng = seed};
    atomic_init(&h.done, 0);
    void *r = (void *)3;
    int err = heist_run(s, push_hunter, &h, &r);
    if (err)
        return 100 + err;
    return (int)(intptr_t)r;
}
