/*
 * heist/sched.h - the scheduler: worker threads, their lifecycle, statistics.
 *
 * A heist_sched owns N worker threads. Each worker owns a work-stealing deque;
 * idle workers steal from a random victim, and sleep when there is nothing to
 * steal (an idle scheduler burns no CPU). Threads that are not workers hand
 * work to the scheduler with heist_run().
 *
 * Errors: functions that can fail return 0 or a positive errno value, like
 * pthreads. No function here crashes on bad input.
 */
#ifndef HEIST_SCHED_H
#define HEIST_SCHED_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A task body: takes the argument given at fork/run time, returns a result. */
typedef void *(*heist_fn)(void *arg);

/* An opaque scheduler. */
typedef struct heist_sched heist_sched;

/* The most workers a scheduler accepts; more is EINVAL. */
#define HEIST_MAX_WORKERS 1024u

/*
 * Scheduler configuration. Zero in any field means "the default", so
 * `heist_config cfg = {0};` is always valid, and fields added later keep that
 * meaning.
 */
typedef struct heist_config {
    unsigned workers;   /* 0: $HEIST_WORKERS if set, else the online CPUs.
                           1..HEIST_MAX_WORKERS, else EINVAL. */
    size_t stack_size;  /* bytes of each task stack (fiber); 0:
                           $HEIST_STACK_SIZE, else 128 KiB. Tasks run on
                           these stacks: deep recursion or large arrays on
                           the stack need more (an overflow is reported
                           and aborts, see "Stacks" below). At least
                           16 KiB, at most 4 GiB, else EINVAL. */
    const char *trace_path; /* NULL: $HEIST_TRACE if set and not empty,
                           else no trace; "": no trace. A path: record a
                           trace of what every worker runs and write it
                           there, as Chrome Trace Event JSON
                           (ui.perfetto.dev opens it), at heist_sched_free
                           (the file is created or opened, not emptied, by
                           heist_sched_new, and left as it was if that
                           fails; a file made for it is removed then).
                           Schedulers that trace to one path at once each
                           write it whole when freed: the last one freed
                           is what the file holds. See "Tracing" below. */
    size_t trace_events;  /* events kept per worker (the newest; older ones
                           are dropped and the file says how many); 0:
                           $HEIST_TRACE_EVENTS (a positive number; read
                           only when tracing), else 65536. Rounded up to a
                           power of two, at most 2^26. 32 bytes each. */
    size_t stack_pool;  /* bytes of idle task stacks the scheduler keeps
                           ready beyond its workers' own (each worker also
                           keeps up to 64 idle stacks); 0:
                           $HEIST_STACK_POOL (a positive number), else
                           4 MiB. An idle stack counts from its top down
                           to the deepest point seen at a switch, in pages.
                           Once the pool has been left alone for about a
                           second, the stacks beyond it are given back to
                           the kernel (madvise: their memory is freed,
                           their address space kept for reuse), so memory
                           comes back after a burst of waiting tasks, and
                           a workload repeated at once keeps its stacks
                           and makes no system call for them. See "Stacks"
                           below. */
} heist_config;

/*
 * Stacks. Tasks run on fiber stacks of stack_size bytes carved from large
 * mappings (many stacks per mmap, a few hundred mappings for a million
 * stacks), reused hottest first. Address space only is reserved: a task
 * that waits with shallow frames holds about one page. The first 64
 * stacks of a scheduler have a 64 KiB PROT_NONE guard region below them
 * (fewer if the process would use more than a quarter of
 * vm.max_map_count for guards; $HEIST_STACK_GUARD=0: none), so an overflow
 * faults at once; every other stack keeps the region writable and is
 * checked at each switch of its task: an overflow is reported at the
 * task's next await, sleep or join if its frame is still in the region
 * then, or if it went through the whole region (a canary below it); one
 * that went into the region and returned wrote only memory that nothing
 * uses. Either way heist prints "stack overflow" and aborts. The region
 * is 64 KiB: a single frame larger than that (a local array of more than
 * 64 KiB) can jump over it into the neighbouring stack unreported, as a
 * frame larger than a thread's guard page can; a task with such frames
 * needs a stack_size that holds them (with -fstack-clash-protection the
 * guarded stacks report it).
 */

/*
 * Tracing. With a trace path (the field above, or $HEIST_TRACE), each worker
 * records into its own ring (no lock, no allocation per event) and
 * heist_sched_free writes the file: one track per worker (pid 1, tid = the
 * worker's index), one for the timer thread and one for other threads when
 * they woke tasks; a slice for each item a worker runs (spawned task,
 * stolen fork, callback, resumed task), named by its function's symbol
 * where dladdr(3) finds one (functions with external linkage in a program
 * linked with -rdynamic, or in a shared library; else module+offset);
 * instants for steals, suspensions (why: await, sleep, join), parks and
 * unparks; flow arrows from each wake (a completion, a timer, a thief that
 * finished a stolen child) to the resumption it caused, and from a fork's
 * parent to the thief that stole it (not for a fork that a suspension
 * queued, see heist/task.h: its parent is suspended when it runs; its
 * steal instant names the worker that queued it). Untraced, the cost is one predictable
 * branch where an event would be recorded. If the file cannot be written
 * at heist_sched_free, a message goes to stderr (the scheduler is freed
 * all the same).
 *
 * Statistics on exit: with $HEIST_STATS set to anything but "" or "0",
 * heist_sched_free prints heist_sched_report's table to stderr.
 */

