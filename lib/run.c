/*
 * run.c - heist_run: asyncio.run for a heist scheduler.
 *
 * heist_run makes main a task of a fresh group (spawn.h), puts it on the
 * injection queue (ready.c), and blocks the calling thread on the task's
 * future (wait.c); then, like asyncio.run, it cancels the tasks main's
 * group left behind (every task spawned from a task of the group joins
 * it) and waits until they have ended. `runs` counts the calls in
 * progress so that heist_sched_free can wait for them.
 */
#include "spawn.h"
#include "wait.h"

#include <errno.h>
#include <time.h>

int heist_run(heist_sched *s, heist_fn main, void *arg, void **result)
{
    if (!s || !main)
        return EINVAL;
    struct heist__worker *self = heist__self;
    if (self && self->sched == s)
        return EDEADLK;
    struct heist__group group;
    if (heist__group_init(&group, s))
        return ENOMEM;
    /* Relaxed: heist_sched_free may not run concurrently with us (the
     * contract); the count is read there after we return. */
    atomic_fetch_add_explicit(&s->runs, 1, memory_order_relaxed);
    struct heist__tk *t = heist__task_new(s, main, arg, &group);
    int err = ENOMEM;
    if (t) {
        heist__make_runnable(s, &t->it);
        void *r = NULL;
        while (heist__await_thread(&t->f, UINT64_MAX, NULL) == ENOMEM &&
               !heist_future_done(&t->f)) {
            /* No memory for a wait node: poll. */
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        /* Like asyncio.run: cancel what main left running, wait for it. */
        heist__group_cancel(&group);
        heist__group_wait(&group);
        err = heist_future_result(&t->f, &r);
        heist_future_unref(&t->f);
        if (err == 0 && result)
            *result = r;
    }
    heist__group_destroy(&group);
    /* seq_cst: pairs with the loads in heist_sched_free's wait. */
    if (atomic_fetch_sub_explicit(&s->runs, 1, memory_order_seq_cst) == 1) {
        atomic_fetch_add_explicit(&s->quiet, 1, memory_order_seq_cst);
        heist__futex_wake(&s->quiet, INT_MAX);
    }
    return err;
}
