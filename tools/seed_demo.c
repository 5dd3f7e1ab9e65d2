/*
 * tools/seed_demo.c - the seed's asyncio lesson (a Future that one coroutine
 * awaits and another resolves) written with heist's futures and tasks.
 *
 *     heist-seed-demo [SECONDS]     bar's sleep, default 3
 *
 * The Python it follows:
 *
 *     async def bar(future):
 *         print("bar will sleep for 3 seconds")
 *         await asyncio.sleep(3)
 *         print("bar resolving the future")
 *         future.done()
 *         future.set_result("future is resolved")
 *
 *     async def foo(future):
 *         print("foo will await the future")
 *         await future
 *         print("foo finds the future resolved")
 *
 *     async def main():
 *         future = Future()
 *         results = await asyncio.gather(foo(future), bar(future))
 *
 *     asyncio.run(main())
 *     print("main exiting")
 *
 * One thing differs. asyncio runs one coroutine at a time: gather starts foo
 * first, foo runs until its await, and only then does bar print. heist runs
 * foo and bar at once on different workers, so nothing orders their first
 * lines. To keep the seed's output, foo tells bar it is about to await (a
 * second future, foo_awaits, that foo resolves after its first print) and
 * bar awaits that before it starts. This is the order asyncio gives, made
 * explicit; main stays as in Python (create the future, start foo and bar,
 * gather them), and so do the lesson's two awaits: foo waits on the future
 * without holding a worker, and bar sleeps without holding one either.
 *
 * Every error a heist call returns ends the program with a message on
 * stderr and exit status 1; stdout then lacks "main exiting".
 */
#include <errno.h>
#include <heist/heist.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char resolved[] = "future is resolved";

/* What main_task shares with foo and bar. */
struct seed {
    uint64_t sleep_ns; /* bar's sleep */
    double sleep_s;    /* the same in seconds, for bar's message */
    /* The lesson's future: bar resolves it, foo awaits it. */
    heist_future *future;
    /* Resolved by foo just before it awaits future (see above). */
    heist_future *foo_awaits;
};

/*
 * Reports a failed call and makes the running task end failed with err. A
 * task that is being cancelled (heist_run cancels what main_task leaves
 * running when it fails, and that failure was reported) just ends, quietly.
 */
static void *fail(const char *what, int err)
{
    if (heist_cancelling())
        return NULL;
    fprintf(stderr, "heist-seed-demo: %s: %s\n", what, strerror(err));
    /* heist_fail refuses ECANCELED. Here it would mean that a future nobody
     * cancels came back cancelled: the demo's protocol broke, EPROTO. */
    int e = heist_fail(err == ECANCELED ? EPROTO : err);
    if (e != 0)
        fprintf(stderr, "heist-seed-demo: heist_fail: %s\n", strerror(e));
    return NULL;
}

static void *bar(void *arg)
{
    struct seed *s = arg;
    int err = heist_await(s->foo_awaits, NULL); /* until foo awaits */
    if (err != 0)
        return fail("bar: heist_await(foo_awaits)", err);
    printf("bar will sleep for %g seconds\n", s->sleep_s);
    err = heist_sleep(s->sleep_ns); /* suspends bar, not its worker */
    if (err != 0)
        return fail("bar: heist_sleep", err);
    printf("bar resolving the future\n");
    err = heist_future_set_result(s->future, (void *)resolved);
    if (err != 0)
        return fail("bar: heist_future_set_result(future)", err);
    return NULL;
}

static void *foo(void *arg)
{
    struct seed *s = arg;
    printf("foo will await the future\n");
    int err = heist_future_set_result(s->foo_awaits, NULL);
    if (err != 0)
        return fail("foo: heist_future_set_result(foo_awaits)", err);
    void *value;
    err = heist_await(s->future, &value); /* suspends foo, not its worker */
    if (err != 0)
        return fail("foo: heist_await(future)", err);
    printf("foo finds the future resolved\n");
    return value;
}

/*
 * The futures in *s are released by main() after heist_run has returned,
 * when no task can use them any more (foo and bar hold no references of
 * their own). errno is read only before the first await: after it this task
 * may run on another thread (see heist/future.h).
 */
static void *main_task(void *arg)
{
    struct seed *s = arg;
    heist_future *tasks[2] = {NULL, NULL}, *all = NULL;
    void *value;
    int err;

    if (!(s->future = heist_future_new()) ||
        !(s->foo_awaits = heist_future_new())) {
        err = errno;
        fail("heist_future_new", err);
        goto out;
    }
    if (!(tasks[0] = heist_spawn(NULL, foo, s)) ||
        !(tasks[1] = heist_spawn(NULL, bar, s))) {
        err = errno;
        fail("heist_spawn", err);
        goto out;
    }
    if (!(all = heist_gather(tasks, 2))) {
        err = errno;
        fail("heist_gather", err);
        goto out;
    }
    err = heist_await(all, NULL); /* await gather(foo(future), bar(future)) */
    if (err != 0) {
        fail("heist_await(gather)", err);
        goto out;
    }
    /* foo returned the future's result. */
    err = heist_future_result(tasks[0], &value);
    if (err != 0)
        fail("heist_future_result(foo)", err);
    else if (value != resolved)
        fail("foo's result is not the one bar set", EPROTO);
out:
    heist_future_unref(all);
    heist_future_unref(tasks[1]);
    heist_future_unref(tasks[0]);
    return NULL;
}

int main(int argc, char **argv)
{
    struct seed s = {.sleep_s = 3};
    if (argc > 2) {
        fprintf(stderr, "usage: %s [SECONDS]\n", argv[0]);
        return 2;
    }
    if (argc == 2) {
        char *end;
        errno = 0;
        s.sleep_s = strtod(argv[1], &end);
        /* At most a day: far inside uint64_t nanoseconds. */
        if (end == argv[1] || *end != '\0' || errno != 0 ||
            !isfinite(s.sleep_s) || s.sleep_s < 0 || s.sleep_s > 86400) {
            fprintf(stderr, "%s: SECONDS must be a number from 0 to 86400\n",
                    argv[0]);
            return 2;
        }
    }
    s.sleep_ns = (uint64_t)(s.sleep_s * 1e9 + 0.5);

    heist_sched *sched;
    int err = heist_sched_new(NULL, &sched); /* $HEIST_WORKERS or all CPUs */
    if (err != 0) {
        fprintf(stderr, "heist-seed-demo: heist_sched_new: %s\n",
                strerror(err));
        return 1;
    }
    int status = 0;
    err = heist_run(sched, main_task, &s, NULL); /* asyncio.run(main()) */
    if (err != 0) {
        fprintf(stderr, "heist-seed-demo: heist_run: %s\n", strerror(err));
        status = 1;
    }
    err = heist_sched_free(sched);
    if (err != 0) {
        fprintf(stderr, "heist-seed-demo: heist_sched_free: %s\n",
                strerror(err));
        status = 1;
    }
    heist_future_unref(s.foo_awaits);
    heist_future_unref(s.future);
    if (status == 0)
        printf("main exiting\n");
    return status;
}
