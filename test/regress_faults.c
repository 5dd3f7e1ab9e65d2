/*
 * regress_faults.c - regression tests for issue 10, items 3-5, that need
 * a process of their own: injected faults (fault_inject.c), a death to
 * observe, or LeakSanitizer's verdict at exit. No Criterion; the exit
 * status is the verdict (0: passed), and a failure says why on stderr.
 *
 *   regress_faults fork_abort    item 3: thousands of forks while no thread
 *       or no memory can be had (once, a deque growth's call_rcu started
 *       liburcu's helper thread and liburcu aborted inside heist_fork; now
 *       the deque does not grow, and a thief without memory for its steal
 *       record steals no fork). Run in a child process: passes if the child
 *       exits 0 (the forks ran and joined, or heist_run failed with
 *       ENOMEM/EAGAIN) and, in ASan builds, LeakSanitizer found nothing at
 *       its exit; fails if it died.
 *   regress_faults drain_refused a task with forks outstanding awaits
 *       while no memory can be had: the save list that would keep its
 *       forks (lib/fork.c, the drain) cannot grow, so heist_await says
 *       ENOMEM, nothing was waited or joined, and the forks join afterwards
 *       with their results.
 *   regress_faults queue_claimed   a drain nested past its bound queues
 *       forks as items of its own worker (lib/fork.c, "Bounded drains");
 *       with no stack to be had, their joiner (one worker) runs them
 *       itself, each once, instead of waiting for the items forever.
 *   regress_faults sleep_early   item 4: with the timer thread unable to
 *       start, heist_sleep(200 ms) must take 200 ms or return ENOMEM/EAGAIN,
 *       heist_await_timeout(100 ms) must not give ETIMEDOUT sooner, and a
 *       cancel must interrupt a task's 30 s sleep within 10 s.
 *   regress_faults timer_leak    item 5: short sleeps and timed awaits
 *       that time out while others are cancelled, and a cancel racing the
 *       start of a task's 10 s sleep, many rounds; then heist_sched_free:
 *       a wait node
 *       left in the timer heap is a leak that LeakSanitizer reports at exit
 *       (asan preset: non-zero exit). Other builds only run the race.
 *   regress_faults membarrier_used / membarrier_refused   the parking
 *       protocol's two forms (lib/park.c): with membarrier(2), or, when
 *       the kernel refuses it (fault_inject.c makes it fail with ENOSYS),
 *       with a fence on the publishing side. Each runs a hunt for a lost
 *       wake-up: a task spawns onto its own worker's queue and busy-waits
 *       for the child, so only the other worker can run it (a hang past
 *       30 s is a failure). "used" checks that parks called membarrier,
 *       "refused" that none did after the refusal (the fallback is
 *       taken), so each is the other's control. Not built under TSan,
 *       whose build always takes the fallback.
 *   regress_faults prefault_refused / prefault_short   lib/stack.c's
 *       request for stacks ahead of use (process_madvise) refused with
 *       EINVAL (a kernel without it: the library stops asking) or ENOMEM
 *       (a passing shortage: it goes on asking); every task runs.
 *   regress_faults trace_kept   a heist_sched_new that fails once its trace
 *       file is open (no thread can start) leaves a file that was at the
 *       trace path as it was (it deleted it), and removes one it made.
 *       Then two schedulers trace to one path, the longer trace written
 *       first: the file holds the second, whole (one trace end, not the
 *       first trace's tail after it).
 */
#include "fault_inject.h"
#include "test_util.h"

#include <heist/heist.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MS(x) ((uint64_t)(x)*1000000u)

static int failures;

#define FAIL(...)                                                              \
    do {                                                                       \
        fprintf(stderr, "regress_faults: FAIL: " __VA_ARGS__);                 \
        fputc('\n', stderr);                                                   \
        failures++;                                                            \
    } while (0)

static bool oom(int e)
{
    return e == ENOMEM || e == EAGAIN;
}

static heist_sched *new_sched(void)
{
    heist_config cfg = {.workers = 2};
    heist_sched *s = NULL;
    int r = heist_sched_new(&cfg, &s);
    if (r) {
        fprintf(stderr, "regress_faults: heist_sched_new: %d\n", r);
        exit(2);
    }
    return s;
}

/* ---- item 3 -------------------------------------------------------------- */

