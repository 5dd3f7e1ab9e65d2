/*
 * fault_sweep.c - heist under injected faults (issue 10): the Nth call of
 * malloc & co., mmap, mprotect or pthread_create fails (fault_inject.c),
 * for N swept over the calls a workload makes, in two modes: only the Nth
 * call fails ("once"), or every call from the Nth on ("from").
 *
 *     fault_sweep futures|forkjoin            the sweep
 *     fault_sweep WORKLOAD KIND MODE N        one run, in this process
 *         (KIND: alloc, mmap, mprotect, pthread_create; MODE: once, from;
 *          N: 1-based, 0 counts only): reproduces one failing run
 *
 * Each run is a child process (fork of the driver, which never starts a
 * scheduler itself). In the child the calls are counted only between
 * fi_arm and fi_disarm, which bracket heist_sched_new ... heist_sched_free:
 * everything the workload does with heist. A run passes when the child
 * exits 0 within the time limit, which means:
 *   - no crash, no abort (liburcu's "Unrecoverable error" included), no
 *     hang (the parent kills a run after HEIST_FAULT_TIMEOUT s, default 30);
 *   - every heist call returned success or an error its header documents
 *     for out-of-memory conditions (ENOMEM, EAGAIN), and never a NULL
 *     without one of those in errno;
 *   - no sleep ended early: heist_sleep returning 0 and heist_await_timeout
 *     returning ETIMEDOUT took at least the time asked for; a cancel ends
 *     a task's 3 s sleep (it does not return 0);
 *   - the results are right when the calls succeeded: fib's value, every
 *     spawned task ran exactly once, a then-callback ran exactly once;
 *   - heist_sched_free returned 0;
 *   - nothing leaked (LeakSanitizer checks at the child's exit in ASan
 *     builds; abort_on_error or exit code 23 makes that a failure).
 *
 * Which N: a first run counts the calls of each kind (and how many of them
 * heist_sched_new made). Every N in the scheduler-creation range is run,
 * and every N overall when a kind makes few calls; beyond that the N are
 * sampled evenly, at most HEIST_FAULT_RUNS runs per kind and mode (default
 * 200 under a sanitizer, 400 otherwise; 0: no limit), plus a few past the
 * count (a run may make more calls than the counting run). Children run
 * HEIST_FAULT_JOBS at a time (default 2).
 */
#include "fault_inject.h"
#include "test_util.h"

#include <heist/heist.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- what a run reports to the driver (a shared page) -------------------- */

struct report {
    uint64_t count[FI_NKINDS];     /* calls while armed */
    uint64_t count_new[FI_NKINDS]; /* of those, made by heist_sched_new */
    uint64_t failed;               /* calls made to fail */
    int sched_new_rc;
};
static struct report *rep;

/* ---- checks (recorded without allocating; printed after disarm) ---------- */

static atomic_int violations;
static char first_violation[512];

__attribute__((format(printf, 2, 3))) static void violation(int line,
                                                           const char *fmt,
                                                           ...)
{
    if (atomic_fetch_add(&violations, 1) == 0) {
        int n = snprintf(first_violation, sizeof(first_violation),
                         "line %d: ", line);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(first_violation + n, sizeof(first_violation) - (size_t)n,
                  fmt, ap);
        va_end(ap);
    }
}
#define VIOLATION(...) violation(__LINE__, __VA_ARGS__)

__attribute__((noinline)) static int get_errno(void)
{
    return errno;
}

static bool oom(int e)
{
    return e == ENOMEM || e == EAGAIN;
}

/* A pointer-returning call failed: errno must say why. */
#define CHECK_NULL(what)                                                       \
    do {                                                                       \
        int e_ = get_errno();                                                  \
        if (!oom(e_))                                                          \
            VIOLATION("%s returned NULL with errno %d (%s)", what, e_,        \
                      strerror(e_));                                           \
    } while (0)

/* heist_sleep(ns), checked; returns its code. ECANCELED is right when the
 * task was asked to cancel: by its canceller (may_cancel), or by heist_run
 * once main returned early (say, an await of main's failed with ENOMEM), as
 * heist_cancelling() tells. */
