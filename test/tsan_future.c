/*
 * tsan_future.c - ThreadSanitizer sees the order that futures give user
 * data, and still sees races around them (built only in ThreadSanitizer
 * builds; see CMakeLists.txt).
 *
 * A reader task awaits a future; once it is suspended, a writer task writes
 * the plain global heist_test_fshared and then completes the future with
 * heist_future_set_result.
 *  - HEIST_TEST_ORDERED (tsan_future_ordered): the reader reads the global
 *    after heist_await returns, on the other worker while the writer still
 *    runs. The completion orders the write before the read, so TSan must
 *    stay silent. The same holds for the other edges a
 *    user relies on, checked on their own globals: a plain thread's write
 *    before set_result, read by a task after await; a task's write before
 *    set_result, read by a plain thread after its (blocking) await; a
 *    task's write before it returns, read by the task that awaits it; and a
 *    write before set_result, read in a then-callback. The program prints
 *    "tsan_future_ordered: ok".
 *  - default build (tsan_future_race): once the reader has resumed (on
 *    the other worker, while the writer still runs), the writer writes the
 *    global again, and the reader reads it after seeing a relaxed flag (no
 *    synchronization for TSan). That write and read are unordered, so TSan
 *    must report a race on the global.
 * Reader and writer are separate fibers, which TSan tracks as separate
 * threads, wherever they run.
 */
#include <heist/heist.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

/* Plain on purpose; not static, so TSan names them. One cache line each:
 * TSan keeps only the last few accesses per 8 bytes. */
_Alignas(64) int heist_test_fshared;
_Alignas(64) int heist_test_fthread_to_task;
_Alignas(64) int heist_test_ftask_to_thread;
_Alignas(64) int heist_test_freturned;
_Alignas(64) int heist_test_fcallback;
static _Alignas(64) atomic_int reader_waiting;
/* Relaxed on purpose: they order in time, not for TSan. */
static _Alignas(64) atomic_int reader_resumed;
#ifndef HEIST_TEST_ORDERED
static _Alignas(64) atomic_int rewritten;
#endif
static _Alignas(64) atomic_int callback_ok;

static heist_sched *sched;
static heist_future *fut;

static int wait_suspends(uint64_t n)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        heist_stats st;
        heist_sched_stats(sched, &st);
        if (st.total.suspends >= n)
            return 1;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 30)
            return 0;
        sched_yield();
    }
}

static void *reader(void *arg)
{
    (void)arg;
    atomic_store(&reader_waiting, 1);
    void *v = NULL;
    if (heist_await(fut, &v) != 0 || v != (void *)1)
        return (void *)"await failed";
    atomic_store_explicit(&reader_resumed, 1, memory_order_relaxed);
#ifndef HEIST_TEST_ORDERED
    while (!atomic_load_explicit(&rewritten, memory_order_relaxed))
        sched_yield();
#endif
    return heist_test_fshared == 1 || heist_test_fshared == 2
               ? NULL
               : (void *)"the write was not visible";
}

static void *writer(void *arg)
{
    (void)arg;
    /* Write only once the reader is suspended, so the await really waits
     * for the completion. */
    if (!wait_suspends(1))
        return (void *)"the reader never suspended";
    heist_test_fshared = 1;
    heist_future_set_result(fut, (void *)1);
    /* Wait (without suspending) until the reader runs again, on the other
     * worker: had it resumed on this thread after this task ended, the
     * switch between the two fibers would order them for TSan, and only
     * the future must. */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!atomic_load_explicit(&reader_resumed, memory_order_relaxed)) {
        sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 30) {
#ifndef HEIST_TEST_ORDERED
            atomic_store_explicit(&rewritten, 1, memory_order_relaxed);
#endif
            return (void *)"the reader did not resume while the writer ran";
        }
    }
#ifndef HEIST_TEST_ORDERED
    heist_test_fshared = 2; /* races with the reader's read */
    atomic_store_explicit(&rewritten, 1, memory_order_relaxed);
#endif
    return NULL;
}

static void *returns_after_write(void *arg)
{
    (void)arg;
    heist_test_freturned = 5;
    return NULL;
}

static void callback(heist_future *f, void *arg)
{
    (void)f;
    (void)arg;
    atomic_store_explicit(&callback_ok, heist_test_fcallback == 6 ? 1 : 2,
                          memory_order_relaxed);
}

static void *other_edges(void *arg)
{
    heist_future *from_thread = arg;
    /* Plain thread -> task. */
    if (heist_await(from_thread, NULL) != 0 || heist_test_fthread_to_task != 3)
        return (void *)"thread-to-task write not visible";
    /* Task -> task through the task's own completion. */
    heist_future *t = heist_spawn(NULL, returns_after_write, NULL);
    if (heist_await(t, NULL) != 0 || heist_test_freturned != 5)
        return (void *)"returned task's write not visible";
    heist_future_unref(t);
    /* Task -> then-callback. */
    heist_future *c = heist_future_new();
    heist_future_then(c, callback, NULL);
    heist_test_fcallback = 6;
    heist_future_set_result(c, NULL);
    heist_future_unref(c);
    /* Task -> plain thread. */
    heist_test_ftask_to_thread = 4;
    return NULL;
}

int main(void)
{
    heist_config cfg = {.workers = 2};
    if (heist_sched_new(&cfg, &sched) != 0) {
        fprintf(stderr, "heist_sched_new failed\n");
        return 1;
    }
    fut = heist_future_new();
    heist_future *r = heist_spawn(sched, reader, NULL);
    heist_future *w = heist_spawn(sched, writer, NULL);
    void *rerr = "await failed", *werr = "await failed";
    heist_await(r, &rerr);
    heist_await(w, &werr);
    const char *err = rerr ? rerr : werr;

#ifdef HEIST_TEST_ORDERED
    if (!err) {
        heist_future *from_thread = heist_future_new();
        heist_future *o = heist_spawn(sched, other_edges, from_thread);
        heist_test_fthread_to_task = 3;
        heist_future_set_result(from_thread, NULL);
        void *oerr = "await failed";
        heist_await(o, &oerr); /* the plain thread blocks here */
        if (oerr)
            err = oerr;
        else if (heist_test_ftask_to_thread != 4)
            err = "task-to-thread write not visible";
        heist_future_unref(o);
        heist_future_unref(from_thread);
    }
#else
    (void)other_edges;
#endif
    heist_future_unref(r);
    heist_future_unref(w);
    heist_future_unref(fut);
    heist_sched_free(sched);
#ifdef HEIST_TEST_ORDERED
    /* heist_sched_free waited for the callback. */
    if (!err && atomic_load(&callback_ok) != 1)
        err = "the callback did not see the write";
#endif
    if (err) {
        fprintf(stderr, "tsan_future: %s\n", err);
        return 1;
    }
#ifdef HEIST_TEST_ORDERED
    printf("tsan_future_ordered: ok\n");
#else
    printf("tsan_future_race: no report\n");
#endif
    return 0;
}