enum { WIDE = 6000 }; /* forks outstanding at once */
static heist_task frames[WIDE];

static void *leaf(void *arg)
{
    return arg;
}

static void *wide_forks(void *arg)
{
    (void)arg;
    for (long i = 0; i < WIDE; i++)
        heist_fork(&frames[i], leaf, (void *)i);
    long bad = 0;
    for (long i = WIDE - 1; i >= 0; i--) {
        void *v = NULL;
        if (heist_join(&frames[i], &v) != 0 || (long)v != i)
            bad++;
    }
    return (void *)bad;
}

static int fork_abort_child(enum fi_kind kind)
{
    heist_sched *s = new_sched();
    /* Everything heist_sched_new acquired is there; from now on no thread
     * (or no memory) can be had. */
    fi_arm(kind, 1, FI_FROM);
    void *bad = NULL;
    int r = heist_run(s, wide_forks, NULL, &bad);
    fi_disarm();
    if (r == 0 && bad)
        FAIL("%ld of %d forks joined wrong", (long)bad, WIDE);
    else if (r != 0 && !oom(r))
        FAIL("heist_run returned %d (%s)", r, strerror(r));
    r = heist_sched_free(s);
    if (r)
        FAIL("heist_sched_free returned %d", r);
    return failures ? 1 : 0;
}

static int fork_abort(void)
{
    enum fi_kind kinds[] = {FI_THREAD, FI_ALLOC};
    for (int k = 0; k < 2; k++) {
        fflush(NULL);
        pid_t p = fork();
        if (p < 0) {
            FAIL("fork: %s", strerror(errno));
            continue;
        }
        if (p == 0) {
            failures = 0; /* the child's own */
            /* exit, not _exit: LeakSanitizer checks at exit, and what the
             * forks under faults leaked is this case's to find (this
             * process forked before it had any thread: exit is safe). */
            exit(fork_abort_child(kinds[k]));
        }
        int st = 0;
        if (waitpid(p, &st, 0) != p)
            FAIL("waitpid: %s", strerror(errno));
        else if (WIFSIGNALED(st))
            FAIL("every %s failing after heist_sched_new: %d forks "
                 "killed the process with signal %d",
                 fi_kind_name(kinds[k]), WIDE, WTERMSIG(st));
        else if (WEXITSTATUS(st) != 0)
            FAIL("every %s failing after heist_sched_new: exit %d",
                 fi_kind_name(kinds[k]), WEXITSTATUS(st));
    }
    return failures ? 1 : 0;
}

/* ---- item 4 -------------------------------------------------------------- */

static void *sleeps(void *arg)
{
    (void)arg;
    uint64_t t0 = ht_now_ns();
    int r = heist_sleep(MS(200));
    uint64_t took = ht_now_ns() - t0;
    if (r == 0 && took < MS(200))
        FAIL("heist_sleep(200 ms) returned 0 after %.3f ms (no timer "
             "thread)", (double)took / 1e6);
    else if (r != 0 && !oom(r))
        FAIL("heist_sleep(200 ms) returned %d (%s)", r, strerror(r));

    heist_future *never = heist_future_new();
    if (!never) {
        FAIL("heist_future_new failed");
        return NULL;
    }
    t0 = ht_now_ns();
    r = heist_await_timeout(never, MS(100), NULL);
    took = ht_now_ns() - t0;
    if (r == ETIMEDOUT && took < MS(100))
        FAIL("heist_await_timeout(100 ms) gave ETIMEDOUT after %.3f ms (no "
             "timer thread)", (double)took / 1e6);
    else if (r != ETIMEDOUT && !oom(r))
        FAIL("heist_await_timeout(100 ms) returned %d (%s)", r, strerror(r));
    heist_future_unref(never);
    return NULL;
}

/* Far longer than the bound below: a cancel that does not end the sleep
 * shows as a failure, not as a sleep that ran out just in time, and the
 * bound is loose enough for a loaded machine (a cancel that works ends it
 * within milliseconds). */
#define LONG_SLEEP_MS 30000
#define CANCEL_BOUND_MS 10000

static void *long_sleep(void *arg)
{
    (void)arg;
    return (void *)(long)heist_sleep(MS(LONG_SLEEP_MS));
}

