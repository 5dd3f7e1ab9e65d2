/*
 * test_forkjoin.c - heist_fork / heist_join (include/heist/task.h): results
 * of recursive computations on 1, 2 and 8 workers, deep nesting, more forks
 * outstanding than a worker's deque holds, fork-join outside a worker, every heist_join error, fork counters, and the
 * happens-before edge that heist_join gives user data.
 */
/* The inline join checks the tasks it runs in every preset, release
 * (NDEBUG) too: the tests of forgotten joins need it. */
#define HEIST_JOIN_CHECK 1
#include <criterion/criterion.h>

#include <errno.h>
#include <heist/heist.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

#if defined(HEIST_NO_INLINE) && defined(HEIST_INLINE)
#error "HEIST_NO_INLINE must turn the inline path off"
#endif

/* A hang aborts with a message (test_util.h). */
HT_WATCHDOG_SUITE(forkjoin, 300);

static const unsigned worker_counts[] = {1, 2, 8};
#define NCOUNTS (sizeof(worker_counts) / sizeof(worker_counts[0]))

static heist_sched *new_sched(unsigned workers)
{
    heist_config cfg = {.workers = workers};
    heist_sched *s = NULL;
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    return s;
}

static void *run(heist_sched *s, heist_fn fn, void *arg)
{
    void *r = NULL;
    int err = heist_run(s, fn, arg, &r);
    cr_assert_eq(err, 0, "heist_run: error %d", err);
    return r;
}

/* ---- fib -------------------------------------------------------------- */

/* fib with no cutoff (test_util.h): one fork per call with n >= 2. */
#define JOIN_FAILED HT_FIB_FAILED
#define fib ht_fib
#define fib_seq ht_fib_seq

/* Forks made by fib(n): its calls with n >= 2, fib(n + 1) - 1. */
static uint64_t fib_forks(long n)
{
    return n < 2 ? 0 : (uint64_t)fib_seq(n + 1) - 1;
}

