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
 * The heist_task lives in the caller's storage (normally its stack) and
 * names the fork (the runtime keeps no pointer to it): it must stay alive
 * and unchanged from heist_fork until heist_join returns.
 *
 * Rules (as in Cilk's spawn/sync):
 *  - every heist_fork is matched by exactly one heist_join of the same task,
 *    by the same task (function activation) that forked it;
 *  - joins come in the reverse order of forks (last forked, first joined);
 *  - a forked task must not wait for anything its parent does after the
 *    fork (outside a worker heist_fork runs the task at once, and a task
 *    that suspends may first run its own pending forks, as the serial
 *    program would).
 * A task that suspends with forks pending runs them first, newest first,
 * on its own stack; one of those that suspends in turn runs the older ones
 * inside it, and so on, but at most 8 deep (or until a quarter of the
 * stack is left): the rest go to the worker's ready queue, each to run on
 * a stack of its own like a stolen fork (counted in steals; one that its
 * join finds not yet started while the task cannot suspend, out of
 * memory, runs in the join and counts as inlined). So a task may fork
 * thousands of children that each suspend.
 * A task that returns while it still has forks that were not joined would
 * leave them to run after it ended: heist detects this at the task's end
 * and aborts the process with a message naming the count. For a forked
 * task that heist_join ran inline, the join checks when it returns: one
 * load and compare per join, on unless the program defines NDEBUG (like
 * assert; defining HEIST_JOIN_CHECK as 1 or 0 decides instead; the
 * library's own heist_join, called when the inline path is off, always
 * checks). Without the check, such a task's forgotten fork is found only
 * when the task that joined it ends, and may have run before with its
 * argument in a dead frame.
 *
 * Speed: with gcc or clang on x86-64 (and no sanitizer), heist_fork,
 * heist_join and heist_join_fn are macros over inline functions
 * (heist/task_inline.h; in C with the join's check off, GNU statement
 * expressions around them):
 * a fork that is not stolen costs a few loads and stores in the caller, and
 * heist_join_fn runs it as a direct call. They rest on the library's
 * layout, checked by heist_sched_new (ENOTSUP on a mismatch: rebuild the
 * program). Define HEIST_NO_INLINE before including heist to call the
 * library instead. With gcc, a task function whose leaf test reads the
 * argument before converting it (`if ((uintptr_t)arg < 2) return arg;`,
 * then `long n = (long)arg;`) gets that test inlined into its callers
 * (partial inlining), so leaves cost no call; in C built with NDEBUG (the
 * join's check off), a recursion that ends in its join becomes a loop, as
 * Lace's does: fib(35) on one worker 43 ms against 58-60 ms (README,
 * "Fork-join code the compiler can speed up").
 */
#ifndef HEIST_TASK_H
#define HEIST_TASK_H

#include <stdint.h>

#include "sched.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * A fork: it names the fork's entry on its worker's deque (and keeps its
 * function and argument). Its size is public so it can live on the stack;
 * its contents are private to the runtime.
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
 * the last case nothing is joined and the caller must join in order). On an
 * error *result is set to NULL.
 * Outside a worker, heist_fork has already run fn, and joins of such tasks
 * may come in any order. So has a fork on a worker whose deque is full
 * (262,144 forks not yet joined, on that worker); the order of such a
 * task's join is not checked either (nor, against it, that of the fork
 * before it).
 */
int heist_join(heist_task *t, void **result);

/*
 * heist_join naming the function the task was forked with:
 *
 *     heist_fork(&t, fib, (void *)(n - 1));
 *     b = fib((void *)(n - 2));
 *     heist_join_fn(&t, fib, &a);
 *
 * Same behaviour, rules and errors as heist_join, but when no other worker
 * took the task it runs as a direct call fn(arg), which the compiler may
 * inline (heist_join calls it through the pointer stored at fork time).
 * fn must be the function given to heist_fork for t: it is compared with
 * the stored one (one load and compare), and if it differs, or is NULL, the
 * result is EINVAL and nothing is joined: the task stays forked, and the
 * caller must still join it (with its function, or with heist_join).
 * heist_join and heist_join_fn may be mixed freely, one per fork.
 */
int heist_join_fn(heist_task *t, heist_fn fn, void **result);

#ifdef __cplusplus
}
#endif

/* The fast paths inline in the caller, and the ABI they rest on. */
#include "task_inline.h"

#endif /* HEIST_TASK_H */