static void *cancel_sleep(void *arg)
{
    (void)arg;
    heist_future *t = heist_spawn(NULL, long_sleep, NULL);
    if (!t) {
        FAIL("heist_spawn failed");
        return NULL;
    }
    heist_sleep(MS(20)); /* may be a blocking sleep here: that is fine */
    uint64_t t0 = ht_now_ns();
    heist_future_cancel(t);
    void *v = NULL;
    int r = heist_await(t, &v);
    uint64_t took = ht_now_ns() - t0;
    if (took > MS(CANCEL_BOUND_MS))
        FAIL("a cancel took %.0f ms to end a task's %d s heist_sleep (no "
             "timer thread; want ECANCELED at once)", (double)took / 1e6,
             LONG_SLEEP_MS / 1000);
    /* Done (0) only if the sleep was refused (ENOMEM/EAGAIN, returned as
     * the task's value) and the task ended before the cancel came. */
    if (r == 0 && !oom((int)(long)v))
        FAIL("the cancelled sleeper was not cancelled: its heist_sleep "
             "returned %ld", (long)v);
    else if (r != 0 && r != ECANCELED && !oom(r))
        FAIL("await of the cancelled sleeper returned %d", r);
    heist_future_unref(t);
    return NULL;
}

static int sleep_early(void)
{
    heist_sched *s = new_sched();
    fi_arm(FI_THREAD, 1, FI_FROM); /* the timer thread cannot start */
    int r = heist_run(s, sleeps, NULL, NULL);
    if (r)
        FAIL("heist_run(sleeps) returned %d", r);
    r = heist_run(s, cancel_sleep, NULL, NULL);
    if (r)
        FAIL("heist_run(cancel_sleep) returned %d", r);
    fi_disarm();
    r = heist_sched_free(s);
    if (r)
        FAIL("heist_sched_free returned %d", r);
    return failures ? 1 : 0;
}

/* ---- item 5 -------------------------------------------------------------- */

static void *sleep_10s(void *arg)
{
    atomic_store((atomic_int *)arg, 1);
    heist_sleep(10ull * 1000000000u);
    return NULL;
}

/* Short timed waits that time out, while other tasks of the same round are
 * cancelled: the timer's wake races the waits' own ends. */
static void *short_timed(void *arg)
{
    long i = (long)arg;
    heist_future *f = heist_future_new();
    if (!f)
        return NULL;
    if (i % 2)
        heist_await_timeout(f, (uint64_t)(i % 50) * 1000u, NULL);
    else
        heist_sleep((uint64_t)(i % 50) * 1000u);
    heist_future_unref(f);
    return NULL;
}

static void *timed_rounds(void *arg)
{
    (void)arg;
    enum { N = 2000 };
    static heist_future *t[N];
    for (int r = 0; r < HT_SCALE(20, 5); r++) {
        for (long i = 0; i < N; i++)
            t[i] = heist_spawn(NULL, short_timed, (void *)i);
        for (long i = 0; i < N; i += 3)
            if (t[i])
                heist_future_cancel(t[i]);
        for (long i = 0; i < N; i++)
            if (t[i]) {
                heist_await(t[i], NULL);
                heist_future_unref(t[i]);
            }
    }
    return NULL;
}

static int timer_leak(void)
{
    heist_sched *s = new_sched();
    if (heist_run(s, timed_rounds, NULL, NULL))
        FAIL("heist_run(timed_rounds) failed");
    uint64_t t0 = ht_now_ns(), rng = 1;
    int rounds = HT_SCALE(3000, 1000);
    for (int i = 0; i < rounds; i++) {
        atomic_int started = 0;
        heist_future *t = heist_spawn(s, sleep_10s, &started);
        if (!t) {
            FAIL("heist_spawn failed");
            break;
        }
        /* The cancel lands around the start of the sleep: right after the
         * task says it is about to sleep, after a short varying delay. */
        while (!atomic_load(&started))
            ;
        for (unsigned k = (unsigned)(ht_rand(&rng) % 2048); k; k--)
            __asm__ volatile("" ::: "memory");
        heist_future_cancel(t);
        int r = heist_await(t, NULL);
        if (r != ECANCELED)
            FAIL("await of a cancelled sleeper returned %d", r);
        heist_future_unref(t);
    }
    int r = heist_sched_free(s);
    if (r)
        FAIL("heist_sched_free returned %d", r);
    fprintf(stderr, "regress_faults timer_leak: %d rounds, %.1f s%s\n", rounds,
            (double)(ht_now_ns() - t0) / 1e9,
            HT_SANITIZED ? "; LeakSanitizer checks at exit" : "");
    return failures ? 1 : 0;
}

