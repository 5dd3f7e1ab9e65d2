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
 * earliest deadline, then takes each due node out of the heap and calls its
 * fire function under the lock (a wait node's claims the wait and queues its
 * fiber: wait.c); it holds no worker. The heap holds one reference to each
 * armed node, which fire takes over. A wait that ends otherwise
 * (completion, cancel) disarms its node under the same lock, so it finds the
 * node either still armed (and removes it) or already fired, and a
 * cancelled one-hour sleep does not stay in the heap. A wait can also end
 * before its node is armed (a cancel races the start of a sleep): arming
 * asks the node, under the lock, whether it is still wanted, so a node is
 * never armed after its waiter's disarm found nothing to remove.
 */
#include "timer.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

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
    if (pthread_mutex_init(&t->lock, NULL)) {
        pthread_cond_destroy(&t->cond);
        return ENOMEM;
    }
    t->n = t->reserved = 0;
    t->cap = 64;
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
    heist__on_timer_thread = true;
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        if (t->n == 0) {
            pthread_cond_wait(&t->cond, &t->lock);
            continue;
        }
        struct heist__timer_node *n = t->heap[0];
        uint64_t now = heist__now_ns();
        if (n->deadline <= now) {
            heap_remove(t, 0);
            /* Under the lock, so a waiter that ended otherwise and disarms
             * (under the lock) finds the node gone or still ours. */
            n->fire(n);
            continue;
        }
        struct timespec ts = {.tv_sec = (time_t)(n->deadline / 1000000000u),
                              .tv_nsec = (long)(n->deadline % 1000000000u)};
        pthread_cond_timedwait(&t->cond, &t->lock, &ts);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int heist__timer_reserve(struct heist__timers *t)
{
    pthread_mutex_lock(&t->lock);
    if (t->n + t->reserved == t->cap) {
        size_t cap = t->cap * 2;
        struct heist__timer_node **h = realloc(t->heap, cap * sizeof(*h));
        if (!h) {
            pthread_mutex_unlock(&t->lock);
            return ENOMEM;
        }
        t->heap = h;
        t->cap = cap;
    }
    t->reserved++;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

void heist__timer_unreserve(struct heist__timers *t)
{
    pthread_mutex_lock(&t->lock);
    t->reserved--;
    pthread_mutex_unlock(&t->lock);
}

bool heist__timer_arm(struct heist__timers *t, struct heist__timer_node *n,
                      bool (*wanted)(struct heist__timer_node *n))
{
    pthread_mutex_lock(&t->lock);
    t->reserved--;
    bool arm = wanted(n);
    if (arm) {
        heap_push(t, n); /* room: the reservation */
        if (n->heap_idx == 0)
            pthread_cond_signal(&t->cond);
    }
    pthread_mutex_unlock(&t->lock);
    return arm;
}

void heist__timer_rearm_in_fire(struct heist__timers *t,
                                struct heist__timer_node *n,
                                uint64_t deadline)
{
    /* Room: timer_main took n out of the heap just before calling its
     * fire, and nothing else ran under the lock since. */
    n->deadline = deadline;
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
