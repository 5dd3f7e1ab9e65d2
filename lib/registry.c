/*
 * registry.c - the schedulers alive in this process, so that a call that
 * reaches a scheduler only through a future (heist_future_then from a
 * thread that is not a worker) can tell a live scheduler from a freed one.
 *
 * Each scheduler gets a process-unique id when it is created; a future
 * records the pointer and the id of the scheduler it was made on. Under one
 * mutex, heist__sched_hold_callback finds (pointer, id) in the list and
 * counts a waiting callback in it, and heist__sched_retire takes a
 * scheduler out of the list only while it has none: one of the two comes
 * first, so a callback is either counted (and heist_sched_free says EBUSY)
 * or refused (EPERM). An id is never reused, so a new scheduler that
 * happens to get a freed one's address is not mistaken for it.
 */
#include "worker.h"

#include <errno.h>

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct heist_sched *reg_head; /* under reg_lock */
static uint64_t reg_next_id = 1;     /* under reg_lock */

void heist__sched_take_id(struct heist_sched *s)
{
    pthread_mutex_lock(&reg_lock);
    s->id = reg_next_id++;
    pthread_mutex_unlock(&reg_lock);
}

void heist__sched_register(struct heist_sched *s)
{
    pthread_mutex_lock(&reg_lock);
    s->reg_next = reg_head;
    reg_head = s;
    pthread_mutex_unlock(&reg_lock);
}

static void unlink_locked(struct heist_sched *s)
{
    for (struct heist_sched **p = &reg_head; *p; p = &(*p)->reg_next)
        if (*p == s) {
            *p = s->reg_next;
            return;
        }
}

bool heist__sched_hold_callback(struct heist_sched *s, uint64_t id)
{
    bool live = false;
    pthread_mutex_lock(&reg_lock);
    for (struct heist_sched *p = reg_head; p; p = p->reg_next)
        if (p == s && p->id == id) {
            /* Relaxed: heist__sched_retire reads it under reg_lock. */
            atomic_fetch_add_explicit(&s->cb_waiting, 1,
                                      memory_order_relaxed);
            live = true;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
    return live;
}

bool heist__sched_if_live(uint64_t id,
                          void (*fn)(struct heist_sched *s, void *arg),
                          void *arg)
{
    bool live = false;
    pthread_mutex_lock(&reg_lock);
    for (struct heist_sched *p = reg_head; p; p = p->reg_next)
        if (p->id == id) {
            fn(p, arg);
            live = true;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
    return live;
}

int heist__sched_retire(struct heist_sched *s)
{
    int err = 0;
    pthread_mutex_lock(&reg_lock);
    /* Acquire: pairs with the release decrements of cb_waiting (future.c);
     * increments from other threads are under reg_lock, and those of s's
     * tasks come before their release decrement of live, which the caller
     * read as zero. */
    if (atomic_load_explicit(&s->cb_waiting, memory_order_acquire) != 0)
        err = EBUSY;
    else if (heist__live_count(&s->live) != 0)
        err = EAGAIN; /* a callback was scheduled meanwhile: wait again */
    else
        unlink_locked(s);
    pthread_mutex_unlock(&reg_lock);
    return err;
}
