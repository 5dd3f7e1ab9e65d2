/*
 * timer.c - deadlines of sleeps and timed awaits: binary min-heaps of timer
 * nodes, one per worker (a shard), served by one timer thread per
 * scheduler.
 *
 * Nothing here can fail once a wait has begun: the thread is started with
 * the scheduler (heist__timers_init), and a waiter reserves its heap slot
 * before it suspends (heist__timer_reserve, which may say ENOMEM while the
 * caller can still return it); arming then consumes the reservation and
 * cannot fail, so no sleep or timeout ever ends early for want of memory.
 *
 * Shards. A node goes into the shard that its reservation named: the
 * waiter's worker's. Each shard has its own lock, heap and slot count, on
 * lines of their own, so workers that sleep at once do not share a lock
 * or a heap; each lock is shared only with the timer thread, which takes
 * the due nodes out. With one heap for all, two workers that each started
 * sleeps queued on its lock and passed its lines back and forth (perf:
 * lll_lock_wait and lll_lock_wake under fiber_wait and wait_publish).
 *
 * Each shard publishes the deadline at the top of its heap (`top`,
 * UINT64_MAX when empty). The timer thread sleeps on a condition variable
 * (CLOCK_MONOTONIC) until the earliest top; while it sleeps, `next` holds
 * that deadline. An arm that puts a node on top of its shard with an
 * earlier deadline than `next` signals the thread (under the thread's lock,
 * which the thread holds from its last look at the tops until its wait
 * begins, so the signal cannot fall between the two). No lost wake-up:
 * the thread stores `next` and then loads every top again (seq_cst); an
 * arm stores its shard's top and then loads `next` (seq_cst). In the total
 * order of those four, either the thread's second look sees the new top
 * (and it does not sleep past it), or the arm's load comes after the
 * thread's store and sees `next` (or the 0 that a woken thread stores):
 * then a deadline earlier than `next` signals, and a thread that stored 0
 * is awake and looks at the tops again before it sleeps (its store of 0 comes
 * before that look, and the arm's store of the top before its load saw
 * 0). Every other arm adds a later deadline than one the thread already
 * waits for: nobody wakes it.
 *
 * Firing: the thread takes the due nodes of each shard out of its heap, up
 * to FIRE_BATCH at a time, and calls their fire functions after releasing
 * the shard's lock (a wait node's claims the wait and queues its fiber:
 * wait.c); it holds no worker. The heap holds one reference to each armed
 * node, which fire takes over. A wait that ends otherwise (completion,
 * cancel) disarms its node under its shard's lock, so it finds the node
 * either still armed (and removes it) or taken out to fire, and a
 * cancelled one-hour sleep does not stay in the heap. A node taken out but
 * not fired yet is the timer thread's: its disarm says "fired", and the
 * fire, when it comes, finds the wait claimed and only drops the heap's
 * reference. A node that must fire under the lock (node->locked: the stack
 * pool's trim, whose owner's disarm must mean "not running") is fired
 * before the lock is released, and keeps its heap slot until its fire
 * returns (the fire may arm it again there, while reservations, which
 * take no lock, may have taken every free slot). Firing outside the lock: the workers that
 * arm the next sleeps do not queue behind a batch of wake-ups (each one
 * an injection and perhaps a futex wake).
 *
 * A wait can also end before its node is armed (a cancel races the start
 * of a sleep): arming asks the node, under the lock, whether it is still
 * wanted, so a node is never armed after its waiter's disarm found nothing
 * to remove.
 *
 * Reservations take no lock: a shard's `avail` counts its heap's slots
 * that are neither used nor promised (cap - n - promised), and a
 * reservation is one decrement of it that found it positive; only a
 * reservation that finds none takes the lock, to double the heap. Each
 * sleep so takes its shard's lock twice: its arming, and its removal by
 * the timer thread.
 *
 * The locks are adaptive (they spin a little before they sleep in the
 * kernel): every critical section is a few heap steps, and on 2 cores the
 * holder is usually running (heist__mutex_init_short).
 *
 * Measured (bench/sleeps_heist 30000 on 2 workers, warm, medians of 15
 * interleaved rounds on the 2-core VM): one heap with the timer thread
 * firing under its lock, 68.6 ms; adaptive lock alone, 64.8; firing
 * outside the lock and lock-free reservations, 54.1 (1 worker: 38.8,
 * 38.3, 38.4). The shards: see README, "Against the targets".
 */