static int checked_sleep(uint64_t ns, bool may_cancel)
{
    uint64_t t0 = ht_now_ns();
    int r = heist_sleep(ns);
    uint64_t took = ht_now_ns() - t0;
    if (r == 0 && took < ns)
        VIOLATION("heist_sleep(%llu ns) returned 0 after %llu ns",
                  (unsigned long long)ns, (unsigned long long)took);
    else if (r != 0 && !oom(r) &&
             !(r == ECANCELED && (may_cancel || heist_cancelling())))
        VIOLATION("heist_sleep returned %d (%s)", r, strerror(r));
    return r;
}

/* heist_await_timeout, checked; the future's own outcomes are `ok_codes`
 * (0 always allowed). */
static int checked_await_timeout(heist_future *f, uint64_t ns, void **v)
{
    uint64_t t0 = ht_now_ns();
    int r = heist_await_timeout(f, ns, v);
    uint64_t took = ht_now_ns() - t0;
    if (r == ETIMEDOUT && took < ns)
        VIOLATION("heist_await_timeout(%llu ns) gave ETIMEDOUT after %llu ns",
                  (unsigned long long)ns, (unsigned long long)took);
    else if (r != 0 && r != ETIMEDOUT && !oom(r) &&
             !(r == ECANCELED && heist_cancelling()))
        VIOLATION("heist_await_timeout returned %d (%s)", r, strerror(r));
    return r;
}

/* ---- fork-join ----------------------------------------------------------- */

static void *fib(void *arg)
{
    long n = (long)arg;
    if (n < 2)
        return (void *)n;
    heist_task t;
    void *a = NULL, *b;
    heist_fork(&t, fib, (void *)(n - 1));
    b = fib((void *)(n - 2));
    int r = heist_join(&t, &a);
    if (r != 0)
        VIOLATION("heist_join returned %d (%s)", r, strerror(r));
    return (void *)((long)a + (long)b);
}

static long fib_serial(long n)
{
    return n < 2 ? n : fib_serial(n - 1) + fib_serial(n - 2);
}

/* Wide: 6,000 unjoined forks at once. Frames and slots come from the
 * driver, allocated before arming. */
enum { WIDE = 6000 };
static heist_task *wide_frames;
static atomic_int *wide_ran;

static void *wide_child(void *arg)
{
    atomic_fetch_add(&wide_ran[(long)arg], 1);
    return (void *)((long)arg * 2);
}

/* Wide and suspending: SUSP forks that each sleep, then a sleep of the
 * parent's, which runs 8 of them one inside another and queues the rest
 * (lib/fork.c, "Bounded drains"): faults in the save list, the records
 * and the stacks of the queued ones. (Not the joiner's claim of a queued
 * fork: here the items have always started by the joins; regress_faults
 * queue_claimed reaches it.) Uses the first SUSP slots of wide_frames
 * and wide_ran, after the wide rounds. */
enum { SUSP = 200 };

static void *susp_child(void *arg)
{
    atomic_fetch_add(&wide_ran[(long)arg], 1);
    checked_sleep(10000, false);
    return (void *)((long)arg * 5);
}

static void *forkjoin_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 2; round++) {
        for (long i = 0; i < WIDE; i++)
            heist_fork(&wide_frames[i], wide_child, (void *)i);
        for (long i = WIDE - 1; i >= 0; i--) {
            void *v = NULL;
            int r = heist_join(&wide_frames[i], &v);
            if (r != 0)
                VIOLATION("heist_join (wide) returned %d", r);
            else if ((long)v != 2 * i)
                VIOLATION("wide child %ld returned %ld", i, (long)v);
        }
    }
    for (long i = 0; i < WIDE; i++)
        if (atomic_load(&wide_ran[i]) != 2)
            VIOLATION("wide child %ld ran %d times in 2 rounds", i,
                      atomic_load(&wide_ran[i]));
    for (long i = 0; i < SUSP; i++) {
        atomic_store(&wide_ran[i], 0);
        heist_fork(&wide_frames[i], susp_child, (void *)i);
    }
    checked_sleep(10000, false);
    for (long i = SUSP - 1; i >= 0; i--) {
        void *v = NULL;
        int r = heist_join(&wide_frames[i], &v);
        if (r != 0)
            VIOLATION("heist_join (suspending) returned %d", r);
        else if ((long)v != 5 * i)
            VIOLATION("suspending child %ld returned %ld", i, (long)v);
        if (atomic_load(&wide_ran[i]) != 1)
            VIOLATION("suspending child %ld ran %d times", i,
                      atomic_load(&wide_ran[i]));
    }
    long want = fib_serial(20);
    long got = (long)fib((void *)20L);
    if (got != want)
        VIOLATION("fib(20) = %ld, want %ld", got, want);
    return (void *)0x600d;
}