Test(forkjoin, fib_1_2_8_workers)
{
    long big = HT_SCALE(30, 27);
    for (size_t w = 0; w < NCOUNTS; w++) {
        heist_sched *s = new_sched(worker_counts[w]);
        for (long n = 0; n <= 25; n++)
            cr_assert_eq((long)run(s, fib, (void *)n), fib_seq(n),
                         "fib(%ld) on %u workers", n, worker_counts[w]);
        cr_assert_eq((long)run(s, fib, (void *)big), fib_seq(big),
                     "fib(%ld) on %u workers", big, worker_counts[w]);
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

/* ---- nqueens: a task per placement ------------------------------------ */

struct board {
    int n, row;
    signed char col[16];
};

static bool safe(const struct board *b, int c)
{
    for (int r = 0; r < b->row; r++) {
        int d = b->col[r] - c;
        if (d == 0 || d == b->row - r || d == r - b->row)
            return false;
    }
    return true;
}

static void *nqueens(void *arg)
{
    const struct board *b = arg;
    if (b->row == b->n)
        return (void *)1L;
    struct board child[16];
    heist_task t[16];
    int k = 0;
    for (int c = 0; c < b->n; c++) {
        if (!safe(b, c))
            continue;
        child[k] = *b;
        child[k].col[b->row] = (signed char)c;
        child[k].row = b->row + 1;
        heist_fork(&t[k], nqueens, &child[k]);
        k++;
    }
    long sum = 0;
    bool failed = false;
    while (k-- > 0) {
        void *r = NULL;
        if (heist_join(&t[k], &r) != 0 || r == JOIN_FAILED)
            failed = true;
        else
            sum += (long)r;
    }
    return failed ? JOIN_FAILED : (void *)sum;
}

Test(forkjoin, nqueens_1_to_10)
{
    static const long solutions[] = {1, 0, 0, 2, 10, 4, 40, 92, 352, 724};
    for (size_t w = 0; w < NCOUNTS; w++) {
        heist_sched *s = new_sched(worker_counts[w]);
        for (int n = 1; n <= 10; n++) {
            struct board b = {.n = n};
            cr_assert_eq((long)run(s, nqueens, &b), solutions[n - 1],
                         "nqueens(%d) on %u workers", n, worker_counts[w]);
        }
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

/* ---- deep nesting ------------------------------------------------------ */

/* Each level forks the next and joins it: a chain of `depth` nested forks,
 * all live at once. Small frames: heist_task plus a few words. */
static void *chain(void *arg)
{
    uintptr_t d = (uintptr_t)arg;
    if (d == 0)
        return (void *)1;
    heist_task t;
    void *r = NULL;
    heist_fork(&t, chain, (void *)(d - 1));
    if (heist_join(&t, &r) != 0 || r == NULL)
        return NULL;
    return (void *)((uintptr_t)r + 1);
}

/* Tasks run on fiber stacks of heist_config.stack_size bytes: 10,000 nested
 * fork/join frames need more than the 128 KiB default (or 1 MiB) in an
 * unoptimized or sanitized build, so ask for 32 MiB (only touched pages cost
 * memory). */
Test(forkjoin, deep_nesting_10000)
{
    const uintptr_t depth = 10000;
    for (size_t w = 0; w < NCOUNTS; w++) {
        heist_config cfg = {.workers = worker_counts[w],
                            .stack_size = (size_t)32 << 20};
        heist_sched *s = NULL;
        cr_assert_eq(heist_sched_new(&cfg, &s), 0);
        for (int rep = 0; rep < 3; rep++)
            cr_assert_eq((uintptr_t)run(s, chain, (void *)depth), depth + 1,
                         "chain(%lu) on %u workers", (unsigned long)depth,
                         worker_counts[w]);
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

/* ---- a full deque ------------------------------------------------------ */

/* A worker's deque holds 2^18 forks (README); a fork beyond that runs at
 * once, and its join gives the result. One task forks FULL_FORKS children
 * (each a small fib, forking in turn: on a full deque those forks run at
 * once too) and joins them all in reverse, half with heist_join_fn; each
 * child runs once and every join gives its value. */
enum { FULL_FORKS = (1 << 18) + 3000 };

struct full_child {
    long i;
    atomic_uchar runs;
};

static void *full_child_fn(void *arg)
{
    struct full_child *c = arg;
    atomic_fetch_add_explicit(&c->runs, 1, memory_order_relaxed);
    return (void *)(c->i * 8 + (long)fib((void *)(c->i % 5)));
}

/* Children that had run when their parent's forks were done (heist_run
 * orders the write before the test reads it). */
static long full_ran_early;

static void *fork_until_full(void *arg)
{
    (void)arg;
    heist_task *t = malloc(FULL_FORKS * sizeof *t);
    struct full_child *c = calloc(FULL_FORKS, sizeof *c);
    if (!t || !c) {
        free(t);
        free(c);
        return (void *)-1;
    }
    for (long i = 0; i < FULL_FORKS; i++) {
        c[i].i = i;
        heist_fork(&t[i], full_child_fn, &c[i]);
    }
    /* The forks beyond the deque's 2^18 have run (no join has yet). */
    full_ran_early = 0;
    for (long i = 0; i < FULL_FORKS; i++)
        full_ran_early +=
            atomic_load_explicit(&c[i].runs, memory_order_relaxed);
    long bad = 0;
    for (long i = FULL_FORKS - 1; i >= 0; i--) {
        void *v = NULL;
        int e = (i & 1) ? heist_join(&t[i], &v)
                        : heist_join_fn(&t[i], full_child_fn, &v);
        if (e != 0 || (long)v != i * 8 + fib_seq(i % 5))
            bad++;
    }
    for (long i = 0; i < FULL_FORKS; i++)
        if (atomic_load_explicit(&c[i].runs, memory_order_relaxed) != 1)
            bad++;
    free(c);
    free(t);
    return (void *)bad;
}

Test(forkjoin, full_deque_runs_forks_at_once_1_2_8_workers)
{
    for (size_t w = 0; w < NCOUNTS; w++) {
        heist_sched *s = new_sched(worker_counts[w]);
        long bad = (long)run(s, fork_until_full, NULL);
        cr_assert_geq(full_ran_early, (long)FULL_FORKS - (1L << 18),
                      "%u workers: only %ld forks ran before their joins; "
                      "want the %ld beyond the deque's capacity",
                      worker_counts[w], full_ran_early,
                      (long)FULL_FORKS - (1L << 18));
        cr_assert_eq(bad, 0, "%u workers: %ld forks joined wrong or ran "
                     "other than once", worker_counts[w], bad);
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

/* ---- outside a worker: fork runs inline -------------------------------- */

struct probe {
    int ran;
    int worker_index;
};

static void *probe_fn(void *arg)
{
    struct probe *p = arg;
    p->ran++;
    p->worker_index = heist_worker_index();
    return (void *)0x77;
}

Test(forkjoin, outside_worker_runs_inline)
{
    struct probe p = {0, -2};
    heist_task t;
    memset(&t, 0, sizeof(t));
    heist_fork(&t, probe_fn, &p);
    cr_assert_eq(p.ran, 1, "heist_fork outside a worker must run fn now");
    cr_assert_eq(p.worker_index, -1);
    void *r = NULL;
    cr_assert_eq(heist_join(&t, &r), 0);
    cr_assert_eq(r, (void *)0x77);
    cr_assert_eq(p.ran, 1);
    /* A whole recursive computation, with no scheduler at all. */
    cr_assert_eq((long)fib((void *)20L), fib_seq(20));
    struct board b = {.n = 6};
    cr_assert_eq((long)nqueens(&b), 4);
    cr_assert_eq((uintptr_t)chain((void *)1000), 1001);
}

/* ---- heist_join errors ------------------------------------------------- */

static void *identity(void *arg)
{
    return arg;
}

/* Each check returns 0 when it passed, else the line that failed, so the
 * same code runs on a worker and outside one. */
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond))                                                           \
            return (void *)(intptr_t)__LINE__;                                 \
    } while (0)

/* arg != NULL: on a worker. */
static void *join_errors(void *arg)
{
    bool on_worker = arg != NULL;
    void *r = NULL;

    /* NULL task. */
    CHECK(heist_join(NULL, &r) == EINVAL);
    CHECK(heist_join(NULL, NULL) == EINVAL);

    /* Never forked (zeroed). */
    heist_task never;
    memset(&never, 0, sizeof(never));
    CHECK(heist_join(&never, &r) == EINVAL);

    /* Joined twice. */
    heist_task t;
    heist_fork(&t, identity, (void *)5);
    r = NULL;
    CHECK(heist_join(&t, &r) == 0);
    CHECK(r == (void *)5);
    CHECK(heist_join(&t, &r) == EINVAL);

    /* Out of order: nothing is joined, then the right order works. (Outside
     * a worker each fork has already run, and the order is not checked.) */
    heist_task a, b;
    void *ra = NULL, *rb = NULL;
    heist_fork(&a, identity, (void *)10);
    heist_fork(&b, identity, (void *)20);
    if (on_worker)
        CHECK(heist_join(&a, &ra) == EINVAL);
    CHECK(heist_join(&b, &rb) == 0);
    CHECK(rb == (void *)20);
    CHECK(heist_join(&a, &ra) == 0);
    CHECK(ra == (void *)10);

    /* NULL fn: nothing runs, join reports EINVAL. */
    heist_task z;
    heist_fork(&z, NULL, (void *)1);
    CHECK(heist_join(&z, &r) == EINVAL);

    /* NULL task at fork: nothing runs (and nothing is left unjoined). */
    struct probe p = {0, -2};
    heist_fork(NULL, probe_fn, &p);
    CHECK(p.ran == 0);
    CHECK(heist_join(NULL, &r) == EINVAL);

    /* result may be NULL. */
    heist_task u;
    heist_fork(&u, identity, (void *)1);
    CHECK(heist_join(&u, NULL) == 0);

    /* And fork/join still work afterwards. */
    CHECK((long)fib((void *)15L) == fib_seq(15));
    return NULL;
}

Test(forkjoin, join_errors_on_worker)
{
    for (size_t w = 0; w < NCOUNTS; w++) {
        heist_sched *s = new_sched(worker_counts[w]);
        void *line = run(s, join_errors, s);
        cr_assert_null(line, "on %u workers: check at line %d failed",
                       worker_counts[w], (int)(intptr_t)line);
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

Test(forkjoin, join_errors_outside_worker)
{
    void *line = join_errors(NULL);
    cr_assert_null(line, "check at line %d failed", (int)(intptr_t)line);
}

/* ---- counters ---------------------------------------------------------- */

static heist_stats stats(heist_sched *s)
{
    heist_stats st;
    cr_assert_eq(heist_sched_stats(s, &st), 0);
    return st;
}

Test(forkjoin, stats_count_forks)
{
    const long n = 20;
    for (size_t w = 0; w < NCOUNTS; w++) {
        unsigned nw = worker_counts[w];
        heist_sched *s = new_sched(nw);
        heist_stats before = stats(s);
        cr_assert_eq(before.workers, nw);
        cr_assert_eq(before.total.forks, 0);
        cr_assert_eq((long)run(s, fib, (void *)n), fib_seq(n));
        cr_assert_eq((long)run(s, fib, (void *)n), fib_seq(n));

        /* Counters only grow; read the total first, then each worker: the
         * ones idle workers still move (failed steals, parks) can only be
         * larger in the per-worker sum. */
        heist_stats st = stats(s);
        heist_counters sum = {0};
        for (unsigned i = 0; i < nw; i++) {
            heist_counters c;
            cr_assert_eq(heist_sched_worker_stats(s, i, &c), 0);
            sum.tasks += c.tasks;
            sum.forks += c.forks;
            sum.inlined += c.inlined;
            sum.steals += c.steals;
            sum.failed_steals += c.failed_steals;
            sum.parks += c.parks;
        }
        cr_assert_eq(st.total.forks, 2 * fib_forks(n),
                     "%u workers: %llu forks counted, %llu made", nw,
                     (unsigned long long)st.total.forks,
                     (unsigned long long)(2 * fib_forks(n)));
        cr_assert_eq(sum.forks, st.total.forks);
        cr_assert_eq(sum.inlined, st.total.inlined);
        cr_assert_eq(sum.steals, st.total.steals);
        /* A worker counts a task after it finished (after heist_run may
         * have returned): tasks, too, can only be larger in the sum. */
        cr_assert_geq(sum.tasks, st.total.tasks);
        cr_assert_geq(sum.failed_steals, st.total.failed_steals);
        cr_assert_geq(sum.parks, st.total.parks);
        cr_assert_leq(st.total.inlined, st.total.forks);
        /* Every fork was either run inline by its joiner or stolen. */
        cr_assert_eq(st.total.forks, st.total.inlined + st.total.steals,
                     "%u workers: forks %llu != inlined %llu + steals %llu", nw,
                     (unsigned long long)st.total.forks,
                     (unsigned long long)st.total.inlined,
                     (unsigned long long)st.total.steals);
        if (nw == 1) {
            cr_assert_eq(st.total.steals, 0);
            cr_assert_eq(st.total.inlined, st.total.forks);
        }
        cr_assert_eq(heist_sched_free(s), 0);
    }
}

/* ---- user data across fork/join --------------------------------------- */

/* The child writes plain (non-atomic) data; the parent reads it only after
 * heist_join. heist_join must order the two (and tell ThreadSanitizer so:
 * under the tsan preset a report fails this test). The parent waits until
 * the child started, so the child really runs on another worker. */
struct handoff {
    atomic_int started;
    int child_worker;
    long data[64];
};

static void *handoff_child(void *arg)
{
    struct handoff *h = arg;
    h->child_worker = heist_worker_index();
    atomic_store(&h->started, 1);
    for (int i = 0; i < 64; i++)
        h->data[i] = (long)i * i; /* plain writes after the last sync */
    return h;
}

static void *handoff_parent(void *arg)
{
    struct handoff *h = arg;
    heist_task t;
    /* The parent's worker at the fork: after a join that waited, the
     * parent may resume on any worker, the child's included. */
    int parent_worker = heist_worker_index();
    heist_fork(&t, handoff_child, h);
    bool overlapped = ht_wait_at_least(&h->started, 1, 30);
    void *r = NULL;
    if (heist_join(&t, &r) != 0 || r != h)
        return (void *)(intptr_t)-1;
    for (int i = 0; i < 64; i++)
        if (h->data[i] != (long)i * i)
            return (void *)(intptr_t)-2;
    if (!overlapped)
        return (void *)(intptr_t)-3;
    return (void *)(intptr_t)(h->child_worker != parent_worker);
}

Test(forkjoin, join_orders_child_writes)
{
    heist_sched *s = new_sched(2);
    for (int rep = 0; rep < 50; rep++) {
        struct handoff h;
        memset(&h, 0, sizeof(h));
        atomic_init(&h.started, 0);
        intptr_t r = (intptr_t)run(s, handoff_parent, &h);
        cr_assert_neq(r, -1, "rep %d: join failed", rep);
        cr_assert_neq(r, -2, "rep %d: child's writes not visible after join",
                      rep);
        cr_assert_neq(r, -3, "rep %d: no worker stole the child in 30 s", rep);
        cr_assert_eq(r, 1, "rep %d: child ran on the parent's worker", rep);
    }
    cr_assert_eq(heist_sched_free(s), 0);
}

/* ---- a fork never joined ------------------------------------------------ */

/* The fatal cases run in a fresh process: expect_fatal forks and the
 * child at once execs this test program again with HEIST_TEST_FATAL_CASE
 * naming the case, and the constructor at the end of this file runs it
 * before Criterion starts. A plain fork would not do: Criterion's test
 * process has threads of its own, and a child forked while one of them
 * held a lock (ASan's allocator's, libc's) hangs on it at its first
 * malloc (seen under ASan: 1 run in 2). */
#define FATAL_CASE_ENV "HEIST_TEST_FATAL_CASE"
static int fatal_case_of(heist_fn fn);

/* Runs fn(NULL) as heist_run's main on a scheduler of `workers` (the
 * case's, in the table below), in a child process whose stderr goes to a
 * pipe, and passes only if the child died of SIGABRT within 60 s having
 * said `msg` (the library's fatal message): an abort without the message,
 * a child that went on and exited, or a hang fails. */
static void expect_fatal(heist_fn fn, const char *msg)
{
    int idx = fatal_case_of(fn);
    cr_assert_geq(idx, 0, "not a case of the table of fatal cases");
    /* Everything the child needs is made before the fork: between fork
     * and exec it calls only async-signal-safe functions. */
    extern char **environ;
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **env = calloc(nenv + 2, sizeof *env);
    cr_assert_not_null(env);
    char var[64];
    snprintf(var, sizeof var, "%s=%d", FATAL_CASE_ENV, idx);
    env[0] = var;
    for (size_t i = 0; i < nenv; i++)
        env[i + 1] = environ[i];
    char *const argv[] = {"test_forkjoin", NULL};
    int p[2];
    cr_assert_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 2);
        execve("/proc/self/exe", argv, env);
        _exit(4); /* exec failed: not SIGABRT, so the test fails */
    }
    free(env);
    close(p[1]);
    char out[4096];
    size_t n = 0;
    uint64_t deadline = ht_now_ns() + 60ull * 1000000000u;
    bool eof = false;
    while (!eof && ht_now_ns() < deadline) {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        if (poll(&pf, 1, 100) <= 0)
            continue;
        char tmp[512];
        ssize_t k = read(p[0], tmp, sizeof tmp);
        if (k <= 0) {
            eof = true;
            break;
        }
        for (ssize_t i = 0; i < k && n + 1 < sizeof out; i++)
            out[n++] = tmp[i];
    }
    out[n] = 0;
    close(p[0]);
    if (!eof)
        kill(pid, SIGKILL);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(eof, "the child neither ended nor aborted in 60 s; it said: %s",
              out);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
              "the child did not abort (status %#x); it said: %s", st, out);
    cr_assert_not_null(strstr(out, msg),
                       "the child aborted without saying \"%s\"; it said: %s",
                       msg, out);
}

static const char not_joined[] = "heist_fork() not joined";

/* The header's promise: a task that returns while one of its forks is not
 * joined leaves the runtime pointers into a dead frame, so heist aborts
 * with a message instead of going on. */
static void *forget_join(void *arg)
{
    heist_task t;
    heist_fork(&t, identity, arg);
    return NULL; /* no heist_join */
}

Test(forkjoin, unjoined_fork_aborts)
{
    expect_fatal(forget_join, not_joined);
}

/* The same one level down: the culprit is a forked task. */
static void *fork_forgetful_child(void *arg)
{
    heist_task t;
    void *r = NULL;
    heist_fork(&t, forget_join, arg);
    heist_join(&t, &r);
    return r;
}

Test(forkjoin, unjoined_fork_in_child_aborts)
{
    expect_fatal(fork_forgetful_child, not_joined);
}

/* A forked task that the parent's suspension runs (the drain, lib/fork.c)
 * and that returns with a fork of its own not joined, after suspending
 * itself: the fork was taken off the deque by that suspension, so only the
 * drain can tell (before, it went on with the fork's argument pointing
 * into the dead frame). */
static void *forget_join_after_sleep(void *arg)
{
    long local = 7;
    heist_task t;
    heist_fork(&t, identity, &local);
    heist_sleep(1000);
    (void)arg;
    return NULL; /* no heist_join */
}

static void *sleep_over_forgetful_child(void *arg)
{
    heist_task t;
    void *r = NULL;
    heist_fork(&t, forget_join_after_sleep, arg);
    heist_sleep(1000); /* runs the child first (the drain) */
    /* Not reached: the drain aborts when the child returns. Were it to go
     * on, the process would end here, not by SIGABRT (the task's end would
     * abort too, so that cannot be what the test sees). */
    _exit(0);
    heist_join(&t, &r);
    return r;
}

Test(forkjoin, unjoined_fork_in_drained_child_aborts)
{
    expect_fatal(sleep_over_forgetful_child, not_joined);
}

/* A forked task that its parent's join runs (one worker: no thief) and
 * that returns with a fork of its own not joined: the join checks when it
 * returns, as a thief and a drain do. Before, the fork passed for the
 * parent's: the parent's next suspension ran it with its argument in the
 * child's dead frame, and the parent's in-order join of its older fork
 * failed with EINVAL; only the end of the whole task aborted. */
static void *join_forgetful_child_then_exit(void *arg)
{
    heist_task older, t;
    void *r = NULL;
    heist_fork(&older, identity, arg);
    heist_fork(&t, forget_join, arg);
    heist_join(&t, &r);
    /* Not reached: the join aborts when the child returns. */
    _exit(0);
}

Test(forkjoin, unjoined_fork_in_joined_child_aborts)
{
    expect_fatal(join_forgetful_child_then_exit, not_joined);
}

/* The same through heist_join_fn (a direct call on the inline path). */
static void *join_fn_forgetful_child_then_exit(void *arg)
{
    heist_task t;
    void *r = NULL;
    heist_fork(&t, forget_join, arg);
    heist_join_fn(&t, forget_join, &r);
    _exit(0); /* not reached */
}

Test(forkjoin, unjoined_fork_in_joined_child_aborts_join_fn)
{
    expect_fatal(join_fn_forgetful_child_then_exit, not_joined);
}

/* A joined child that suspends first (on two workers it may come back on
 * the other one, on a deque placed anew), then forks and forgets. */
static void *sleep_then_forget_join(void *arg)
{
    heist_task t;
    heist_sleep(1000);
    heist_fork(&t, identity, arg);
    return NULL; /* no heist_join */
}

static void *join_sleepy_forgetful_child_then_exit(void *arg)
{
    heist_task t;
    void *r = NULL;
    heist_fork(&t, sleep_then_forget_join, arg);
    heist_join(&t, &r);
    _exit(0); /* not reached */
}

Test(forkjoin, unjoined_fork_in_joined_child_that_suspended_aborts)
{
    expect_fatal(join_sleepy_forgetful_child_then_exit, not_joined);
}

/* The fatal cases and their worker counts; the child of expect_fatal
 * finds its case here by index. */
static const struct {
    heist_fn fn;
    unsigned workers;
} fatal_cases[] = {
    {forget_join, 1},
    {fork_forgetful_child, 2},
    {sleep_over_forgetful_child, 1},
    {join_forgetful_child_then_exit, 1},
    {join_fn_forgetful_child_then_exit, 1},
    {join_sleepy_forgetful_child_then_exit, 2},
};
#define NFATAL ((int)(sizeof fatal_cases / sizeof fatal_cases[0]))

static int fatal_case_of(heist_fn fn)
{
    for (int i = 0; i < NFATAL; i++)
        if (fatal_cases[i].fn == fn)
            return i;
    return -1;
}

/* The child of expect_fatal, before Criterion's main: runs its case and
 * exits 0 if the library did not abort (which fails the test), 3 if no
 * scheduler could be made. */
__attribute__((constructor)) static void run_fatal_case(void)
{
    const char *v = getenv(FATAL_CASE_ENV);
    if (!v)
        return;
    char *end = NULL;
    long idx = strtol(v, &end, 10);
    if (*end || idx < 0 || idx >= NFATAL)
        _exit(5);
    heist_config cfg = {.workers = fatal_cases[idx].workers};
    heist_sched *s = NULL;
    if (heist_sched_new(&cfg, &s) != 0)
        _exit(3);
    heist_run(s, fatal_cases[idx].fn, NULL, NULL);
    heist_sched_free(s);
    _exit(0); /* not reached if the library aborts */
}

/* ---- stress: many short fork-join computations ------------------------- */

/* Many small computations, one after another, on schedulers with few and
 * with more workers than cores: every join finds its child in a different
 * state (private, public, being stolen, running elsewhere, done). */
Test(forkjoin, stress_many_small_computations)
{
    const unsigned counts[] = {2, 3, 8};
    int reps = HT_SCALE(2000, 500);
    for (size_t w = 0; w < 3; w++) {
        heist_sched *s = new_sched(counts[w]);
        for (int i = 0; i < reps; i++) {
            long n = 8 + i % 10;
            cr_assert_eq((long)run(s, fib, (void *)n), fib_seq(n),
                         "rep %d: fib(%ld) on %u workers", i, n, counts[w]);
            if (i % 10 == 0) {
                struct board b = {.n = 7};
                cr_assert_eq((long)run(s, nqueens, &b), 40,
                             "rep %d: nqueens(7) on %u workers", i, counts[w]);
            }
        }
        cr_assert_eq(heist_sched_free(s), 0);
    }
}
