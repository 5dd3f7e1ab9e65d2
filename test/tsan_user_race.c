/*
 * tsan_user_race.c - ThreadSanitizer must still see data races in code that
 * heist runs (built only in ThreadSanitizer builds; see CMakeLists.txt).
 *
 * Two tasks, forked on a 2-worker scheduler, meet at a rendezvous made of
 * atomics (so they really run at the same time, on two workers), then:
 *  - default build (tsan_user_race): both write the plain global
 *    heist_test_shared, the child first, the parent after seeing a relaxed
 *    flag (no synchronization for TSan). Nothing orders the two writes, so
 *    TSan must report a data race whose location is that global; the test
 *    passes on that report.
 *  - HEIST_TEST_ORDERED (tsan_user_ordered): only the child writes it, and
 *    the parent reads it after heist_join. heist_join orders the two, so TSan
 *    must stay silent; the program prints "tsan_user_ordered: ok".
 * If the tasks never overlap (a worker never stole the child), the program
 * says so and fails: the test must not pass without a real race.
 */
#include <heist/heist.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

/* Plain on purpose; not static, so TSan names it. Each variable gets its
 * own cache line: TSan keeps the last few accesses per 8 bytes of memory,
 * and the spinning loads must not push the first write to heist_test_shared
 * out of that history. */
_Alignas(64) int heist_test_shared;
static _Alignas(64) atomic_int arrived;
/* Set by the child after its write, with relaxed order: TSan sees no
 * synchronization in it, so it only makes the parent's write come later in
 * time. Two writes at the very same instant can both miss each other in
 * TSan's shadow memory; one after the other they cannot. */
static _Alignas(64) atomic_int child_wrote;

/* Waits until both tasks arrived; false after 30 s. */
static int rendezvous(void)
{
    atomic_fetch_add(&arrived, 1);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&arrived) < 2) {
        sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 30)
            return 0;
    }
    return 1;
}

static void *child(void *arg)
{
    if (!rendezvous())
        return NULL;
    heist_test_shared += (int)(long)arg; /* after the rendezvous: unordered */
    atomic_store_explicit(&child_wrote, 1, memory_order_relaxed);
    return arg;
}

static void *parent(void *arg)
{
    (void)arg;
    heist_task t;
    void *r = NULL;
    heist_fork(&t, child, (void *)1L);
    if (!rendezvous()) {
        heist_join(&t, &r);
        return (void *)"the tasks never overlapped (child not stolen)";
    }
#ifndef HEIST_TEST_ORDERED
    while (!atomic_load_explicit(&child_wrote, memory_order_relaxed))
        sched_yield();
    heist_test_shared += 2; /* races with the child's write */
#endif
    if (heist_join(&t, &r) != 0 || r != (void *)1L)
        return (void *)"heist_join failed";
#ifdef HEIST_TEST_ORDERED
    if (heist_test_shared != 1) /* ordered by heist_join */
        return (void *)"child's write not visible after heist_join";
#endif
    return NULL;
}

int main(void)
{
    heist_config cfg = {.workers = 2};
    heist_sched *s;
    if (heist_sched_new(&cfg, &s) != 0) {
        fprintf(stderr, "heist_sched_new failed\n");
        return 1;
    }
    void *err = NULL;
    int rc = heist_run(s, parent, NULL, &err);
    heist_sched_free(s);
    if (rc != 0 || err) {
        fprintf(stderr, "%s\n", rc ? "heist_run failed" : (const char *)err);
        return 1;
    }
#ifdef HEIST_TEST_ORDERED
    printf("tsan_user_ordered: ok\n");
#else
    printf("tsan_user_race: no report\n");
#endif
    return 0;
}