#include "timer.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

/* Due nodes taken out of a shard's heap per hold of its lock. */
enum { FIRE_BATCH = 64, SHARD_CAP0 = 64 };

static void *timer_main(void *arg);

static int shard_init(struct heist__timer_shard *h)
{
    if (heist__mutex_init_short(&h->lock))
        return ENOMEM;
    h->n = 0;
    h->cap = SHARD_CAP0;
    h->heap = malloc(h->cap * sizeof(*h->heap));
    if (!h->heap) {
        pthread_mutex_destroy(&h->lock);
        return ENOMEM;
    }
    atomic_init(&h->avail, (int64_t)h->cap);
    atomic_init(&h->top, UINT64_MAX);
    return 0;
}

static void shard_fini(struct heist__timer_shard *h)
{
    free(h->heap);
    pthread_mutex_destroy(&h->lock);
}

int heist__timers_init(struct heist__timers *t, unsigned nshards)
{
    pthread_condattr_t ca;
    if (nshards == 0)
        nshards = 1;
    if (pthread_condattr_init(&ca))
        return ENOMEM;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int err = pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (err)
        return ENOMEM;
    if (pthread_mutex_init(&t->lock, NULL)) {
        pthread_cond_destroy(&t->cond);
        return ENOMEM;
    }
    t->stop = false;
    atomic_init(&t->next, 0);
    t->nshards = 0;
    t->shards = aligned_alloc(HEIST_CACHELINE, nshards * sizeof(*t->shards));
    err = t->shards ? 0 : ENOMEM;
    while (!err && t->nshards < nshards) {
        err = shard_init(&t->shards[t->nshards]);
        if (!err)
            t->nshards++; /* only those made are unmade below */
    }
    pthread_attr_t attr;
    if (!err)
        err = pthread_attr_init(&attr) ? ENOMEM : 0;
    if (!err) {
        pthread_attr_setstacksize(&attr, 256 * 1024);
        err = pthread_create(&t->thread, &attr, timer_main, t);
        pthread_attr_destroy(&attr);
        if (err)
            err = err == EAGAIN ? EAGAIN : ENOMEM;
    }
    if (err) {
        for (unsigned i = 0; i < t->nshards; i++)
            shard_fini(&t->shards[i]);
        free(t->shards);
        pthread_mutex_destroy(&t->lock);
        pthread_cond_destroy(&t->cond);
        return err;
    }
    return 0;
}

void heist__timers_fini(struct heist__timers *t)
{
    pthread_mutex_lock(&t->lock);
    t->stop = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    /* Every wait has ended (the scheduler had no task left). */
    for (unsigned i = 0; i < t->nshards; i++)
        shard_fini(&t->shards[i]);
    free(t->shards);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
}

static void heap_set(struct heist__timer_shard *h, size_t i,
                     struct heist__timer_node *n)
{
    h->heap[i] = n;
    n->heap_idx = i;
}

static void sift_up(struct heist__timer_shard *h, size_t i)
{
    struct heist__timer_node *n = h->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->heap[p]->deadline <= n->deadline)
            break;
        heap_set(h, i, h->heap[p]);
        i = p;
    }
    heap_set(h, i, n);
}

static void sift_down(struct heist__timer_shard *h, size_t i)
{
    struct heist__timer_node *n = h->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->heap[c + 1]->deadline < h->heap[c]->deadline)
            c++;
        if (h->heap[c]->deadline >= n->deadline)
            break;
        heap_set(h, i, h->heap[c]);
        i = c;
    }
    heap_set(h, i, n);
}

/* Publishes the deadline at the top of h's heap (under h's lock), if it
 * changed; returns it. seq_cst: the store of the wake-up argument (top of
 * file), against the timer thread's loads of the tops after its store of
 * `next`. */
static uint64_t top_publish(struct heist__timer_shard *h)
{
    uint64_t d = h->n ? h->heap[0]->deadline : UINT64_MAX;
    /* Relaxed: only the holder of h's lock stores it. */
    if (atomic_load_explicit(&h->top, memory_order_relaxed) != d)
        atomic_store_explicit(&h->top, d, memory_order_seq_cst);
    return d;
}