/* ---- futures ------------------------------------------------------------- */

enum { NTASKS = 24, GATE_VAL = 0x6a7e };
static heist_future *gate;       /* completed by a plain thread */
static atomic_int ran[NTASKS];   /* times each task started */
static atomic_int cb_runs;
static atomic_bool go;

static void *child_task(void *arg)
{
    return (void *)((long)arg * 3);
}

static void *fut_task(void *arg)
{
    long i = (long)arg;
    atomic_fetch_add(&ran[i], 1);
    switch (i % 4) {
    case 0: /* sleeps */
        checked_sleep(2 * 1000 * 1000, false);
        break;
    case 1: { /* awaits the gate, then a future nobody completes */
        void *v = NULL;
        int r = checked_await_timeout(gate, 20ull * 1000 * 1000 * 1000, &v);
        if (r == 0 && (long)v != GATE_VAL)
            VIOLATION("gate's value is %ld", (long)v);
        if (r == ETIMEDOUT)
            VIOLATION("the gate did not open in 20 s");
        heist_future *never = heist_future_new();
        if (!never) {
            CHECK_NULL("heist_future_new");
            break;
        }
        r = checked_await_timeout(never, 1000 * 1000, NULL);
        if (r == 0)
            VIOLATION("a never-completed future awaited as done");
        heist_future_unref(never);
        break;
    }
    case 2: { /* fork-join inside a task */
        long got = (long)fib((void *)12L);
        if (got != 144)
            VIOLATION("fib(12) in a task = %ld", got);
        break;
    }
    case 3: { /* spawns a child and awaits it */
        heist_future *c = heist_spawn(NULL, child_task, (void *)i);
        if (!c) {
            CHECK_NULL("heist_spawn (child)");
            break;
        }
        void *v = NULL;
        int r = heist_await(c, &v);
        if (r == 0 && (long)v != i * 3)
            VIOLATION("child of %ld returned %ld", i, (long)v);
        else if (r != 0 && !oom(r) && !(r == ECANCELED && heist_cancelling()))
            VIOLATION("heist_await(child) returned %d (%s)", r, strerror(r));
        heist_future_unref(c);
        break;
    }
    }
    return (void *)i;
}

/* Cancelled 1 ms after it starts: its sleep must end with ECANCELED (or
 * fail at once with ENOMEM/EAGAIN), not run its full 3 s. */
static void *long_sleeper(void *arg)
{
    (void)arg;
    if (checked_sleep(3ull * 1000 * 1000 * 1000, true) == 0)
        VIOLATION("a 3 s heist_sleep in a task cancelled after 1 ms "
                  "returned 0: the cancel did not interrupt it");
    return NULL;
}

static void gate_cb(heist_future *f, void *arg)
{
    (void)arg;
    void *v = NULL;
    if (heist_future_result(f, &v) != 0 || (long)v != GATE_VAL)
        VIOLATION("callback: the gate is not done with its value");
    atomic_fetch_add(&cb_runs, 1);
}

/* A burst of timed waits, more at once than a timer heap starts with (64
 * slots in each worker's heap, lib/timer.c): reservations double the heaps
 * (a realloc each); refused, the sleep returns ENOMEM before it suspends.
 * The other workloads' sleeps never filled a heap (no growth counted). */
enum { TIMER_BURST = 160 };

static void *burst_sleeper(void *arg)
{
    (void)arg;
    checked_sleep(5 * 1000 * 1000, false);
    return NULL;
}

static void timer_burst(void)
{
    heist_future *b[TIMER_BURST];
    size_t k = 0;
    for (int i = 0; i < TIMER_BURST; i++) {
        heist_future *f = heist_spawn(NULL, burst_sleeper, NULL);
        if (!f)
            CHECK_NULL("heist_spawn (timer burst)");
        else
            b[k++] = f;
    }
    for (size_t i = 0; i < k; i++) {
        int r = heist_await(b[i], NULL);
        if (r != 0 && !oom(r) && !(r == ECANCELED && heist_cancelling()))
            VIOLATION("await of a timer-burst sleeper returned %d (%s)", r,
                      strerror(r));
        heist_future_unref(b[i]);
    }
}

