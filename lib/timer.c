/*
 * timer.c - deadlines of sleeps and timed awaits: a binary min-heap of timer
 * nodes served by one timer thread per scheduler.
 *
 * Nothing here can fail once a wait has begun: the thread is started with
 * the scheduler (heist__timers_init), and a waiter reserves its heap slot
 * before it suspends (heist__timer_reserve, which may say ENOMEM while the
 * caller can still return it); arming then consumes the reservation and
 * cannot fail, so no sleep or timeout ever ends early for want of memory.
 *
 * The thread sleeps on a condition variable (CLOCK_MONOTONIC) until the
 * earliest deadline, then takes the due nodes out of the heap, up to
 * FIRE_BATCH at a time, and calls their fire functions after releasing the
 * lock (a wait node's claims the wait and queues its fiber: wait.c); it
 * holds no worker. The heap holds one reference to each armed node, which
 * fire takes over. A wait that ends otherwise (completion, cancel) disarms
 * its node under the same lock, so it finds the node either still armed
 * (and removes it) or taken out to fire, and a cancelled one-hour sleep
 * does not stay in the heap. A node taken out but not fired yet is the
 * timer thread's: its disarm says "fired", and the fire, when it comes,
 * finds the wait claimed and only drops the heap's reference. A node that
 * must fire under the lock (node->locked: the stack pool's trim, whose
 * owner's disarm must mean "not running") is fired before the lock is
 * released. Firing outside the lock: the workers that arm the next
 * sleeps no longer queue behind a batch of wake-ups (each one an injection
 * and perhaps a futex wake). bench/sleeps_heist 30000 on 2 workers, warm,
 * medians of 15 interleaved rounds on the 2-core VM: 68.6 ms before, 64.8
 * with the adaptive lock below alone, 54.1 with this too (1 worker: 38.8,
 * 38.3, 38.4).
 *
 * A wait can also end before its node is armed (a cancel races the start
 * of a sleep): arming asks the node, under the lock, whether it is still
 * wanted, so a node is never armed after its waiter's disarm found nothing
 * to remove.
 *
 * Reservations take no lock: `avail` counts the heap's slots that are
 * neither used nor promised (cap - n - promised), and a reservation is one
 * decrement of it that found it positive; only a reservation that finds
 * none takes the lock, to double the heap. Each sleep so takes the lock
 * twice (its arming, and its removal by the timer thread) rather than
 * three times.
 *
 * The lock is adaptive (it spins a little before it sleeps in the kernel):
 * every critical section is a few heap steps, and on 2 cores the holder is
 * usually running (heist__mutex_init_short).
 */
#include "timer.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

/* Due nodes taken out of the heap per lock hold. */
enum { FIRE_BATCH = 64 };

static void *timer_main(void *arg);

int heist__timers_init(struct heist__timers *t)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca))
        return ENOMEM;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int err = pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (err)
        return ENOMEM;
    if (heist__mutex_init_short(&t->lock)) {
        pthread_cond_destroy(&t->cond);
        return ENOMEM;
    }
    t->n = 0;
    t->cap = 64;
    atomic_init(&t->avail, (int64_t)t->cap);
    t->stop = false;
    t->heap = malloc(t->cap * sizeof(*t->heap));
    pthread_attr_t attr;
    err = t->heap ? pthread_attr_init(&attr) : ENOMEM;
    if (!err) {
        pthread_attr_setstacksize(&attr, 256 * 1024);
        err = pthread_create(&t->thread, &attr, timer_main, t);
        pthread_attr_destroy(&attr);
        if (err)
            err = err == EAGAIN ? EAGAIN : ENOMEM;
    }
    if (err) {
        free(t->heap);
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
    free(t->heap);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
}

static void heap_set(struct heist__timers *t, size_t i, struct heist__timer_node *n)
{
    t->heap[i] = n;
    n->heap_idx = i;
}

static void sift_up(struct heist__timers *t, size_t i)
{
    struct heist__timer_node *n = t->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (t->heap[p]->deadline <= n->deadline)
            break;
        heap_set(t, i, t->heap[p]);
        i = p;
    }
    heap_set(t, i, n);
}

static void sift_down(struct heist__timers *t, size_t i)
{
    struct heist__timer_node *n = t->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= t->n)
            break;
        if (c + 1 < t->n && t->heap[c + 1]->deadline < t->heap[c]->deadline)
            c++;
        if (t->heap[c]->deadline >= n->deadline)
            break;
        heap_set(t, i, t->heap[c]);
        i = c;
    }
    heap_set(t, i, n);
}

/* Adds n (its deadline set); the caller made sure of the room. */
static void heap_push(struct heist__timers *t, struct heist__timer_node *n)
{
    t->heap[t->n] = n;
    n->heap_idx = t->n;
    t->n++;
    sift_up(t, t->n - 1);
}

