/*
 * bench/pingpong_heist.c - await round trips between two tasks. Each round
 * uses two fresh futures, as a future completes only once: ping resolves
 * the round's ping future with a message (the round's pong future and the
 * next ping future) and awaits pong; pong awaits ping and resolves the pong
 * future with the round's number plus one, which ping checks. The result
 * is the sum of the round numbers pong received (N(N-1)/2 when every
 * message arrived, in order); the table reports the time per round trip.
 *
 * ping creates and owns every future; pong gets its own reference to each
 * pong future, because ping may resume and drop its reference while pong is
 * still inside set_result.
 */
#include "bench_heist.h"

static bench_args args;

typedef struct ping_msg {
    long round;
    heist_future *pong;
    heist_future *next; /* the next round's ping future */
} ping_msg;

typedef struct game {
    heist_future *first; /* round 0's ping future */
    long rounds;
} game;

static void *ping_task(void *arg)
{
    const game *g = arg;
    heist_future *ping = g->first;
    for (long r = 0; r < g->rounds; r++) {
        /* On this task's stack: pong reads it before resolving pong, and
         * this task waits for that. */
        ping_msg m = {
            .round = r,
            .pong = bench_heist_future(&args, heist_future_new(), "new pong"),
            .next = bench_heist_future(&args, heist_future_new(), "new ping"),
        };
        heist_future_ref(m.pong); /* pong's reference */
        bench_heist_check(&args, heist_future_set_result(ping, &m),
                          "ping: set_result");
        void *answer = NULL;
        bench_heist_check(&args, heist_await(m.pong, &answer), "ping: await");
        if ((intptr_t)answer != r + 1)
            bench_fail(&args, "ping: a wrong answer");
        heist_future_unref(m.pong);
        heist_future_unref(ping);
        ping = m.next;
    }
    heist_future_unref(ping); /* the next round's, never resolved */
    return NULL;
}

static void *pong_task(void *arg)
{
    const game *g = arg;
    heist_future *ping = g->first;
    intptr_t sum = 0;
    for (long r = 0; r < g->rounds; r++) {
        void *v;
        bench_heist_check(&args, heist_await(ping, &v), "pong: await");
        const ping_msg *m = v;
        heist_future *pong = m->pong;
        long round = m->round;
        ping = m->next; /* read before pong lets ping go on */
        sum += round;
        bench_heist_check(&args,
                          heist_future_set_result(
                              pong, (void *)(intptr_t)(round + 1)),
                          "pong: set_result");
        heist_future_unref(pong);
    }
    return (void *)sum;
}

static void *pingpong(void *arg)
{
    game g = {
        .first = bench_heist_future(&args, heist_future_new(), "new ping"),
        .rounds = (long)(intptr_t)arg,
    };
    heist_future *t[2] = {
        bench_heist_future(&args, heist_spawn(NULL, ping_task, &g), "spawn"),
        bench_heist_future(&args, heist_spawn(NULL, pong_task, &g), "spawn"),
    };
    heist_future *all = bench_heist_future(&args, heist_gather(t, 2), "gather");
    bench_heist_check(&args, heist_await(all, NULL), "await gather");
    heist_future_unref(all);
    void *sum;
    bench_heist_check(&args, heist_future_result(t[1], &sum),
                      "pong's result");
    heist_future_unref(t[0]);
    heist_future_unref(t[1]);
    return sum;
}

static long long body(void *ctx, long rounds)
{
    return bench_heist_run(&args, ctx, pingpong, (void *)(intptr_t)rounds);
}

int main(int argc, char **argv)
{
    bench_parse_workers(&args, "pingpong", BENCH_HEIST_IMPL, 100000, 2, argc,
                        argv);
    heist_sched *s = bench_heist_new(&args);
    bench_time(&args, body, s, (long long)args.param * (args.param - 1) / 2);
    bench_heist_free(&args, s);
    return 0;
}