static int then_rc = -1;

static void *futures_main(void *arg)
{
    (void)arg;
    then_rc = heist_future_then(gate, gate_cb, NULL);
    if (then_rc != 0 && !oom(then_rc))
        VIOLATION("heist_future_then returned %d (%s)", then_rc,
                  strerror(then_rc));
    atomic_store(&go, true);

    heist_future *t[NTASKS];
    bool spawned[NTASKS];
    size_t n = 0;
    heist_future *live[NTASKS];
    for (long i = 0; i < NTASKS; i++) {
        t[i] = heist_spawn(NULL, fut_task, (void *)i);
        spawned[i] = t[i] != NULL;
        if (!t[i])
            CHECK_NULL("heist_spawn");
        else
            live[n++] = t[i];
    }

    /* A cancelled sleeper: ECANCELED from its await, or it could not
     * start; never done. */
    heist_future *sl = heist_spawn(NULL, long_sleeper, NULL);
    if (!sl) {
        CHECK_NULL("heist_spawn (sleeper)");
    } else {
        checked_sleep(1000 * 1000, false);
        bool asked = heist_future_cancel(sl);
        int r = heist_await(sl, NULL);
        if (r != ECANCELED && !oom(r) && !(r == 0 && !asked))
            VIOLATION("await of a cancelled task returned %d (%s)", r,
                      strerror(r));
        heist_future_unref(sl);
    }

    heist_future *any = n ? heist_any(live, n) : NULL;
    if (n == 0) {
        /* nothing to wait for */
    } else if (!any) {
        CHECK_NULL("heist_any");
    } else {
        void *v = NULL;
        int r = heist_await(any, &v);
        if (r == 0 && (uintptr_t)v >= n)
            VIOLATION("heist_any's index %lu of %zu", (unsigned long)(uintptr_t)v,
                      n);
        else if (r != 0 && !oom(r))
            VIOLATION("heist_await(any) returned %d (%s)", r, strerror(r));
        heist_future_unref(any);
    }

    heist_future *all = heist_gather(live, n);
    bool all_done = false;
    if (!all) {
        CHECK_NULL("heist_gather");
    } else {
        int r = heist_await(all, NULL);
        all_done = r == 0;
        if (r != 0 && !oom(r))
            VIOLATION("heist_await(gather) returned %d (%s)", r, strerror(r));
        heist_future_unref(all);
    }
    for (long i = 0; i < NTASKS; i++) {
        if (!spawned[i])
            continue;
        void *v = NULL;
        int r = all_done ? heist_future_result(t[i], &v)
                         : heist_await(t[i], &v);
        if (r == 0 && (long)v != i)
            VIOLATION("task %ld returned %ld", i, (long)v);
        else if (r != 0 && !oom(r))
            VIOLATION("task %ld ended with %d (%s)", i, r, strerror(r));
        if (r == 0 && atomic_load(&ran[i]) != 1)
            VIOLATION("task %ld ran %d times", i, atomic_load(&ran[i]));
        heist_future_unref(t[i]);
    }
    for (long i = 0; i < NTASKS; i++)
        if (atomic_load(&ran[i]) > 1 || (!spawned[i] && atomic_load(&ran[i])))
            VIOLATION("task %ld ran %d times (spawned: %d)", i,
                      atomic_load(&ran[i]), spawned[i]);
    timer_burst();
    return (void *)0x600d;
}

static void *gate_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&go))
        sched_yield();
    struct timespec ts = {0, 3 * 1000 * 1000};
    nanosleep(&ts, NULL);
    int r = heist_future_set_result(gate, (void *)(long)GATE_VAL);
    if (r != 0)
        VIOLATION("set_result(gate) from a thread returned %d", r);
    return NULL;
}

/* ---- one run ------------------------------------------------------------- */

static int run_one(const char *workload, enum fi_kind kind, uint64_t n,
                   enum fi_mode mode)
{
    bool futures = strcmp(workload, "futures") == 0;
    pthread_t gt;
    /* Made before arming: the workload's own, not heist's. */
    if (futures) {
        gate = heist_future_new();
        if (!gate || pthread_create(&gt, NULL, gate_thread, NULL) != 0) {
            fprintf(stderr, "fault_sweep: cannot set up\n");
            return 2;
        }
    } else {
        wide_frames = calloc(WIDE, sizeof(*wide_frames));
        wide_ran = calloc(WIDE, sizeof(*wide_ran));
        if (!wide_frames || !wide_ran) {
            fprintf(stderr, "fault_sweep: cannot set up\n");
            return 2;
        }
    }