/*
 * Counters of one worker, or summed over all workers. Read while the
 * scheduler runs, each counter is exact but the set is not one snapshot.
 */
typedef struct heist_counters {
    uint64_t tasks;         /* items the worker's loop ran: stolen forks,
                               spawned tasks, heist_run mains, callbacks and
                               resumptions of suspended tasks (a fork run
                               inline by its join is counted in inlined) */
    uint64_t forks;         /* forks joined on this worker (a fork is counted
                               when its heist_join returns) */
    uint64_t inlined;       /* of those, the ones not stolen: run inline */
    uint64_t steals;        /* forks stolen from another worker, and forks
                               that a suspension queued (nested too deep, see
                               heist/task.h) and this worker's loop ran
                               (ready tasks and fibers taken from another
                               worker's queue are counted in tasks only) */
    uint64_t failed_steals; /* steal attempts that found nothing or lost a race */
    uint64_t parks;         /* times the worker went to sleep for lack of work */
    uint64_t suspends;      /* tasks suspended on this worker (await, sleep,
                               a join whose child was stolen and running) */
    uint64_t resumes;       /* suspended tasks resumed on this worker */
    uint64_t stacks_mapped; /* stacks this worker took from fresh address
                               space (a new chunk is one mmap for many) */
    uint64_t stacks_reused; /* stacks this worker took from a pool (its
                               own, the scheduler's, or one given back) */
} heist_counters;

typedef struct heist_stats {
    unsigned workers;       /* number of workers */
    heist_counters total;   /* sum over the workers */
} heist_stats;

/*
 * Creates a scheduler and starts its workers.
 * cfg may be NULL (all defaults). On success *out holds the scheduler.
 * Errors: EINVAL (out is NULL; workers or $HEIST_WORKERS out of range or not
 * a number; stack_size or $HEIST_STACK_SIZE absurd; tracing, and
 * $HEIST_TRACE_EVENTS not a positive number; $HEIST_STACK_POOL not a
 * positive number), ENOMEM, EAGAIN (the
 * system could not start a thread), or the errno of open(2) when the trace
 * file cannot be created (ENOENT, EACCES, ...). On error *out is left
 * unchanged and nothing leaks.
 * Any thread may call it, workers of another scheduler included.
 */
int heist_sched_new(const heist_config *cfg, heist_sched **out);

/*
 * Waits until every task submitted to s has finished (and every callback
 * scheduled on s has run), stops and joins the workers, and frees s.
 * Errors: EINVAL (s is NULL), EDEADLK (called from a worker of s: it would
 * wait for itself; s is left running), EBUSY (callbacks of s registered with
 * heist_future_then still wait on futures that are pending: complete or
 * cancel those futures, or drop them, then call again; s is left running).
 * Call it once, from a thread that is not one of s's workers, after every
 * heist_run() on s has returned.
 */
int heist_sched_free(heist_sched *s);

/*
 * Runs main(arg) as a task on s and blocks the calling thread until it
 * returns; then, like asyncio.run, cancels the tasks that main (or tasks it
 * spawned, transitively) left unfinished and waits for them to end. Then
 * stores main's return value in *result (result may be NULL).
 * Several threads may call heist_run on the same scheduler at once; each
 * cancels only its own tasks.
 * Errors: EINVAL (s or main is NULL), ENOMEM, EDEADLK (called from a worker of
 * s: blocking it could starve the scheduler; use heist_fork/heist_join there,
 * or heist_spawn and heist_await), or the error main ended with by calling
 * heist_fail (then *result is not written).
 * Called on a worker of another scheduler, it blocks that worker's thread
 * like any other thread's: that scheduler's work queued on the worker
 * waits meanwhile, so a main that waits for such work may never return
 * (with one worker, it never does). Across schedulers, heist_spawn onto s
 * and heist_await the task instead: the awaiting task suspends, its worker
 * does not.
 */
int heist_run(heist_sched *s, heist_fn main, void *arg, void **result);

/* The scheduler whose worker is calling, or NULL on any other thread. */
heist_sched *heist_current(void);

/*
 * The worker index (0..workers-1) of the calling thread in its scheduler, or
 * -1 on a thread that is not a worker.
 */
int heist_worker_index(void);

/*
 * Fills *out with the number of workers and the counters summed over them.
 * Errors: EINVAL (s or out is NULL).
 */
int heist_sched_stats(heist_sched *s, heist_stats *out);

/*
 * Prints the counters of every worker and their total to out as an aligned
 * table: a header line naming the columns (worker, tasks, forks, inlined,
 * steals, failed_steals, parks, suspends, resumes, stacks_mapped,
 * stacks_reused), one row per worker
 * (its index first), and a row "total" with the sums. Any thread, while s
 * runs (each counter is exact, the set is not one snapshot).
 * Errors: EINVAL (s or out is NULL), EIO (writing to out failed).
 */
int heist_sched_report(heist_sched *s, FILE *out);

/*
 * Fills *out with the counters of worker i.
 * Errors: EINVAL (s or out is NULL, or i >= the number of workers).
 */
int heist_sched_worker_stats(heist_sched *s, unsigned i, heist_counters *out);

#ifdef __cplusplus
}
#endif

#endif /* HEIST_SCHED_H */
