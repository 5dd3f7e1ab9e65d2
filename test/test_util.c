/* test_util.c - see test_util.h. */
#include "test_util.h"

#include <heist/heist.h>

#include <errno.h>
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

long ht_fib_seq(long n)
{
    long a = 0, b = 1;
    for (long i = 0; i < n; i++) {
        long c = a + b;
        a = b;
        b = c;
    }
    return a;
}

void *ht_fib(void *arg)
{
    long n = (long)arg;
    if (n < 2)
        return (void *)n;
    heist_task t;
    void *a = NULL;
    heist_fork(&t, ht_fib, (void *)(n - 1));
    void *b = ht_fib((void *)(n - 2));
    if (heist_join(&t, &a) != 0 || a == HT_FIB_FAILED || b == HT_FIB_FAILED)
        return HT_FIB_FAILED;
    return (void *)((long)a + (long)b);
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

/* ---- ht_gate_burst -------------------------------------------------------- */

struct gate_burst {
    heist_sched *s;
    heist_future *gate;
    long n;
    atomic_long ran; /* waiters past their await */
    atomic_int err;  /* the first error a task met */
};

static void burst_err(struct gate_burst *b, int e)
{
    int none = 0;
    /* Relaxed: read after heist_run returned (the run's end orders it);
     * the exchange keeps the first. */
    atomic_compare_exchange_strong_explicit(&b->err, &none, e,
                                            memory_order_relaxed,
                                            memory_order_relaxed);
}

static void *gate_waiter(void *arg)
{
    struct gate_burst *b = arg;
    int e = heist_await(b->gate, NULL);
    if (e)
        burst_err(b, e);
    else /* Relaxed: as err. */
        atomic_fetch_add_explicit(&b->ran, 1, memory_order_relaxed);
    return NULL;
}

static int burst_suspends(heist_sched *s, uint64_t *out)
{
    heist_stats st;
    int e = heist_sched_stats(s, &st);
    *out = st.total.suspends;
    return e;
}

static void *burst_main(void *arg)
{
    struct gate_burst *b = arg;
    uint64_t base, now, own = 0;
    heist_future **t = calloc((size_t)b->n, sizeof *t);
    int e = t ? burst_suspends(b->s, &base) : ENOMEM;
    long spawned = 0;
    while (!e && spawned < b->n) {
        heist_future *f = heist_spawn(NULL, gate_waiter, b);
        if (f)
            t[spawned++] = f;
        else
            e = errno ? errno : ENOMEM;
    }
    while (!e && !(e = burst_suspends(b->s, &now)) &&
           now - base - own < (uint64_t)b->n) {
        e = heist_sleep(1000000);
        own++;
    }
    /* Open the gate whatever happened: no waiter is left behind. */
    int e2 = heist_future_set_result(b->gate, NULL);
    if (!e)
        e = e2;
    if (spawned > 0) {
        heist_future *all = heist_gather(t, (size_t)spawned);
        int e3 = all ? heist_await(all, NULL) : ENOMEM;
        if (!e)
            e = e3;
        if (all)
            heist_future_unref(all);
    }
    for (long i = 0; i < spawned; i++)
        heist_future_unref(t[i]);
    free(t);
    if (e)
        burst_err(b, e);
    return NULL;
}

int ht_gate_burst(struct heist_sched *s, long n)
{
    struct gate_burst b = {.s = s, .n = n};
    atomic_init(&b.ran, 0);
    atomic_init(&b.err, 0);
    if (!(b.gate = heist_future_new()))
        return ENOMEM;
    int e = heist_run(s, burst_main, &b, NULL);
    heist_future_unref(b.gate);
    if (e)
        return e;
    /* Relaxed: heist_run returned (see burst_err). */
    if ((e = atomic_load_explicit(&b.err, memory_order_relaxed)))
        return e;
    return atomic_load_explicit(&b.ran, memory_order_relaxed) == n ? 0 : -1;
}

/* ---- one task per worker ------------------------------------------------- */

struct round {
    atomic_uint arrived;
    unsigned workers;
    atomic_int timed_out;
    void (*after)(unsigned i, void *arg);
    void *arg;
    int worker[HT_ROUND_MAX];
};

struct round_slot {
    struct round *r;
    unsigned i;
};

static void *round_hold(void *arg)
{
    struct round_slot *sl = arg;
    struct round *r = sl->r;
    r->worker[sl->i] = heist_worker_index();
    atomic_fetch_add(&r->arrived, 1);
    uint64_t limit = ht_now_ns() + 30ull * 1000000000u;
    while (atomic_load(&r->arrived) < r->workers) {
        if (ht_now_ns() > limit) {
            atomic_store(&r->timed_out, 1);
            break;
        }
        sched_yield();
    }
    if (r->after)
        r->after(sl->i, r->arg);
    return NULL;
}

int ht_round_every_worker(struct heist_sched *s, unsigned workers,
                          void (*after)(unsigned i, void *arg), void *arg)
{
    if (workers == 0 || workers > HT_ROUND_MAX)
        return EINVAL;
    struct round r = {.workers = workers, .after = after, .arg = arg};
    struct round_slot slot[HT_ROUND_MAX];
    heist_future *t[HT_ROUND_MAX];
    int e = 0;
    unsigned spawned = 0;
    for (; spawned < workers; spawned++) {
        slot[spawned] = (struct round_slot){.r = &r, .i = spawned};
        t[spawned] = heist_spawn(s, round_hold, &slot[spawned]);
        if (!t[spawned]) {
            e = errno;
            /* Those spawned cannot all start: let them go. */
            atomic_store(&r.arrived, workers);
            break;
        }
    }
    for (unsigned i = 0; i < spawned; i++) {
        int e2 = heist_await(t[i], NULL);
        if (!e)
            e = e2;
        heist_future_unref(t[i]);
    }
    if (e)
        return e;
    if (atomic_load(&r.timed_out))
        return -1;
    bool seen[HT_ROUND_MAX] = {false};
    for (unsigned i = 0; i < workers; i++) {
        int w = r.worker[i];
        if (w < 0 || (unsigned)w >= workers || seen[w])
            return -2;
        seen[w] = true;
    }
    return 0;
}