/* ---- stacks asked for ahead of use, refused ------------------------------ */

static void burst(heist_sched *s, long n)
{
    int r = ht_gate_burst(s, n);
    if (r)
        FAIL("a burst of %ld waiters: %d", n, r);
}

/* lib/stack.c asks the kernel for fresh stacks' pages ahead of use
 * (process_madvise, MADV_POPULATE_WRITE). err EINVAL: a kernel that
 * refuses it, so the library must stop asking after the first refusal
 * (one call per worker at most may already be under way); ENOMEM: a
 * passing shortage, so it must go on asking. Either way every task runs.
 * Two bursts of 300 waiters on 2 workers carve about 300 stacks: 5 calls
 * or more when the library keeps asking (after 16, 32, 64, 128, 192 and
 * 256 slots carved). */
static int prefault_refused(int err)
{
    fi_refuse_process_madvise(err);
    heist_sched *s = new_sched();
    burst(s, 300);
    uint64_t first = fi_process_madvise_calls();
    burst(s, 300);
    uint64_t calls = fi_process_madvise_calls();
    if (heist_sched_free(s))
        FAIL("heist_sched_free failed");
    fprintf(stderr, "regress_faults prefault_%s: %llu process_madvise calls\n",
            err == ENOMEM ? "short" : "refused", (unsigned long long)calls);
#ifdef SYS_process_madvise
    if (first == 0)
        FAIL("the library never asked for stacks ahead of use");
    if (err != ENOMEM && calls > 2)
        FAIL("%llu calls after the kernel refused the first",
             (unsigned long long)calls);
    if (err == ENOMEM && calls < 5)
        FAIL("only %llu calls: a passing ENOMEM stopped the asking",
             (unsigned long long)calls);
#else
    (void)first;
#endif
    return failures ? 1 : 0;
}

/* ---- the parking protocol with and without membarrier ----------------- */

static int membarrier_form(bool refuse)
{
    fi_refuse_membarrier(refuse);
    struct ht_watchdog wd;
    ht_watchdog_start(&wd, "a worker's push was never taken (lost wake-up)",
                      30);
    heist_sched *s = new_sched();
    int reps = HT_SCALE(30000, 3000);
    int r = ht_push_hunt(s, reps, 99, &wd);
    if (r)
        FAIL("the hunt failed (%d)", r);
    heist_stats st;
    if (heist_sched_stats(s, &st))
        FAIL("heist_sched_stats failed");
    if (heist_sched_free(s))
        FAIL("heist_sched_free failed");
    ht_watchdog_stop(&wd);
    uint64_t query = fi_membarrier_calls(0), fences = fi_membarrier_calls(1 << 3);
    fprintf(stderr,
            "regress_faults membarrier_%s: %d rounds, %llu parks, %llu "
            "queries, %llu membarrier fences\n",
            refuse ? "refused" : "used", reps,
            (unsigned long long)st.total.parks, (unsigned long long)query,
            (unsigned long long)fences);
    if (query == 0)
        FAIL("the library never asked for membarrier");
    if (st.total.parks == 0)
        FAIL("no worker parked: the hunt tested nothing");
    if (refuse && fences != 0)
        FAIL("%llu membarrier fences after the kernel refused it",
             (unsigned long long)fences);
    if (!refuse && fences == 0)
        FAIL("membarrier is there, but no park called it");
    return failures ? 1 : 0;
}

/* ---- drain_refused ------------------------------------------------------ */

enum { DRAIN_FORKS = 40 };

static void *resolve_later(void *arg)
{
    heist_sleep(MS(20));
    heist_future_set_result(arg, (void *)7);
    return NULL;
}

/* Checks are reported with FAIL (heist_run orders them before main reads
 * the count). */