    heist_config cfg = {.workers = 2};
    heist_sched *s = NULL;
    fi_arm(kind, n, mode);
    int r = heist_sched_new(&cfg, &s);
    for (int k = 0; k < FI_NKINDS; k++)
        rep->count_new[k] = fi_count((enum fi_kind)k);
    rep->sched_new_rc = r;
    if (r != 0) {
        if (!oom(r))
            VIOLATION("heist_sched_new returned %d (%s)", r, strerror(r));
    } else {
        void *res = NULL;
        r = heist_run(s, futures ? futures_main : forkjoin_main, NULL, &res);
        if (r == 0 && res != (void *)0x600d)
            VIOLATION("heist_run's result is %p", res);
        else if (r != 0 && !oom(r))
            VIOLATION("heist_run returned %d (%s)", r, strerror(r));
        if (futures) {
            /* The gate must be completed before the scheduler goes: its
             * callback waits on it. */
            atomic_store(&go, true);
            pthread_join(gt, NULL);
        }
        r = heist_sched_free(s);
        if (r != 0)
            VIOLATION("heist_sched_free returned %d (%s)", r, strerror(r));
        if (futures && then_rc == 0 && atomic_load(&cb_runs) != 1)
            VIOLATION("the then-callback ran %d times", atomic_load(&cb_runs));
    }
    fi_disarm();
    if (futures && !s) {
        atomic_store(&go, true);
        pthread_join(gt, NULL);
    }
    for (int k = 0; k < FI_NKINDS; k++)
        rep->count[k] = fi_count((enum fi_kind)k);
    rep->failed = fi_failed();
    if (futures)
        heist_future_unref(gate);
    else {
        free(wide_frames);
        free(wide_ran);
    }
    int nv = atomic_load(&violations);
    if (nv) {
        fprintf(stderr, "fault_sweep: %d violation(s); first: %s\n", nv,
                first_violation);
        return 3;
    }
    return 0;
}

/* ---- the sweep ----------------------------------------------------------- */

static unsigned env_uint(const char *name, unsigned dflt)
{
    const char *v = getenv(name);
    return v && *v ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

struct child {
    pid_t pid;
    FILE *out;
    uint64_t start_ns;
    enum fi_kind kind;
    enum fi_mode mode;
    uint64_t n;
    struct report *rep;
};

static unsigned nfail, nruns, nprinted;
/* Runs of each kind in which a call was made to fail: a sweep that never
 * injected a fault checked nothing (see sweep()). */
static unsigned ninjected[FI_NKINDS];

/* Prints the first lines of a failed run's output. */
static void print_head(FILE *f, int max_lines)
{
    rewind(f);
    char line[1024];
    int lines = 0;
    while (lines < max_lines && fgets(line, sizeof(line), f)) {
        fprintf(stderr, "    | %s", line);
        lines++;
    }
}

/* The first line of the output that says what went wrong, for the tally. */
static void reason(FILE *f, char *buf, size_t size)
{
    rewind(f);
    char line[1024];
    snprintf(buf, size, "(no output)");
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, "ERROR") || strstr(line, "fault_sweep:") ||
            strstr(line, "heist:") || strstr(line, "rror") ||
            strstr(line, "watchdog") || strstr(line, "CHECK failed") ||
            strstr(line, "Sanitizer")) {
            line[strcspn(line, "\n")] = 0;
            line[size - 1] = 0;
            memcpy(buf, line, strlen(line) + 1);
            return;
        }
    }
}

struct tally {
    char what[160];
    unsigned n;
    char first[96];
};
static struct tally tallies[64];
static unsigned ntallies;

static void tally(const char *what, const char *run)
{
    for (unsigned i = 0; i < ntallies; i++)
        if (strcmp(tallies[i].what, what) == 0) {
            tallies[i].n++;
            return;
        }
    if (ntallies < 64) {
        snprintf(tallies[ntallies].what, sizeof(tallies[0].what), "%s", what);
        snprintf(tallies[ntallies].first, sizeof(tallies[0].first), "%s", run);
        tallies[ntallies++].n = 1;
    }
}