static void heap_remove(struct heist__timers *t, size_t i)
{
    struct heist__timer_node *n = t->heap[i];
    n->heap_idx = SIZE_MAX;
    t->n--;
    /* Relaxed: a count of free slots (see the opening comment); the heap
     * itself is read and written under the lock only. */
    atomic_fetch_add_explicit(&t->avail, 1, memory_order_relaxed);
    if (i == t->n)
        return;
    heap_set(t, i, t->heap[t->n]);
    /* The moved node may belong above or below i. */
    sift_down(t, i);
    sift_up(t, i);
}

__thread bool heist__on_timer_thread;

static void *timer_main(void *arg)
{
    struct heist__timers *t = arg;
    struct heist__timer_node *batch[FIRE_BATCH];
    heist__on_timer_thread = true;
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        if (t->n == 0) {
            pthread_cond_wait(&t->cond, &t->lock);
            continue;
        }
        uint64_t now = heist__now_ns();
        size_t k = 0;
        bool fired = false;
        while (t->n > 0 && t->heap[0]->deadline <= now && k < FIRE_BATCH) {
            struct heist__timer_node *n = t->heap[0];
            heap_remove(t, 0);
            if (n->locked) {
                n->fire(n); /* may arm n again (rearm_in_fire) */
                fired = true;
            } else {
                batch[k++] = n;
            }
        }
        if (k > 0) {
            /* Out of the heap, so a waiter that ended otherwise and
             * disarms (under the lock) finds them gone: they are ours. */
            pthread_mutex_unlock(&t->lock);
            for (size_t i = 0; i < k; i++)
                batch[i]->fire(batch[i]);
            pthread_mutex_lock(&t->lock);
            continue;
        }
        if (fired || t->n == 0)
            continue;
        uint64_t d = t->heap[0]->deadline;
        struct timespec ts = {.tv_sec = (time_t)(d / 1000000000u),
                              .tv_nsec = (long)(d % 1000000000u)};
        pthread_cond_timedwait(&t->cond, &t->lock, &ts);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int heist__timer_reserve(struct heist__timers *t)
{
    for (;;) {
        /* Relaxed (every access to avail): it counts slots and orders
         * nothing; the heap that the slots are in is read and written
         * under the lock only, and cap grows under it before avail does.
         * A decrement that found it positive is a promise of one slot:
         * avail = cap - n - promised never goes below zero but for the
         * moment between a failed decrement and its undo, which only
         * sends another reservation to the lock. */
        if (atomic_fetch_sub_explicit(&t->avail, 1, memory_order_relaxed) > 0)
            return 0;
        atomic_fetch_add_explicit(&t->avail, 1, memory_order_relaxed);
        pthread_mutex_lock(&t->lock);
        if (atomic_load_explicit(&t->avail, memory_order_relaxed) <= 0) {
            size_t cap = t->cap * 2;
            struct heist__timer_node **h = realloc(t->heap, cap * sizeof(*h));
            if (!h) {
                pthread_mutex_unlock(&t->lock);
                return ENOMEM;
            }
            t->heap = h;
            atomic_fetch_add_explicit(&t->avail, (int64_t)(cap - t->cap),
                                      memory_order_relaxed);
            t->cap = cap;
        }
        pthread_mutex_unlock(&t->lock);
    }
}

void heist__timer_unreserve(struct heist__timers *t)
{
    /* Relaxed: see heist__timer_reserve. */
    atomic_fetch_add_explicit(&t->avail, 1, memory_order_relaxed);
}

bool heist__timer_arm(struct heist__timers *t, struct heist__timer_node *n,
                      bool (*wanted)(struct heist__timer_node *n))
{
    pthread_mutex_lock(&t->lock);
    bool arm = wanted(n);
    if (arm) {
        /* Room: the reservation (its slot moves from promised to used,
         * so avail stays as it is). */
        heap_push(t, n);
        if (n->heap_idx == 0)
            pthread_cond_signal(&t->cond);
    }
    pthread_mutex_unlock(&t->lock);
    if (!arm)
        heist__timer_unreserve(t);
    return arm;
}

void heist__timer_rearm_in_fire(struct heist__timers *t,
                                struct heist__timer_node *n,
                                uint64_t deadline)
{
    /* Room: timer_main took n out of the heap just before calling its
     * fire (under the lock, n->locked), and nothing else ran under the
     * lock since; the slot its removal counted free is used again.
     * Relaxed: see heist__timer_reserve. */
    n->deadline = deadline;
    atomic_fetch_sub_explicit(&t->avail, 1, memory_order_relaxed);
    heap_push(t, n);
    /* timer_main looks at the heap's top again after fire returns: no
     * signal needed. */
}

bool heist__timer_disarm(struct heist__timers *t, struct heist__timer_node *n)
{
    pthread_mutex_lock(&t->lock);
    bool armed = n->heap_idx != SIZE_MAX;
    if (armed)
        heap_remove(t, n->heap_idx);
    pthread_mutex_unlock(&t->lock);
    return armed;
}