static void *await_with_forks(void *arg)
{
    (void)arg;
    heist_future *f = heist_future_new();
    heist_future *r = f ? heist_spawn(NULL, resolve_later, f) : NULL;
    if (!f || !r) {
        FAIL("setup: no future or task");
        return NULL;
    }
    /* A first wait, so that the wait's record comes from the cache below
     * and the save list is what memory is refused to. */
    heist_sleep(MS(1));
    heist_task t[DRAIN_FORKS];
    for (long i = 0; i < DRAIN_FORKS; i++)
        heist_fork(&t[i], leaf, (void *)(i + 1));
    fi_arm(FI_ALLOC, 1, FI_FROM);
    void *v = NULL;
    int e = heist_await(f, &v);
    uint64_t refused = fi_failed();
    fi_disarm();
    if (e != ENOMEM || refused == 0)
        FAIL("await with %d forks and no memory: %d (%s), %llu calls "
             "refused; want ENOMEM",
             DRAIN_FORKS, e, strerror(e), (unsigned long long)refused);
    for (long i = DRAIN_FORKS - 1; i >= 0; i--) {
        void *x = NULL;
        if (heist_join(&t[i], &x) != 0 || x != (void *)(i + 1))
            FAIL("fork %ld joined wrong after the refused await", i);
    }
    if (heist_await(f, &v) != 0 || v != (void *)7)
        FAIL("the await after the refusal did not get the value");
    heist_await(r, NULL);
    heist_future_unref(r);
    heist_future_unref(f);
    return NULL;
}

/* ---- queue_claimed --------------------------------------------------------- */

/* A drain nested too deep queues the older forks as items of its worker
 * (lib/fork.c, "Bounded drains"). Their joiner waits by suspending; if no
 * stack can be had for that, it must run a fork whose item no worker has
 * taken itself, or, on one worker, wait forever for an item queued behind
 * it. Here (one worker, new mappings refused) tasks await a gate until one
 * finds no stack left; then a task forks QUEUE_FORKS children that each
 * await the gate and awaits it too: its drain nests past the bound and
 * queues the oldest children, every await is refused (ENOMEM), and the
 * joins must run the queued children themselves, each once. Nothing
 * resumes meanwhile (nothing ends the waits but the gate), so no stack
 * comes back. */
enum { QUEUE_FORKS = 24, QUEUE_WAITERS_MAX = 4096, QUEUE_BATCH = 8 };
/* Stacks this large (address space only) take a mapping or two each, so a
 * few dozen waiting tasks take every stack that needs none, long before
 * the records' slab, which new mappings would also grow, runs out. */
#define QUEUE_STACK ((size_t)64 << 20)

static heist_future *queue_gate;
static atomic_int queue_refused; /* waiters that found no stack */
static bool queue_probed;        /* queue_probe ran the forks */

static void *sleep_ms(void *arg)
{
    heist_sleep(MS((uintptr_t)arg));
    return NULL;
}

static void *gate_waiter(void *arg)
{
    (void)arg;
    int e = heist_await(queue_gate, NULL);
    if (e == ENOMEM)
        atomic_fetch_add(&queue_refused, 1);
    else if (e != 0)
        FAIL("a waiter's await of the gate: %d (%s)", e, strerror(e));
    return NULL;
}

/* The children, static: a run after their parent returned (a claimed
 * item run twice) must still find them. late: ran after the parent's
 * await returned, so at its join (the claim; nothing else runs on the one
 * worker while the parent does not suspend). */
static struct queued_child {
    long i;
    atomic_int runs;
    bool late;
} queue_kids[QUEUE_FORKS];
static bool queue_awaited; /* the parent's await returned */

static void *queue_child(void *arg)
{
    struct queued_child *c = arg;
    atomic_fetch_add(&c->runs, 1);
    c->late = queue_awaited;
    int e = heist_await(queue_gate, NULL);
    if (e != ENOMEM)
        FAIL("child %ld's await with no stack to be had: %d, want ENOMEM",
             c->i, e);
    return (void *)(c->i * 3 + 1);
}

/* Spawned after each batch of waiters: once one of them found no stack,
 * runs the forks (the worker's pool is empty: nothing resumed since). */