static void finish(struct child *c, int status, bool timed_out,
                   const char *workload)
{
    nruns++;
    bool ok = !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (c->rep->failed > 0)
        ninjected[c->kind]++;
    if (!ok) {
        nfail++;
        char run[96], why[160];
        snprintf(run, sizeof(run), "%s %s %s %llu", workload,
                 fi_kind_name(c->kind), fi_mode_name(c->mode),
                 (unsigned long long)c->n);
        if (timed_out)
            snprintf(why, sizeof(why), "hang: killed after the time limit");
        else
            reason(c->out, why, sizeof(why));
        char status_s[64];
        if (WIFSIGNALED(status))
            snprintf(status_s, sizeof(status_s), "signal %d",
                     WTERMSIG(status));
        else
            snprintf(status_s, sizeof(status_s), "exit %d",
                     WEXITSTATUS(status));
        fprintf(stderr, "FAIL: fault_sweep %s: %s (%s)\n", run, why,
                timed_out ? "timeout" : status_s);
        if (nprinted++ < 3)
            print_head(c->out, 30);
        tally(why, run);
    }
    fclose(c->out);
    munmap(c->rep, sizeof(struct report));
    c->pid = 0;
}

static void start(struct child *c, const char *workload, enum fi_kind kind,
                  enum fi_mode mode, uint64_t n)
{
    c->kind = kind;
    c->mode = mode;
    c->n = n;
    c->out = tmpfile();
    c->rep = mmap(NULL, sizeof(struct report), PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!c->out || c->rep == MAP_FAILED) {
        perror("fault_sweep: tmpfile/mmap");
        exit(2);
    }
    fflush(NULL);
    c->start_ns = ht_now_ns();
    c->pid = fork();
    if (c->pid < 0) {
        perror("fault_sweep: fork");
        exit(2);
    }
    if (c->pid == 0) {
        dup2(fileno(c->out), 1);
        dup2(fileno(c->out), 2);
        rep = c->rep;
        exit(run_one(workload, kind, n, mode));
    }
}

/* Runs the list of (kind, mode, n), jobs at a time. */
struct job {
    enum fi_kind kind;
    enum fi_mode mode;
    uint64_t n;
};

static void run_jobs(const char *workload, struct job *jobs, size_t njobs,
                     unsigned par, unsigned timeout_s)
{
    struct child kids[16] = {0};
    if (par > 16)
        par = 16;
    if (par == 0)
        par = 1;
    size_t next = 0;
    unsigned running = 0;
    while (next < njobs || running) {
        for (unsigned i = 0; i < par && next < njobs; i++)
            if (!kids[i].pid) {
                start(&kids[i], workload, jobs[next].kind, jobs[next].mode,
                      jobs[next].n);
                next++;
                running++;
            }
        struct timespec nap = {0, 2 * 1000 * 1000};
        nanosleep(&nap, NULL);
        for (unsigned i = 0; i < par; i++) {
            if (!kids[i].pid)
                continue;
            int status = 0;
            pid_t p = waitpid(kids[i].pid, &status, WNOHANG);
            if (p == kids[i].pid) {
                finish(&kids[i], status, false, workload);
                running--;
            } else if (ht_now_ns() - kids[i].start_ns >
                       (uint64_t)timeout_s * 1000000000u) {
                kill(kids[i].pid, SIGKILL);
                waitpid(kids[i].pid, &status, 0);
                finish(&kids[i], status, true, workload);
                running--;
            }
        }
    }
}

