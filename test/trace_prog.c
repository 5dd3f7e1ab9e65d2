/*
 * trace_prog.c - runs traced schedulers for test/trace_check.py.
 *
 *     trace_prog DIR
 *
 * Four runs on 2 workers, each traced to a file in DIR: seed.json (the
 * seed demo's shape: foo awaits a future that bar resolves after a sleep,
 * main gathers both), fib.json (fib(25) with heist_fork/heist_join) and
 * small.json (64 sleeping tasks with 16-event rings, so events are
 * dropped) and queued.json (a task forks 100 children that each sleep,
 * then sleeps: its suspension runs 8 of them one inside another and
 * queues the rest, which run like stolen forks). For each
 * it prints one line of JSON to stdout: the file, the counters summed over
 * the workers (read after heist_run returned: steals, suspends and resumes
 * are final then) and the number of tasks spawned. fib.json's run makes
 * sure a fork is stolen first (trace_fib_main). The functions have
 * external linkage and the program is linked with -rdynamic, so the trace
 * names its slices (dladdr). Exit status 0 when every call succeeded.
 */
#include <heist/heist.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct seed {
    heist_future *future, *foo_awaits;
};

void *trace_foo(void *arg);
void *trace_bar(void *arg);
void *trace_main(void *arg);
void *trace_fib(void *arg);
void *trace_fib_main(void *arg);
void *trace_probe(void *arg);
void *trace_noop(void *arg);
void *trace_sleeper(void *arg);
void *trace_sleepers(void *arg);
void *trace_queued_main(void *arg);

static void check(int err, const char *what)
{
    if (err) {
        fprintf(stderr, "trace_prog: %s: %s\n", what, strerror(err));
        exit(1);
    }
}

void *trace_foo(void *arg)
{
    struct seed *s = arg;
    check(heist_future_set_result(s->foo_awaits, NULL), "set foo_awaits");
    void *v;
    check(heist_await(s->future, &v), "await future");
    return v;
}

void *trace_bar(void *arg)
{
    struct seed *s = arg;
    check(heist_await(s->foo_awaits, NULL), "await foo_awaits");
    check(heist_sleep(20 * 1000 * 1000), "sleep");
    check(heist_future_set_result(s->future, (void *)1), "set future");
    return NULL;
}

void *trace_main(void *arg)
{
    struct seed *s = arg;
    s->future = heist_future_new();
    s->foo_awaits = heist_future_new();
    heist_future *t[2] = {heist_spawn(NULL, trace_foo, s),
                          heist_spawn(NULL, trace_bar, s)};
    if (!s->future || !s->foo_awaits || !t[0] || !t[1])
        check(1, "spawn");
    heist_future *all = heist_gather(t, 2);
    check(heist_await(all, NULL), "await gather");
    heist_future_unref(all);
    heist_future_unref(t[1]);
    heist_future_unref(t[0]);
    return NULL;
}

void *trace_fib(void *arg)
{
    long n = (long)arg;
    if (n < 2)
        return (void *)n;
    heist_task t;
    void *a, *b;
    heist_fork(&t, trace_fib, (void *)(n - 1));
    b = trace_fib((void *)(n - 2));
    check(heist_join(&t, &a), "join");
    return (void *)((long)a + (long)b);
}

/* Runs until another worker has stolen it. */
void *trace_probe(void *arg)
{
    atomic_int *where = arg;
    atomic_store(where, heist_worker_index());
    return NULL;
}

void *trace_noop(void *arg)
{
    return arg;
}

/* fib(25), after making sure a fork was stolen at least once: a probe is
 * forked and the parent keeps forking and joining (which publishes its
 * deque to a thief that asks) until the probe ran on the other worker. */
void *trace_fib_main(void *arg)
{
    atomic_int where = -1;
    int self = heist_worker_index();
    heist_task probe, t;
    heist_fork(&probe, trace_probe, &where);
    for (long k = 0; atomic_load(&where) < 0 && k < 100000000; k++) {
        heist_fork(&t, trace_noop, NULL);
        check(heist_join(&t, NULL), "join noop");
    }
    check(heist_join(&probe, NULL), "join probe");
    if (atomic_load(&where) == self)
        check(1, "the probe was never stolen");
    return trace_fib(arg);
}

/* 64 tasks that each sleep 1 us, gathered: hundreds of events. */
void *trace_sleeper(void *arg)
{
    check(heist_sleep(1000), "sleep");
    return arg;
}

void *trace_sleepers(void *arg)
{
    (void)arg;
    heist_future *t[64];
    for (int i = 0; i < 64; i++) {
        t[i] = heist_spawn(NULL, trace_sleeper, NULL);
        if (!t[i])
            check(1, "spawn");
    }
    heist_future *all = heist_gather(t, 64);
    check(heist_await(all, NULL), "await gather");
    heist_future_unref(all);
    for (int i = 0; i < 64; i++)
        heist_future_unref(t[i]);
    return NULL;
}

/* 100 forks of trace_sleeper, a sleep, the joins. */
void *trace_queued_main(void *arg)
{
    (void)arg;
    heist_task t[100];
    for (long i = 0; i < 100; i++)
        heist_fork(&t[i], trace_sleeper, (void *)i);
    check(heist_sleep(1000), "sleep");
    for (long i = 99; i >= 0; i--) {
        void *v = NULL;
        check(heist_join(&t[i], &v), "join sleeper");
        if (v != (void *)i)
            check(1, "a sleeper's value");
    }
    return NULL;
}

static void run(const char *dir, const char *name, size_t events,
                heist_fn fn, void *arg, int tasks)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    heist_config cfg = {.workers = 2, .trace_path = path,
                        .trace_events = events};
    heist_sched *s;
    check(heist_sched_new(&cfg, &s), "heist_sched_new");
    check(heist_run(s, fn, arg, NULL), "heist_run");
    heist_stats st;
    check(heist_sched_stats(s, &st), "heist_sched_stats");
    check(heist_sched_free(s), "heist_sched_free");
    printf("{\"file\":\"%s\",\"steals\":%llu,\"suspends\":%llu,"
           "\"resumes\":%llu,\"tasks_spawned\":%d}\n",
           path, (unsigned long long)st.total.steals,
           (unsigned long long)st.total.suspends,
           (unsigned long long)st.total.resumes, tasks);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: trace_prog DIR\n");
        return 2;
    }
    struct seed s = {0};
    run(argv[1], "seed.json", 0, trace_main, &s, 3);
    heist_future_unref(s.future);
    heist_future_unref(s.foo_awaits);
    run(argv[1], "fib.json", 1 << 18, trace_fib_main, (void *)25L, 1);
    run(argv[1], "small.json", 16, trace_sleepers, NULL, 65);
    run(argv[1], "queued.json", 0, trace_queued_main, NULL, 1);
    return 0;
}