static void *queue_probe(void *arg)
{
    (void)arg;
    if (atomic_load(&queue_refused) == 0)
        return NULL;
    queue_probed = true;
    struct queued_child *c = queue_kids;
    heist_task t[QUEUE_FORKS];
    for (long i = 0; i < QUEUE_FORKS; i++) {
        c[i].i = i;
        atomic_init(&c[i].runs, 0);
        heist_fork(&t[i], queue_child, &c[i]);
    }
    int e = heist_await(queue_gate, NULL);
    queue_awaited = true;
    if (e != ENOMEM)
        FAIL("the parent's await with no stack to be had: %d, want ENOMEM",
             e);
    for (long i = QUEUE_FORKS - 1; i >= 0; i--) {
        void *x = NULL;
        e = heist_join(&t[i], &x);
        if (e != 0 || x != (void *)(i * 3 + 1))
            FAIL("join of child %ld: %d, value %ld; want 0, %ld", i, e,
                 (long)x, i * 3 + 1);
    }
    return NULL;
}

/* After the scheduler's end (every queued item has run): each child ran
 * once, and some at their joins (claimed), none before. */
static void queue_check_kids(void)
{
    int late = 0;
    for (long i = 0; i < QUEUE_FORKS; i++) {
        int n = atomic_load(&queue_kids[i].runs);
        if (n != 1)
            FAIL("child %ld ran %d times", i, n);
        late += queue_kids[i].late;
    }
    if (queue_probed && late == 0)
        FAIL("no child ran at its join: none was queued and claimed");
}

static void *queue_claimed_main(void *arg)
{
    (void)arg;
    queue_gate = heist_future_new();
    heist_future **w = malloc(QUEUE_WAITERS_MAX * sizeof *w);
    if (!queue_gate || !w) {
        FAIL("setup: no gate or memory");
        return NULL;
    }
    /* Stacks in the pool before the refusal, for our awaits. */
    heist_future *warm[QUEUE_BATCH * 2];
    for (int k = 0; k < QUEUE_BATCH * 2; k++)
        warm[k] = heist_spawn(NULL, sleep_ms, (void *)1);
    for (int k = 0; k < QUEUE_BATCH * 2; k++) {
        if (!warm[k] || heist_await(warm[k], NULL) != 0)
            FAIL("setup: sleeping task %d", k);
        if (warm[k])
            heist_future_unref(warm[k]);
    }
    fi_arm(FI_MMAP, 1, FI_FROM);
    size_t nw = 0;
    while (!queue_probed && nw + QUEUE_BATCH <= QUEUE_WAITERS_MAX) {
        for (int k = 0; k < QUEUE_BATCH; k++)
            if ((w[nw] = heist_spawn(NULL, gate_waiter, NULL)) != NULL)
                nw++;
        heist_future *p = heist_spawn(NULL, queue_probe, NULL);
        /* Our await takes a stack too; refused, we cannot wait here. */
        if (!p || heist_await(p, NULL) != 0) {
            FAIL("the probe: %s", p ? "await refused" : "spawn refused");
            break;
        }
        heist_future_unref(p);
    }
    if (!queue_probed)
        FAIL("%zu waiting tasks and new mappings refused, yet stacks left",
             nw);
    fi_disarm();
    heist_future_set_result(queue_gate, NULL);
    for (size_t i = 0; i < nw; i++) {
        heist_await(w[i], NULL);
        heist_future_unref(w[i]);
    }
    free(w);
    heist_future_unref(queue_gate);
    return NULL;
}

/* Runs main_fn on a scheduler of one worker with stacks of stack_size
 * bytes (0: the default): 0, 1 on a failed check, 2 without a scheduler. */
static int run_one_worker(heist_fn main_fn, size_t stack_size)
{
    heist_config cfg = {.workers = 1, .stack_size = stack_size};
    heist_sched *s = NULL;
    if (heist_sched_new(&cfg, &s) != 0)
        return 2;
    int e = heist_run(s, main_fn, NULL, NULL);
    if (e)
        FAIL("heist_run returned %d", e);
    if (heist_sched_free(s))
        FAIL("heist_sched_free failed");
    return failures ? 1 : 0;
}

/* ---- the trace file -------------------------------------------------------- */

static const char kept_text[] = "a file of the user's\n";

static bool file_is(const char *path, const char *text)
{
    char buf[256];
    FILE *fp = fopen(path, "r");
    if (!fp)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    return strcmp(buf, text) == 0;
}

static void *busy_a_while(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++)
        heist_sleep(1000);
    return NULL;
}

