/*
 * user_suite.c - a user's Criterion test of code that runs on heist, built
 * with clang -fsanitize=thread against the installed TSan flavour.
 *
 * Two spawned tasks write the plain int user_counter on a 2-worker
 * scheduler.
 *  - PLANT_RACE (user_race): the tasks meet at a rendezvous of atomics (so
 *    they really run at once, on two workers), then both write it, the
 *    second after seeing a relaxed flag (later in time, but no ordering for
 *    TSan). ThreadSanitizer must report a data race on user_counter, and
 *    the test must fail.
 *  - otherwise (user_ordered): the second task awaits the first one's
 *    future before it writes: heist_await orders the two writes, TSan must
 *    stay silent and the test passes.
 */
#include <criterion/criterion.h>
#include <heist/heist.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

/* Plain on purpose; not static, so TSan's report names it. Own cache
 * lines, so the spinning loads do not push the first write out of TSan's
 * short per-location history. */
_Alignas(64) int user_counter;
static _Alignas(64) atomic_int arrived;
static _Alignas(64) atomic_int first_wrote;

#ifdef PLANT_RACE
/* Waits until both tasks arrived; false after 30 s. */
static bool rendezvous(void)
{
    atomic_fetch_add(&arrived, 1);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (atomic_load(&arrived) < 2) {
        sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 30)
            return false;
    }
    return true;
}
#endif

static void *first(void *arg)
{
    (void)arg;
#ifdef PLANT_RACE
    if (!rendezvous())
        return (void *)"the tasks never overlapped";
#endif
    user_counter = 1;
    atomic_store_explicit(&first_wrote, 1, memory_order_relaxed);
    return NULL;
}

static void *second(void *arg)
{
#ifdef PLANT_RACE
    (void)arg;
    if (!rendezvous())
        return (void *)"the tasks never overlapped";
    while (!atomic_load_explicit(&first_wrote, memory_order_relaxed))
        sched_yield();
#else
    void *v;
    if (heist_await(arg, &v) != 0 || v != NULL) /* ordered after first */
        return (void *)"awaiting the first task failed";
#endif
    user_counter = 2; /* with PLANT_RACE: races with first's write */
    return NULL;
}

static void *main_task(void *arg)
{
    (void)arg;
    heist_future *f1 = heist_spawn(NULL, first, NULL);
    heist_future *f2 = heist_spawn(NULL, second, f1);
    void *v1 = NULL, *v2 = NULL;
    int e2 = heist_await(f2, &v2), e1 = heist_await(f1, &v1);
    heist_future_unref(f2);
    heist_future_unref(f1);
    if (e1 != 0 || e2 != 0)
        return (void *)"a task failed";
    return v1 != NULL ? v1 : v2;
}

Test(user, two_tasks_write_a_counter)
{
    heist_config cfg = {.workers = 2};
    heist_sched *s;
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    void *r = NULL;
    cr_assert_eq(heist_run(s, main_task, NULL, &r), 0);
    cr_assert_null(r, "%s", (const char *)r);
    cr_assert_eq(user_counter, 2);
    cr_assert_eq(heist_sched_free(s), 0);
}