static int sweep(const char *workload)
{
    uint64_t t0 = ht_now_ns();
    unsigned par = env_uint("HEIST_FAULT_JOBS", 2);
    unsigned timeout_s = env_uint("HEIST_FAULT_TIMEOUT", 30);
    unsigned cap = env_uint("HEIST_FAULT_RUNS", HT_SCALE(400, 200));

    /* Count: three runs, the largest counts. */
    uint64_t count[FI_NKINDS] = {0}, count_new[FI_NKINDS] = {0};
    for (int i = 0; i < 3; i++) {
        struct child c = {0};
        start(&c, workload, FI_ALLOC, FI_ONCE, 0);
        int status;
        waitpid(c.pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "fault_sweep %s: the run without faults "
                            "failed:\n", workload);
            print_head(c.out, 60);
            return 1;
        }
        for (int k = 0; k < FI_NKINDS; k++) {
            if (c.rep->count[k] > count[k])
                count[k] = c.rep->count[k];
            if (c.rep->count_new[k] > count_new[k])
                count_new[k] = c.rep->count_new[k];
        }
        fclose(c.out);
        munmap(c.rep, sizeof(struct report));
    }
    printf("fault_sweep %s: calls per run:", workload);
    for (int k = 0; k < FI_NKINDS; k++)
        printf(" %s %llu (sched_new %llu)", fi_kind_name((enum fi_kind)k),
               (unsigned long long)count[k],
               (unsigned long long)count_new[k]);
    printf("\n");
    /* heist_sched_new alone allocates, maps, protects and starts threads:
     * a kind never counted means the interposition (fault_inject.c: the
     * symbols exported, the callers' libraries found by name) is broken,
     * and every run would pass having failed nothing. */
    for (int k = 0; k < FI_NKINDS; k++)
        if (count_new[k] == 0) {
            fprintf(stderr,
                    "fault_sweep %s: FAIL: no %s call of heist_sched_new "
                    "was seen: fault injection does not reach heist\n",
                    workload, fi_kind_name((enum fi_kind)k));
            return 1;
        }

    size_t maxjobs = 0;
    for (int k = 0; k < FI_NKINDS; k++)
        maxjobs += 2 * (count[k] + 8);
    struct job *jobs = calloc(maxjobs, sizeof(*jobs));
    size_t nj = 0;
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < FI_NKINDS; k++) {
            uint64_t total = count[k] + 2; /* a few past the count */
            uint64_t first = count_new[k] + 1 < total ? count_new[k] + 1 : total;
            for (uint64_t n = 1; n <= total; n++) {
                bool take;
                if (cap == 0 || total <= cap || n <= first)
                    take = true;
                else {
                    /* evenly spaced over (first, total] */
                    uint64_t room = cap > first ? cap - first : 1;
                    uint64_t stride = (total - first + room - 1) / room;
                    take = (n - first) % stride == 0 || n == total;
                }
                if (take)
                    jobs[nj++] = (struct job){(enum fi_kind)k,
                                              (enum fi_mode)m, n};
            }
        }
    printf("fault_sweep %s: %zu runs, %u at a time\n", workload, nj, par);
    fflush(stdout);
    run_jobs(workload, jobs, nj, par, timeout_s);
    free(jobs);

    double secs = (double)(ht_now_ns() - t0) / 1e9;
    printf("fault_sweep %s: %u runs, %u failed, %.1f s\n", workload, nruns,
           nfail, secs);
    for (unsigned i = 0; i < ntallies; i++)
        printf("  %4u x %s   (first: fault_sweep %s)\n", tallies[i].n,
               tallies[i].what, tallies[i].first);
    for (int k = 0; k < FI_NKINDS; k++)
        if (ninjected[k] == 0) {
            fprintf(stderr,
                    "fault_sweep %s: FAIL: no run made a %s call fail\n",
                    workload, fi_kind_name((enum fi_kind)k));
            nfail++;
        }
    return nfail ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "futures") && strcmp(argv[1], "forkjoin")))
        goto usage;
    if (argc == 2)
        return sweep(argv[1]);
    if (argc != 5)
        goto usage;
    int kind = -1;
    for (int k = 0; k < FI_NKINDS; k++)
        if (strcmp(argv[2], fi_kind_name((enum fi_kind)k)) == 0)
            kind = k;
    if (kind < 0 || (strcmp(argv[3], "once") && strcmp(argv[3], "from")))
        goto usage;
    static struct report local;
    rep = &local;
    int r = run_one(argv[1], (enum fi_kind)kind,
                    strtoull(argv[4], NULL, 10),
                    strcmp(argv[3], "once") == 0 ? FI_ONCE : FI_FROM);
    printf("fault_sweep: calls:");
    for (int k = 0; k < FI_NKINDS; k++)
        printf(" %s %llu", fi_kind_name((enum fi_kind)k),
               (unsigned long long)local.count[k]);
    printf("; failed %llu; heist_sched_new %d; %s\n",
           (unsigned long long)local.failed, local.sched_new_rc,
           r ? "FAILED" : "ok");
    return r;
usage:
    fprintf(stderr,
            "usage: fault_sweep futures|forkjoin [KIND once|from N]\n");
    return 2;
}