/* How many lines of path contain what. -1: no such file. */
static int lines_with(const char *path, const char *what)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    int n = 0;
    char line[4096];
    while (fgets(line, sizeof line, fp))
        n += strstr(line, what) != NULL;
    fclose(fp);
    return n;
}

/* heist_sched_new(cfg) with the k-th thread it starts refused: must be
 * EAGAIN (a scheduler made all the same is freed). */
static void new_with_thread_refused(const heist_config *cfg, uint64_t k)
{
    heist_sched *s = NULL;
    fi_arm(FI_THREAD, k, FI_FROM);
    int r = heist_sched_new(cfg, &s);
    fi_disarm();
    if (r != EAGAIN)
        FAIL("heist_sched_new, thread %d refused: returned %d", (int)k, r);
    if (r == 0)
        heist_sched_free(s);
}

static int trace_kept(void)
{
    const char *path = "regress_faults_trace.json";
    FILE *fp = fopen(path, "w");
    if (!fp || fputs(kept_text, fp) < 0 || fclose(fp) != 0) {
        fprintf(stderr, "regress_faults: cannot write %s\n", path);
        return 2;
    }
    heist_config cfg = {.workers = 2, .trace_path = path};
    /* Each of its threads (the timer's, two workers') in turn cannot
     * start, before and after the trace file is opened. */
    for (uint64_t k = 1; k <= 3; k++) {
        new_with_thread_refused(&cfg, k);
        if (!file_is(path, kept_text))
            FAIL("heist_sched_new, thread %d refused, deleted or changed the "
                 "file at its trace path", (int)k);
    }
    unlink(path);
    for (uint64_t k = 1; k <= 3; k++) {
        new_with_thread_refused(&cfg, k);
        if (access(path, F_OK) == 0)
            FAIL("heist_sched_new, thread %d refused, left the trace file it "
                 "made", (int)k);
    }
    /* Two schedulers, one path: the first freed writes the longer trace. */
    heist_sched *a = NULL, *b = NULL;
    if (heist_sched_new(&cfg, &a) != 0 || heist_sched_new(&cfg, &b) != 0) {
        fprintf(stderr, "regress_faults: heist_sched_new failed\n");
        return 2;
    }
    if (heist_run(a, busy_a_while, (void *)(intptr_t)200, NULL) != 0 ||
        heist_run(b, busy_a_while, (void *)(intptr_t)1, NULL) != 0)
        FAIL("heist_run failed");
    if (heist_sched_free(a) != 0 || heist_sched_free(b) != 0)
        FAIL("heist_sched_free failed");
    /* Each trace has one such line, its last. */
    int n = lines_with(path, "\"otherData\"");
    if (n != 1)
        FAIL("the trace file holds %d trace ends (want 1: the second "
             "trace, whole, and nothing of the first after it)", n);
    unlink(path);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "membarrier_used") == 0)
        return membarrier_form(false);
    if (argc == 2 && strcmp(argv[1], "membarrier_refused") == 0)
        return membarrier_form(true);
    if (argc == 2 && strcmp(argv[1], "prefault_refused") == 0)
        return prefault_refused(EINVAL);
    if (argc == 2 && strcmp(argv[1], "prefault_short") == 0)
        return prefault_refused(ENOMEM);
    if (argc == 2 && strcmp(argv[1], "fork_abort") == 0)
        return fork_abort();
    if (argc == 2 && strcmp(argv[1], "drain_refused") == 0)
        return run_one_worker(await_with_forks, 0);
    if (argc == 2 && strcmp(argv[1], "queue_claimed") == 0) {
        int rc = run_one_worker(queue_claimed_main, QUEUE_STACK);
        queue_check_kids();
        return rc == 2 ? 2 : failures ? 1 : 0;
    }
    if (argc == 2 && strcmp(argv[1], "sleep_early") == 0)
        return sleep_early();
    if (argc == 2 && strcmp(argv[1], "timer_leak") == 0)
        return timer_leak();
    if (argc == 2 && strcmp(argv[1], "trace_kept") == 0)
        return trace_kept();
    fprintf(stderr,
            "usage: regress_faults fork_abort|drain_refused|queue_claimed|"
            "sleep_early|timer_leak|membarrier_used|membarrier_refused|"
            "prefault_refused|prefault_short|trace_kept\n");
    return 2;
}