/* Adds n (its deadline set); the caller made sure of the room. */
static void heap_push(struct heist__timer_shard *h, struct heist__timer_node *n)
{
    h->heap[h->n] = n;
    n->heap_idx = h->n;
    h->n++;
    sift_up(h, h->n - 1);
}

/* Gives back one slot of h's heap (a node left it and holds it no more).
 * Relaxed: a count of free slots (see the opening comment); the heap
 * itself is read and written under the lock only. */
static void slot_free(struct heist__timer_shard *h)
{
    atomic_fetch_add_explicit(&h->avail, 1, memory_order_relaxed);
}

/* Takes the node at i out of h's heap; its slot stays promised to it
 * (the caller frees it, slot_free, or the node is armed again in it). */
static void heap_take(struct heist__timer_shard *h, size_t i)
{
    struct heist__timer_node *n = h->heap[i];
    n->heap_idx = SIZE_MAX;
    h->n--;
    if (i == h->n)
        return;
    heap_set(h, i, h->heap[h->n]);
    /* The moved node may belong above or below i. */
    sift_down(h, i);
    sift_up(h, i);
}

__thread bool heist__on_timer_thread;

/* Fires h's nodes due at now, a batch per hold of its lock. */
static void shard_fire(struct heist__timer_shard *h, uint64_t now)
{
    struct heist__timer_node *batch[FIRE_BATCH];
    for (;;) {
        size_t k = 0;
        pthread_mutex_lock(&h->lock);
        while (h->n > 0 && h->heap[0]->deadline <= now && k < FIRE_BATCH) {
            struct heist__timer_node *n = h->heap[0];
            heap_take(h, 0);
            if (n->locked) {
                /* Its slot stays its own while it fires: a reservation
                 * (no lock) may take every free slot meanwhile, and the
                 * fire may arm n again in it (rearm_in_fire). */
                n->fire(n);
                if (n->heap_idx == SIZE_MAX)
                    slot_free(h);
            } else {
                slot_free(h);
                batch[k++] = n;
            }
        }
        top_publish(h);
        pthread_mutex_unlock(&h->lock);
        /* Out of the heap, so a waiter that ended otherwise and disarms
         * (under the lock) finds them gone: they are ours. */
        for (size_t i = 0; i < k; i++)
            batch[i]->fire(batch[i]);
        if (k < FIRE_BATCH)
            return;
    }
}

/* The earliest top of every shard. seq_cst: the loads of the wake-up
 * argument (top of file). */
static uint64_t earliest(struct heist__timers *t)
{
    uint64_t m = UINT64_MAX;
    for (unsigned i = 0; i < t->nshards; i++) {
        uint64_t d =
            atomic_load_explicit(&t->shards[i].top, memory_order_seq_cst);
        if (d < m)
            m = d;
    }
    return m;
}

/* The thread holds t->lock except while it waits, so an arm's signal
 * (taken under it) cannot fall between its last look and its wait; fire
 * functions, called with it held, must not take it (none does: they queue
 * fibers and wake workers). */
