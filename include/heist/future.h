/*
 * heist/future.h - futures and tasks, as in Python's asyncio, made parallel.
 *
 *     static void *bar(void *arg) {            // asyncio: async def bar(fut)
 *         heist_sleep(3000000000u);            //   await asyncio.sleep(3)
 *         heist_future_set_result(arg, "resolved");
 *         return NULL;
 *     }
 *     static void *foo(void *arg) {
 *         void *v;
 *         heist_await(arg, &v);                //   await fut
 *         return v;
 *     }
 *     static void *main_task(void *arg) {
 *         heist_future *fut = heist_future_new();
 *         heist_future *t[2] = { heist_spawn(NULL, foo, fut),
 *                                heist_spawn(NULL, bar, fut) };
 *         heist_future *all = heist_gather(t, 2);
 *         heist_await(all, NULL);              //   await gather(foo(), bar())
 *         ...unref all, t[0], t[1], fut...
 *     }
 *
 * A heist_future is a value that becomes available later. It is pending
 * until it is completed once, in one of three ways: done with a result
 * (heist_future_set_result), failed with an error code (heist_future_set_error)
 * or cancelled (heist_future_cancel). A task (heist_spawn) is a future that
 * its own function completes: done with the function's return value, failed
 * if it called heist_fail, cancelled if it was cancelled.
 *
 * Awaiting: heist_await on a worker suspends the calling task (its stack is
 * kept as a fiber) and the worker runs other tasks; when the future
 * completes, the task becomes runnable again and resumes on whichever worker
 * is free, possibly another thread. On any other thread heist_await blocks
 * the thread. After an await (or heist_sleep, or a heist_join that waited) a
 * task may be running on a different thread: thread-local variables read
 * after it are that thread's, and a compiler may keep the address of a
 * thread-local variable (errno included: glibc declares __errno_location
 * const) across the call, so read thread-locals through a function the
 * compiler cannot see into.
 *
 * Reference counts: heist_future_new, heist_spawn, heist_gather and
 * heist_any hand the caller one reference, which the caller drops with
 * heist_future_unref. The runtime holds its own references while it needs a
 * future (a task holds its future until it ends; a gather holds its
 * children), so dropping yours early is safe. Every call that takes a
 * future needs a reference that its caller holds until the call returns
 * (an await, until it returns: a waiter holds none of its own); a call
 * with a future whose last reference went, and an unref beyond the
 * references held, are undefined (a freed future's memory may already be
 * another's).
 * A gather or any that loses its last reference while pending lets go of
 * its children at once (not when it completes): a pending child that
 * nobody else holds is then freed (nobody could complete it), and the
 * gather with it; one that someone else holds (a running task) still
 * completes the gather, whose then-callbacks then run.
 *
 * Threads: every function here may be called from any thread, worker or
 * not, unless its comment says otherwise. Errors are positive errno values
 * (functions returning int) or NULL with errno set (functions returning a
 * pointer); bad input is an error, never a crash.
 */
#ifndef HEIST_FUTURE_H
#define HEIST_FUTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sched.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An opaque, reference-counted future. */
typedef struct heist_future heist_future;

/*
 * Creates a pending future. The caller holds one reference.
 * Errors (NULL, errno): ENOMEM.
 */
heist_future *heist_future_new(void);

/* Adds a reference to f and returns f. NULL f: returns NULL, errno EINVAL. */
heist_future *heist_future_ref(heist_future *f);

/*
 * Drops a reference; the future is freed when the last one goes (a pending
 * future's registered callbacks are then dropped without running). NULL is
 * ignored.
 */
void heist_future_unref(heist_future *f);

/*
 * Completes f with value. Wakes every task and thread awaiting f and
 * schedules its callbacks.
 * Errors: EINVAL (f is NULL), EBUSY (f is already completed, or another
 * thread's completion won the race: exactly one completion wins), EPERM (f
 * is a task's, a gather's or an any's future: those complete themselves).
 */
int heist_future_set_result(heist_future *f, void *value);

/*
 * Completes f as failed with err, a positive errno-style code other than
 * ECANCELED (use heist_future_cancel for that).
 * Errors: EINVAL (f is NULL, err <= 0 or err == ECANCELED), EBUSY, EPERM (as
 * heist_future_set_result).
 */
int heist_future_set_error(heist_future *f, int err);

/*
 * Cancels f. A pending plain future completes as cancelled at once. A task
 * that has not started never runs and completes as cancelled at once; a
 * running task is asked to stop: its pending and later awaits and sleeps
 * return ECANCELED, heist_cancelling() turns true in it, and it completes
 * as cancelled when its function returns. Cancelling a gather cancels its
 * children (and the gather completes as cancelled); cancelling an any
 * completes it as cancelled and leaves its children alone.
 * Returns true if the request was made, false if f is NULL or already
 * completed (as asyncio's cancel()).
 */
bool heist_future_cancel(heist_future *f);

/* True if f is completed (done, failed or cancelled). NULL: false. */
bool heist_future_done(const heist_future *f);

/* True if f completed as cancelled. NULL: false. */
bool heist_future_cancelled(const heist_future *f);

