/*
 * consumer.c - a program that uses an installed heist (the install test,
 * test/install/run.sh, builds it with find_package(heist CONFIG) and with
 * pkg-config). Fork-join (fib with heist_fork/heist_join) and a spawned task
 * awaited with heist_await, on 2 workers; prints two lines the test checks.
 */
#include <heist/heist.h>
#include <stdio.h>

static void *fib(void *arg)
{
    long n = (long)arg;
    if (n < 2)
        return (void *)n;
    heist_task t;
    void *a, *b;
    heist_fork(&t, fib, (void *)(n - 1));
    b = fib((void *)(n - 2));
    if (heist_join(&t, &a) != 0)
        return (void *)-1L;
    return (void *)((long)a + (long)b);
}

static void *answer(void *arg)
{
    heist_sleep(1000000); /* 1 ms: suspends this task, not its worker */
    return (void *)((long)arg * 2);
}

static void *main_task(void *arg)
{
    (void)arg;
    void *f = fib((void *)20L);
    printf("fib(20) = %ld\n", (long)f);
    heist_future *t = heist_spawn(NULL, answer, (void *)21L);
    if (t == NULL)
        return (void *)1L;
    void *v = NULL;
    int err = heist_await(t, &v);
    heist_future_unref(t);
    if (err != 0)
        return (void *)2L;
    printf("spawned task = %ld\n", (long)v);
    return NULL;
}

int main(void)
{
    heist_config cfg = {.workers = 2};
    heist_sched *s;
    void *r = (void *)3L;
    if (heist_sched_new(&cfg, &s) != 0)
        return 1;
    if (heist_run(s, main_task, NULL, &r) != 0 || r != NULL)
        return 1;
    return heist_sched_free(s) != 0;
}