static void *timer_main(void *arg)
{
    struct heist__timers *t = arg;
    heist__on_timer_thread = true;
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        /* Awake: arms need not signal (seq_cst: the argument's store). */
        atomic_store_explicit(&t->next, 0, memory_order_seq_cst);
        uint64_t now = heist__now_ns();
        for (unsigned i = 0; i < t->nshards; i++) {
            struct heist__timer_shard *h = &t->shards[i];
            /* Relaxed: a look; the look below decides whether to sleep. */
            if (atomic_load_explicit(&h->top, memory_order_relaxed) <= now)
                shard_fire(h, now);
        }
        uint64_t m = earliest(t);
        if (m <= heist__now_ns())
            continue;
        /* seq_cst, then the second look: the wake-up argument. */
        atomic_store_explicit(&t->next, m, memory_order_seq_cst);
        if (earliest(t) < m)
            continue;
        if (m == UINT64_MAX) {
            pthread_cond_wait(&t->cond, &t->lock);
        } else {
            struct timespec ts = {.tv_sec = (time_t)(m / 1000000000u),
                                  .tv_nsec = (long)(m % 1000000000u)};
            pthread_cond_timedwait(&t->cond, &t->lock, &ts);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int heist__timer_reserve(struct heist__timers *t, struct heist__timer_node *n,
                         unsigned shard)
{
    struct heist__timer_shard *h = &t->shards[shard % t->nshards];
    n->shard = h;
    for (;;) {
        /* Relaxed (every access to avail): it counts slots and orders
         * nothing; the heap that the slots are in is read and written
         * under the lock only, and cap grows under it before avail does.
         * A decrement that found it positive is a promise of one slot:
         * avail = cap - n - promised never goes below zero but for the
         * moment between a failed decrement and its undo, which only
         * sends another reservation to the lock. */
        if (atomic_fetch_sub_explicit(&h->avail, 1, memory_order_relaxed) > 0)
            return 0;
        atomic_fetch_add_explicit(&h->avail, 1, memory_order_relaxed);
        pthread_mutex_lock(&h->lock);
        if (atomic_load_explicit(&h->avail, memory_order_relaxed) <= 0) {
            size_t cap = h->cap * 2;
            struct heist__timer_node **v = realloc(h->heap, cap * sizeof(*v));
            if (!v) {
                pthread_mutex_unlock(&h->lock);
                n->shard = NULL;
                return ENOMEM;
            }
            h->heap = v;
            atomic_fetch_add_explicit(&h->avail, (int64_t)(cap - h->cap),
                                      memory_order_relaxed);
            h->cap = cap;
        }
        pthread_mutex_unlock(&h->lock);
    }
}

void heist__timer_unreserve(struct heist__timers *t, struct heist__timer_node *n)
{
    (void)t;
    /* Relaxed: see heist__timer_reserve. */
    atomic_fetch_add_explicit(&n->shard->avail, 1, memory_order_relaxed);
}

bool heist__timer_arm(struct heist__timers *t, struct heist__timer_node *n,
                      bool (*wanted)(struct heist__timer_node *n))
{
    struct heist__timer_shard *h = n->shard;
    pthread_mutex_lock(&h->lock);
    bool arm = wanted(n);
    bool first = false;
    if (arm) {
        /* Room: the reservation (its slot moves from promised to used,
         * so avail stays as it is). */
        heap_push(h, n);
        first = n->heap_idx == 0;
        if (first)
            top_publish(h);
    }
    pthread_mutex_unlock(&h->lock);
    if (!arm) {
        heist__timer_unreserve(t, n);
        return false;
    }
    /* seq_cst: the load of the wake-up argument, after the store of our
     * top (top of file). A later deadline than the one the thread sleeps
     * for, or a thread awake (0), needs no signal. */
    if (first &&
        n->deadline < atomic_load_explicit(&t->next, memory_order_seq_cst)) {
        pthread_mutex_lock(&t->lock);
        pthread_cond_signal(&t->cond);
        pthread_mutex_unlock(&t->lock);
    }
    return true;
}

void heist__timer_rearm_in_fire(struct heist__timers *t,
                                struct heist__timer_node *n,
                                uint64_t deadline)
{
    (void)t;
    struct heist__timer_shard *h = n->shard;
    /* Room: shard_fire took n out of the heap just before calling its
     * fire (under the lock, n->locked) and kept its slot for it (a
     * reservation may have taken every other one since). */
    n->deadline = deadline;
    heap_push(h, n);
    /* shard_fire publishes the top before it releases the lock, and
     * timer_main looks at every top again before it sleeps: no signal
     * needed. */
}

bool heist__timer_disarm(struct heist__timers *t, struct heist__timer_node *n)
{
    (void)t;
    struct heist__timer_shard *h = n->shard;
    if (!h)
        return false; /* never reserved, so never armed */
    pthread_mutex_lock(&h->lock);
    bool armed = n->heap_idx != SIZE_MAX;
    if (armed) {
        heap_take(h, n->heap_idx);
        slot_free(h);
        /* A later top (or none) needs no signal: the thread wakes early
         * at worst, and looks again. */
        top_publish(h);
    }
    pthread_mutex_unlock(&h->lock);
    return armed;
}
