/*
 * test_timer.c - the timer heaps and the stack pool's trim, which fires
 * under its heap's lock (lib/timer.c, lib/stack.c). White-box
 * (heist_internal): it drives the timers directly, and it slows the trim's
 * madvise down (this executable defines madvise, which the static library
 * then calls) to hold a trim open while the scheduler is freed.
 */
#include <criterion/criterion.h>

#include <heist/heist.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"
#include "timer.h"

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- a locked node keeps its slot while it fires ------------------------ */

#define HOUR_NS (3600ull * 1000000000ull)

static struct heist__timers timers;
static struct heist__timer_node far_nodes[64], locked_node, late_node;
static atomic_int phase;

static bool wanted(struct heist__timer_node *n)
{
    (void)n;
    return true;
}

static void far_fire(struct heist__timer_node *n)
{
    (void)n;
}

/* As the trim's fire: waits (for the test, where the trim waits for the
 * stacks' lock), then arms itself again. */
static void locked_fire(struct heist__timer_node *n)
{
    atomic_store(&phase, 1);
    while (atomic_load(&phase) != 2)
        nap_ms(1);
    heist__timer_rearm_in_fire(&timers, n, heist__deadline_after(HOUR_NS));
}

static atomic_int late_reserved;

static void *reserve_late(void *arg)
{
    (void)arg;
    atomic_store(&late_reserved, heist__timer_reserve(&timers, &late_node, 0));
    return NULL;
}

static void node_init(struct heist__timer_node *n, void (*fire)(
                                                       struct heist__timer_node *))
{
    n->heap_idx = SIZE_MAX;
    n->shard = NULL;
    n->fire = fire;
    n->locked = false;
}

/* A full heap (its 64 first slots): 63 far deadlines and a locked node
 * due at once. While its fire runs, a reservation (no lock) must not be
 * handed the slot the fire will arm the node in again: before, it was,
 * and its arm pushed a 65th node into 64 slots (ASan: a heap buffer
 * overflow in heap_push). */
Test(timer, locked_fire_keeps_its_slot)
{
    cr_assert_eq(heist__timers_init(&timers, 1), 0);
    for (int i = 0; i < 63; i++) {
        node_init(&far_nodes[i], far_fire);
        cr_assert_eq(heist__timer_reserve(&timers, &far_nodes[i], 0), 0);
        far_nodes[i].deadline = heist__deadline_after(HOUR_NS);
        cr_assert(heist__timer_arm(&timers, &far_nodes[i], wanted));
    }
    struct heist__timer_shard *h = &timers.shards[0];
    pthread_mutex_lock(&h->lock);
    size_t n = h->n, cap = h->cap;
    pthread_mutex_unlock(&h->lock);
    cr_assert_eq(n + 1, cap,
                 "%zu nodes in %zu slots: the test needs one slot left", n,
                 cap);
    node_init(&locked_node, locked_fire);
    locked_node.locked = true;
    cr_assert_eq(heist__timer_reserve(&timers, &locked_node, 0), 0);
    locked_node.deadline = heist__deadline_after(1000000);
    cr_assert(heist__timer_arm(&timers, &locked_node, wanted));
    uint64_t deadline = ht_now_ns() + 30ull * 1000000000u;
    while (atomic_load(&phase) != 1 && ht_now_ns() < deadline)
        nap_ms(1);
    cr_assert_eq(atomic_load(&phase), 1, "the locked node never fired");
    /* Meanwhile a waiter reserves (on another thread: with the fix it
     * waits for the shard's lock, which the fire holds). */
    node_init(&late_node, far_fire);
    atomic_store(&late_reserved, -1);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, reserve_late, NULL), 0);
    /* Before the fix the reservation took the fire's slot at once; now it
     * waits for the lock. Give it a second either way. */
    deadline = ht_now_ns() + 1000000000u;
    while (atomic_load(&late_reserved) == -1 && ht_now_ns() < deadline)
        nap_ms(1);
    atomic_store(&phase, 2);
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&late_reserved), 0);
    late_node.deadline = heist__deadline_after(HOUR_NS);
    cr_assert(heist__timer_arm(&timers, &late_node, wanted));
    pthread_mutex_lock(&h->lock);
    n = h->n;
    cap = h->cap;
    long avail = (long)atomic_load(&h->avail);
    pthread_mutex_unlock(&h->lock);
    cr_assert_eq(n, 65, "nodes in the heap: %zu", n);
    cr_assert_leq(n, cap, "%zu nodes in a heap of %zu slots", n, cap);
    cr_assert_eq(avail, (long)(cap - n), "free slots counted: %ld of %zu",
                 avail, cap - n);
    for (int i = 0; i < 63; i++)
        cr_assert(heist__timer_disarm(&timers, &far_nodes[i]));
    cr_assert(heist__timer_disarm(&timers, &locked_node));
    cr_assert(heist__timer_disarm(&timers, &late_node));
    heist__timers_fini(&timers);
}

