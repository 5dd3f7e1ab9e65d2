/*
 * test_prefault.c - fresh stacks asked for ahead of use (lib/stack.c,
 * "prefaulting"): when carving reaches slots not yet asked for, the next
 * run of slots' top pages are populated with one process_madvise call.
 * White-box (heist_internal): it reads which slots were asked for and
 * whether their top pages are resident.
 *
 * Where the kernel refuses the advice (before Linux 6.13, or without
 * PIDFD_SELF before 6.15), the library must stop asking and fault pages
 * in on first touch as before: then the test checks that asking stopped
 * and that the tasks ran all the same, and says so in a warning. That
 * path, and a passing ENOMEM, are checked on every kernel by
 * regress_faults prefault_refused and prefault_short (injected refusals).
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <heist/heist.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fiber.h"
#include "test_util.h"
#include "worker.h"

static void burst(heist_sched *s, long n)
{
    cr_assert_eq(ht_gate_burst(s, n), 0, "a burst of %ld waiters", n);
}

/* Whether this kernel takes process_madvise(PIDFD_SELF_THREAD_GROUP,
 * MADV_POPULATE_WRITE), asked as the library asks: where it does, the
 * library must not have turned prefaulting off (a range it got wrong, a
 * guard page say, is refused with EINVAL and would turn it off). */
static bool kernel_populates(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, (size_t)ps, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    struct iovec v = {p, (size_t)ps};
    long r = syscall(SYS_process_madvise, -10001, &v, (size_t)1,
                     23 /* MADV_POPULATE_WRITE */, 0u);
    munmap(p, (size_t)ps);
    return r == ps;
}

static const char refused[] =
    "this kernel refuses process_madvise(PIDFD_SELF, MADV_POPULATE_WRITE): "
    "checked only that nothing more was asked for after the refusal and "
    "that every task ran";

Test(prefault, carved_stacks_were_asked_for)
{
    heist_sched *s = NULL;
    /* A budget that keeps every idle stack: no trim gives pages back
     * while the test looks at them. */
    heist_config cfg = {.workers = 2, .stack_pool = (size_t)1 << 30};
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    bool populates = kernel_populates();
    burst(s, 200);

    struct heist__prefault_info pi;
    heist__stacks_prefault_info(&s->stacks, &pi);
    /* All 200 waited at once, each on a stack of its own. */
    cr_assert_geq(pi.carved, 200, "carved %zu", pi.carved);
    size_t chunks = s->stacks.nchunks;
    if (!populates) {
        cr_log_warn("%s", refused);
        cr_assert(pi.off);
        /* Asking stopped at the first refusal (a call or two already
         * under way on the other worker may have asked too): most slots
         * were never asked for. */
        cr_assert_lt(pi.asked, pi.carved, "asked %zu, carved %zu", pi.asked,
                     pi.carved);
    } else {
        cr_assert(!pi.off, "the library's calls were refused");
        /* Every slot past the first 16 of its chunk was asked for, never
         * more ahead than were carved, at most 63 ahead per chunk. */
        cr_assert_geq(pi.asked + 16 * chunks, pi.carved,
                      "asked %zu, carved %zu", pi.asked, pi.carved);
        cr_assert_leq(pi.asked, 2 * pi.carved, "asked %zu, carved %zu",
                      pi.asked, pi.carved);
        cr_assert_leq(pi.ahead, 63 * chunks, "ahead %zu", pi.ahead);
        /* Those asked for and not used yet are in: their top pages and
         * structs (nothing else touched them). */
        cr_assert_eq(pi.ahead_resident, pi.ahead, "resident %zu of %zu",
                     pi.ahead_resident, pi.ahead);
        cr_assert_eq(pi.ahead_struct_resident, pi.ahead,
                     "structs resident %zu of %zu", pi.ahead_struct_resident,
                     pi.ahead);
    }
    cr_assert_eq(heist_sched_free(s), 0);
}

/* A scheduler whose tasks seldom suspend asks for nothing. */
Test(prefault, few_stacks_ask_for_nothing)
{
    heist_sched *s = NULL;
    heist_config cfg = {.workers = 2};
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    burst(s, 8);
    struct heist__prefault_info pi;
    heist__stacks_prefault_info(&s->stacks, &pi);
    cr_assert_lt(pi.carved, 16, "carved %zu", pi.carved);
    cr_assert_eq(pi.asked, 0, "asked %zu", pi.asked);
    cr_assert_eq(heist_sched_free(s), 0);
}

/* Stacks given back to the kernel (the pool's trim, after a second of no
 * use) are asked for again, 64 at a time, when a later burst takes them. */
Test(prefault, given_back_stacks_are_asked_for_again)
{
    heist_sched *s = NULL;
    heist_config cfg = {.workers = 2, .stack_pool = 4096};
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    bool populates = kernel_populates();
    burst(s, 300);
    /* Wait for the trim (a timer, 1 s after the pool was last used). */
    struct heist__prefault_info pi;
    uint64_t t0 = ht_now_ns();
    do {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        heist__stacks_prefault_info(&s->stacks, &pi);
    } while ((pi.given < 64 || !pi.trim_done) &&
             ht_now_ns() - t0 < 60ull * 1000000000u);
    /* Done: a trim gives back 64 stacks at a time and drops the lock
     * between batches; one still under way would reset given_asked
     * during the burst below. */
    cr_assert(pi.trim_done, "the trim did not end");
    cr_assert_geq(pi.given, 64, "the trim gave back %zu stacks", pi.given);
    cr_assert_eq(pi.given_asked, 0, "nothing asked for since the trim");
    size_t given_before = pi.given;

    /* More waiters than the workers' own pools hold (64 each), so that
     * some take given-back stacks. */
    burst(s, 200);
    heist__stacks_prefault_info(&s->stacks, &pi);
    cr_assert_lt(pi.given, given_before, "the burst took given-back stacks");
    if (!populates) {
        cr_log_warn("%s", refused);
        cr_assert(pi.off);
        cr_assert_eq(pi.given_asked, 0);
    } else {
        cr_assert(!pi.off, "the library's calls were refused");
        /* A take that finds none asked for asks for itself and the next
         * 63 on the list (as many as there are); the takes after it use
         * those up. */
        size_t left = given_before, asked = 0;
        for (size_t taken = given_before - pi.given; taken > 0; taken--) {
            if (asked > 0)
                asked--;
            else
                asked = (left < 64 ? left : 64) - 1;
            left--;
        }
        cr_assert_eq(pi.given_asked, asked, "asked %zu, expected %zu (taken %zu)",
                     pi.given_asked, asked, given_before - pi.given);
        cr_assert_eq(pi.given_resident, pi.given_asked,
                     "resident %zu of %zu", pi.given_resident,
                     pi.given_asked);
    }
    cr_assert_eq(heist_sched_free(s), 0);
}
