/*
 * heist/task.h - fork-join with zero allocation.
 *
 *     static void *fib(void *arg) {
 *         long n = (long)arg;
 *         if (n < 2) return (void *)n;
 *         heist_task t;
 *         void *a, *b;
 *         heist_fork(&t, fib, (void *)(n - 1));   // may run on another worker
 *         b = fib((void *)(n - 2));               // meanwhile, run this here
 *         heist_join(&t, &a);                     // wait for the forked half
 *         return (void *)((long)a + (long)b);
 *     }
 *
 * The heist_task lives in the caller's storage (normally its stack); the
 * runtime keeps only a pointer to it, so it must stay alive, unmoved and
 * untouched from heist_fork until heist_join returns.
 *
 * Rules (as in Cilk's spawn/sync):
 *  - every heist_fork is matched by exactly one heist_join of the same task,
 *    by the same task (function activation) that forked it;
 *  - joins come in the reverse order of forks (last forked, first joined);
 *  - a forked task must not wait for anything its parent does after the
 *    fork (outside a worker heist_fork runs the task at once, and a task
 *    that suspends may first run its own pending forks, as the serial
 *    program would).
 * A task that returns while it still has forks that were not joined leaves
 * the runtime holding pointers into a dead stack frame: heist detects this at
 * the task's end and aborts the process with a message naming the count.
 */
#ifndef HEIST_TASK_H
#define HEIST_TASK_H

#include <stdint.h>

#include "sched.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A fork-join frame. Its size is public so it can live on the stack; its
 * contents are private to the runtime.
 */
typedef struct heist_task {
    uintptr_t heist_private_[8];
} heist_task;

/*
 * Makes fn(arg) available to run in parallel with the caller, which goes on.
 * On a worker, the task is pushed on the worker's deque, where idle workers
 * may steal it; if nobody does, heist_join runs it inline. On a thread that
 * is not a worker, fn(arg) runs now, before heist_fork returns.
 * t and fn must not be NULL (a NULL t or fn is reported by heist_join as
 * EINVAL; nothing runs).
 */
void heist_fork(heist_task *t, heist_fn fn, void *arg);

/*
 * Waits until the task forked into t has finished (running it here if no
 * other worker took it) and stores its return value in *result (result may
 * be NULL). If another worker took it and is still running it, the calling
 * task is suspended (not the worker, which runs other tasks) and resumed,
 * on any worker, when it finishes. Call it exactly once for each heist_fork, in reverse fork order.
 * Errors: EINVAL (t is NULL, was not forked, was already joined, was forked
 * with a NULL fn, or is not the most recent unjoined fork of this task; in
 * the last case nothing is joined and the caller must join in order).
 * Outside a worker, heist_fork has already run fn, and joins of such tasks
 * may come in any order.
 */
int heist_join(heist_task *t, void **result);

#ifdef __cplusplus
}
#endif

#endif /* HEIST_TASK_H */