/* ---- the trim running while the scheduler is freed ---------------------- */

/* While armed, the first MADV_DONTNEED (the trim's first give-back) takes
 * 500 ms: the trim is then running, on the timer thread, for that long. */
static atomic_int slow_armed, in_trim, trim_resumed;

int madvise(void *addr, size_t len, int advice)
{
    if (advice == MADV_DONTNEED && atomic_exchange(&slow_armed, 0)) {
        atomic_store(&in_trim, 1);
        nap_ms(500);
        atomic_store(&trim_resumed, 1);
    }
    return (int)syscall(SYS_madvise, addr, len, advice);
}

/* A burst of n waiters that uses no timer (ht_gate_burst sleeps, and a
 * worker's sleep could wait for the trim, which would close the window):
 * every waiter counts itself and awaits the gate; the last to start
 * completes `started`, which main awaits; then main completes the gate. */
struct quiet_burst {
    heist_future *gate, *started;
    long n;
    atomic_long count;
};

static void *quiet_waiter(void *arg)
{
    struct quiet_burst *b = arg;
    if (atomic_fetch_add(&b->count, 1) + 1 == b->n)
        heist_future_set_result(b->started, NULL);
    return (void *)(intptr_t)heist_await(b->gate, NULL);
}

static void *quiet_main(void *arg)
{
    struct quiet_burst *b = arg;
    heist_future **t = calloc((size_t)b->n, sizeof *t);
    intptr_t bad = t == NULL;
    for (long i = 0; !bad && i < b->n; i++)
        bad = (t[i] = heist_spawn(NULL, quiet_waiter, b)) == NULL;
    if (!bad)
        bad = heist_await(b->started, NULL) != 0;
    heist_future_set_result(b->gate, NULL);
    for (long i = 0; t && i < b->n && t[i]; i++) {
        void *r = NULL;
        if (heist_await(t[i], &r) != 0 || r != NULL)
            bad = 1;
        heist_future_unref(t[i]);
    }
    free(t);
    return (void *)bad;
}

static int timerless_burst(heist_sched *s, long n)
{
    struct quiet_burst b = {.gate = heist_future_new(),
                            .started = heist_future_new(),
                            .n = n};
    void *bad = (void *)1;
    int e = b.gate && b.started ? heist_run(s, quiet_main, &b, &bad) : ENOMEM;
    if (b.gate)
        heist_future_unref(b.gate);
    if (b.started)
        heist_future_unref(b.started);
    return e ? e : bad ? -1 : 0;
}

/* A burst of waiters leaves the scheduler's idle stacks over a one-page
 * budget, and a second later the trim gives them back. While it runs, a
 * smaller burst takes stacks and spills them back, and the scheduler is
 * freed. Before, that spill armed the trim again in its own worker's heap
 * (the trim had cleared its flag as it began), the free's disarm took that
 * heap's lock and not the one the running trim held, and the stacks were
 * unmapped under the trim (a segfault in fibers_give_back, or a destroyed
 * mutex taken). A round counts if its burst ended while the trim was held;
 * at least one of three must. */
Test(timer, trim_running_while_the_scheduler_is_freed)
{
    long big = HT_SCALE(2000, 500), small = HT_SCALE(1000, 100);
    int hits = 0;
    for (int it = 0; it < 3; it++) {
        heist_config cfg = {.workers = 8, .stack_pool = 4096};
        heist_sched *s = NULL;
        cr_assert_eq(heist_sched_new(&cfg, &s), 0);
        cr_assert_eq(ht_gate_burst(s, big), 0);
        atomic_store(&in_trim, 0);
        atomic_store(&trim_resumed, 0);
        atomic_store(&slow_armed, 1);
        uint64_t deadline = ht_now_ns() + 30ull * 1000000000u;
        while (!atomic_load(&in_trim) && ht_now_ns() < deadline)
            nap_ms(5);
        cr_assert(atomic_load(&in_trim), "round %d: no trim began", it);
        cr_assert_eq(timerless_burst(s, small), 0);
        /* The burst spilled while the trim was held: the case tested. */
        hits += !atomic_load(&trim_resumed);
        cr_assert_eq(heist_sched_free(s), 0);
        atomic_store(&slow_armed, 0);
    }
    cr_assert_gt(hits, 0, "no burst ended while the trim was held: nothing "
                          "was tested");
}