/*
 * Reads a completed future without waiting: returns 0 and stores the result
 * in *value (value may be NULL) if f is done; else returns the error code if
 * it failed, ECANCELED if it was cancelled, EAGAIN if it is still pending.
 * EINVAL if f is NULL. *value is written only when 0 is returned.
 */
int heist_future_result(const heist_future *f, void **value);

/*
 * Registers cb(f, arg) to run once f completes, as a task on a worker (never
 * inline in the thread that completes f, nor in the caller). If f is
 * already completed, cb is scheduled now. The future holds a reference to
 * itself for the callback, and cb's f is valid while cb runs.
 * The callback runs on the calling worker's scheduler, or, when called from
 * another thread, on the scheduler f belongs to (the one it was created on
 * or spawned to; a gather or any made on a thread that is no worker
 * belongs to the scheduler of its first child that belongs to one).
 * heist_sched_free of that scheduler says EBUSY while the callback still
 * waits for f.
 * cb runs on behalf of no task: heist_fail there says EPERM and
 * heist_cancelling() is false, even while a task waits on the same worker.
 * Errors: EINVAL (f or cb is NULL), EPERM (called from a thread that is not
 * a worker, for a future created outside any scheduler, or whose
 * scheduler has been freed: nowhere to run cb; nothing is registered),
 * ENOMEM.
 */
int heist_future_then(heist_future *f, void (*cb)(heist_future *f, void *arg),
                      void *arg);

/*
 * Waits until f completes and returns as heist_future_result would (0 and
 * the value, the failure's code, or ECANCELED if f was cancelled).
 * In a task on a worker it suspends the task, not the worker. Elsewhere it
 * blocks the calling thread.
 * Errors besides f's own outcome: EINVAL (f is NULL), EDEADLK (a task
 * awaits its own future), ECANCELED (the awaiting task was cancelled: f is
 * left as it is; check heist_cancelling() to tell the two ECANCELEDs
 * apart), ENOMEM (f is pending and no memory for the wait's record, for
 * the list that keeps the task's unjoined forks while it waits, or for a
 * fiber to run other work on meanwhile: nothing waited; f is left as it
 * is). *value is written only when 0 is returned.
 */
int heist_await(heist_future *f, void **value);

/*
 * heist_await with a time limit of ns nanoseconds: ETIMEDOUT if f is still
 * pending then (f is left pending, as asyncio.wait_for would not: cancel it
 * yourself if you wish). ns == 0 only checks. It never returns ETIMEDOUT
 * before ns have passed.
 * Errors: those of heist_await (ENOMEM also when the timer's heap cannot
 * grow: then nothing waited), and ETIMEDOUT.
 */
int heist_await_timeout(heist_future *f, uint64_t ns, void **value);

/*
 * Runs fn(arg) as a new task on scheduler s (NULL: the calling worker's
 * scheduler) and returns its future, which completes with fn's return
 * value. The task runs concurrently with the caller on any worker; the
 * caller holds one reference to the future.
 * Errors (NULL, errno): EINVAL (fn is NULL; s is NULL and the caller is not
 * a worker), ENOMEM.
 */
heist_future *heist_spawn(heist_sched *s, heist_fn fn, void *arg);

/*
 * A future that completes when all n futures have completed: done (with a
 * NULL result) if they all are done; failed as soon as one fails (with its
 * error; a cancelled child counts as failed with ECANCELED), the others
 * keep running. n == 0 gives a done future. The gather holds a reference to
 * each child that is not done when it is made, until it completes (a child
 * done already is counted at once and not kept); cancelling it cancels the
 * children.
 * Errors (NULL, errno): EINVAL (fs NULL with n > 0, or an fs[i] NULL),
 * ENOMEM.
 */
heist_future *heist_gather(heist_future *const *fs, size_t n);

/*
 * A future that completes when the first of the n futures completes
 * (whatever its outcome); its result is that future's index,
 * (void *)(uintptr_t)i. The others keep running.
 * Errors (NULL, errno): EINVAL (n == 0, fs NULL, or an fs[i] NULL), ENOMEM.
 */
heist_future *heist_any(heist_future *const *fs, size_t n);

/*
 * Sleeps ns nanoseconds. In a task it suspends the task, not the worker
 * (timers are served by a timer thread); elsewhere it sleeps the thread.
 * Returns 0 (never before ns have passed), or ECANCELED if the running
 * task is (or gets) cancelled, or ENOMEM (in a task: no memory for the
 * wait's record, the timer's heap, the list of the task's unjoined forks
 * or a fiber; returned at once, nothing slept).
 */
int heist_sleep(uint64_t ns);

/*
 * Makes the running task end failed with err (a positive code other than
 * ECANCELED) when its function returns; its return value is ignored. The
 * last call wins.
 * Errors: EINVAL (err <= 0 or err == ECANCELED), EPERM (not in a task: a
 * plain thread).
 */
int heist_fail(int err);

/*
 * True if a cancel was requested for the running task (heist_spawn's or
 * heist_run's). False on a thread that is not running a task.
 */
bool heist_cancelling(void);

#ifdef __cplusplus
}
#endif

#endif /* HEIST_FUTURE_H */
