/*
 * test_prefault.c - fresh stacks asked for ahead of use (lib/stack.c,
 * "prefaulting"): when carving reaches slots not yet asked for, the next
 * run of slots' top pages are populated with one process_madvise call.
 * White-box (heist_internal): it reads which slots were asked for and
 * whether their top pages are resident.
 *
 * Where the kernel refuses the advice (before Linux 6.13, or without
 * PIDFD_SELF before 6.15), the library must stop asking and fault pages
 * in on first touch as before: then the test checks that nothing was
 * asked for and that the tasks ran all the same, and says so in a
 * warning.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <heist/heist.h>
#include <stdatomic.h>

#include "fiber.h"
#include "test_util.h"
#include "worker.h"

struct gate_burst {
    heist_future *gate;
    long n;
    atomic_long waited; /* waiters past their await */
};

static void *waiter(void *arg)
{
    struct gate_burst *b = arg;
    cr_assert_eq(heist_await(b->gate, NULL), 0);
    /* Relaxed: read after heist_run returns (its join orders it). */
    atomic_fetch_add_explicit(&b->waited, 1, memory_order_relaxed);
    return NULL;
}

/* Spawns n waiters, lets them all suspend on the gate (a sleep in
 * between: spawned tasks run as this one waits), opens it, gathers. */
static void *burst_main(void *arg)
{
    struct gate_burst *b = arg;
    heist_future **t = calloc((size_t)b->n, sizeof *t);
    cr_assert_not_null(t);
    for (long i = 0; i < b->n; i++) {
        t[i] = heist_spawn(NULL, waiter, b);
        cr_assert_not_null(t[i]);
    }
    cr_assert_eq(heist_sleep(20 * 1000 * 1000), 0);
    cr_assert_eq(heist_future_set_result(b->gate, NULL), 0);
    heist_future *all = heist_gather(t, (size_t)b->n);
    cr_assert_not_null(all);
    cr_assert_eq(heist_await(all, NULL), 0);
    heist_future_unref(all);
    for (long i = 0; i < b->n; i++)
        heist_future_unref(t[i]);
    free(t);
    return NULL;
}

Test(prefault, carved_stacks_were_asked_for)
{
    heist_sched *s = NULL;
    heist_config cfg = {.workers = 2};
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    struct gate_burst b = {.n = 200};
    b.gate = heist_future_new();
    cr_assert_not_null(b.gate);
    atomic_init(&b.waited, 0);
    cr_assert_eq(heist_run(s, burst_main, &b, NULL), 0);
    cr_assert_eq(atomic_load(&b.waited), b.n);

    heist_stats st;
    cr_assert_eq(heist_sched_stats(s, &st), 0);
    uint64_t carved = st.total.stacks_mapped;
    cr_assert_geq(carved, 2, "the waiters suspended on fresh stacks");
    size_t asked, resident;
    bool off;
    heist__stacks_prefault_info(&s->stacks, &asked, &resident, &off);
    if (off) {
        cr_log_warn("this kernel refuses process_madvise(PIDFD_SELF, "
                    "MADV_POPULATE_WRITE): checked only that no slot was "
                    "asked for after the refusal and that every task ran");
        /* The first carve asks, and is refused: at most one run. */
        cr_assert_leq(asked, 64);
    } else {
        /* Every carved slot was asked for, at most one run of 64 ahead
         * per chunk, and the pages are in (nothing gives back a stack
         * that is in use or pooled within the budget). */
        cr_assert_geq(asked, carved, "asked %zu, carved %llu", asked,
                      (unsigned long long)carved);
        cr_assert_leq(asked, carved + 64 * (size_t)s->stacks.nchunks,
                      "asked %zu, carved %llu", asked,
                      (unsigned long long)carved);
        cr_assert_eq(resident, asked, "resident %zu of %zu", resident,
                     asked);
    }
    heist_future_unref(b.gate);
    cr_assert_eq(heist_sched_free(s), 0);
}
