/*
 * test_overflow.c - a task that overflows its stack must be reported with a
 * message that says "stack overflow" on stderr, and the process must die,
 * instead of corrupting memory or dying with a bare SIGSEGV.
 *
 * Usage: test_overflow fresh|resumed|forked|bigframe|canary|through|both|
 *                      reenter
 *   fresh:    heist_run's main task recurses at once;
 *   resumed:  a spawned task first awaits a future another task completes
 *             and sleeps (it runs on a fiber that was suspended and may have
 *             moved to another worker), then recurses;
 *   forked:   a heist_fork child recurses (stolen or run by the join);
 *   bigframe: 24 KiB frames, each touching its lowest byte first, so the
 *             overflow jumps far past the stack's end (a single guard page
 *             would be skipped);
 *   canary:   guard regions off (HEIST_STACK_GUARD=0): the task overflows a
 *             little into the writable region below its stack and sleeps
 *             there; the check at its switch reports it;
 *   through:  guard regions off, one worker: the task goes through its
 *             stack and the whole region below it (frames that fill
 *             every byte), returns, then sleeps; the canary below the
 *             region, checked at that switch, reports it.
 *
 * The overflow happens in a child process; this process reads the child's
 * stderr, copies it to its own, and exits 0 only if the child was killed
 * by a signal and said "stack overflow", once, in one whole line. (Not a
 * Criterion test: Criterion cannot look at the output of a test that crashes.)
 */
#include <heist/heist.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Each frame hands its buffer to the next, so frames cannot be merged and
 * the recursion cannot become a loop. */
__attribute__((noinline)) static long recurse(long n, volatile char *up)
{
    volatile char buf[1024];
    buf[0] = (char)n;
    if (up)
        up[1] = buf[0];
    if (n == 0)
        return 0;
    long r = recurse(n - 1, buf);
    return r + buf[1];
}

/* Built with ThreadSanitizer (gcc's macro, clang's feature test). */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

/* Deeper than any stack heist accepts (4 GiB). */
#define DEPTH (8L << 20)

static void *overflow(void *arg)
{
    (void)arg;
    return (void *)recurse(DEPTH, NULL);
}

static void *complete(void *arg)
{
    heist_future_set_result(arg, NULL);
    return NULL;
}

static void *suspend_then_overflow(void *arg)
{
    (void)arg;
    heist_future *f = heist_future_new();
    heist_future *t = heist_spawn(NULL, complete, f);
    heist_await(f, NULL);
    heist_sleep(1000000);
    heist_future_unref(t);
    heist_future_unref(f);
    return overflow(NULL);
}

static void *resumed_main(void *arg)
{
    (void)arg;
    heist_future *t = heist_spawn(NULL, suspend_then_overflow, NULL);
    heist_await(t, NULL);
    heist_future_unref(t);
    return NULL;
}

static void *forked_main(void *arg)
{
    (void)arg;
    heist_task t;
    void *r = NULL;
    heist_fork(&t, overflow, NULL);
    heist_join(&t, &r);
    return r;
}

/* The frame's buffer escapes to the next call, so the compiler must lay
 * out all of it (an array only indexed at constants may shrink). */
__attribute__((noinline)) static long big(long n, volatile char *up)
{
    volatile char buf[24 * 1024];
    buf[0] = (char)n; /* the lowest address first */
    if (up)
        up[sizeof(buf) - 1] = buf[0];
    if (n == 0)
        return 0;
    return big(n - 1, buf) + buf[sizeof(buf) - 1];
}

static void *bigframe_main(void *arg)
{
    (void)arg;
    return (void *)big(64, NULL);
}

/* Like recurse, but the deepest frame sleeps: its switch checks the
 * stack. */
__attribute__((noinline)) static long recurse_sleep(long n, volatile char *up)
{
    volatile char buf[1024];
    buf[0] = (char)n;
    if (up)
        up[1] = buf[0];
    if (n == 0) {
        heist_sleep(1000000);
        return 0;
    }
    long r = recurse_sleep(n - 1, buf);
    return r + buf[1];
}

static void *canary_main(void *arg)
{
    (void)arg;
    /* About 74 KiB of 1 KiB frames on a 64 KiB stack: past its end, within
     * the 64 KiB region below it; the deepest frame suspends. */
    return (void *)recurse_sleep(70, NULL);
}

/* Frames that write every byte, until the deepest is `bytes` below
 * `start`. */
__attribute__((noinline)) static long fill_down(uintptr_t start,
                                                size_t bytes, char *up)
{
    char buf[1024];
    memset(buf, 0x5a, sizeof(buf));
    /* The compiler must assume the asm reads all of buf: the memset stays. */
    __asm__ __volatile__("" : : "r"(buf) : "memory");
    if (up)
        up[0] = buf[1];
    if (start - (uintptr_t)buf >= bytes)
        return buf[2];
    return fill_down(start, bytes, buf) + buf[3];
}

static void *through_main(void *arg)
{
    (void)arg;
    char start = 0;
    /* A 64 KiB stack, the 64 KiB region and the canary below it, and a
     * little more; then back up, and the sleep switches away. */
    long r = fill_down((uintptr_t)&start, 136 * 1024, NULL);
    heist_sleep(1000000);
    return (void *)r;
}

/* both: each task waits (up to 2 s) until the other has started, so the
 * two overflow together on the two workers. */
static atomic_int started;

static void *overflow_together(void *arg)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* seq_cst add and load: each task's add pairs with the other's load;
     * they only line the two overflows up in time (no data is passed), so
     * any order would do, and a missed meeting only delays by the 2 s. */
    atomic_fetch_add(&started, 1);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while (atomic_load(&started) < 2 && t.tv_sec - t0.tv_sec < 2);
    return overflow(arg);
}

static void *both_main(void *arg)
{
    (void)arg;
    heist_future *a = heist_spawn(NULL, overflow_together, NULL);
    heist_future *b = heist_spawn(NULL, overflow_together, NULL);
    heist_await(a, NULL);
    heist_await(b, NULL);
    return NULL;
}

/* reenter: a SIGABRT handler that needs more stack than it has, as a
 * crash reporter might. */
__attribute__((noinline)) static long deep(long n, volatile char *up)
{
    volatile char buf[4096];
    buf[0] = (char)n;
    if (up)
        up[1] = buf[0];
    return n ? deep(n - 1, buf) + buf[1] : 0;
}

static void on_abort(int sig)
{
    (void)sig;
    deep(DEPTH, NULL);
}

static void *nothing(void *arg)
{
    return arg;
}

static void *unjoined_main(void *arg)
{
    (void)arg;
    static heist_task t;
    heist_fork(&t, nothing, NULL); /* never joined: fatal when this returns */
    return NULL;
}

/* The child: overflows, and should never get past heist_run. */
static int child(const char *mode)
{
    bool through = strcmp(mode, "through") == 0;
    /* A child that hangs (a report waiting for itself) dies by SIGALRM,
     * without the report: a failure, not a stuck test. */
    alarm(60);
    if (strcmp(mode, "reenter") == 0)
        signal(SIGABRT, on_abort);
    if (strcmp(mode, "canary") == 0 || through)
        setenv("HEIST_STACK_GUARD", "0", 1);
    /* through: one worker, so no other thread runs on the slot below. */
    heist_config cfg = {.workers = through ? 1 : 2, .stack_size = 64 * 1024};
    heist_sched *s;
    if (heist_sched_new(&cfg, &s) != 0) {
        fprintf(stderr, "test_overflow: heist_sched_new failed\n");
        return 2;
    }
    heist_fn fn = strcmp(mode, "fresh") == 0      ? overflow
                  : strcmp(mode, "resumed") == 0  ? resumed_main
                  : strcmp(mode, "bigframe") == 0 ? bigframe_main
                  : strcmp(mode, "canary") == 0   ? canary_main
                  : through                       ? through_main
                  : strcmp(mode, "both") == 0     ? both_main
                  : strcmp(mode, "reenter") == 0  ? unjoined_main
                                                  : forked_main;
    heist_run(s, fn, NULL, NULL);
    fprintf(stderr, "test_overflow: the recursion returned\n");
    return 3;
}

int main(int argc, char **argv)
{
    if (argc != 2 ||
        (strcmp(argv[1], "fresh") && strcmp(argv[1], "resumed") &&
         strcmp(argv[1], "forked") && strcmp(argv[1], "bigframe") &&
         strcmp(argv[1], "canary") && strcmp(argv[1], "through") &&
         strcmp(argv[1], "both") && strcmp(argv[1], "reenter"))) {
        fprintf(stderr,
                "usage: %s fresh|resumed|forked|bigframe|canary|through|both|"
                "reenter\n",
                argv[0]);
        return 2;
    }
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return 2;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 2;
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        close(fds[1]);
        _exit(child(argv[1]));
    }
    close(fds[1]);
    static char out[1 << 16];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fds[0], out + len, sizeof(out) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof(out) - 1)
            break;
    }
    out[len] = '\0';
    close(fds[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid) {
        perror("waitpid");
        return 2;
    }
    fprintf(stderr, "--- the child's stderr ---\n%s--- end ---\n", out);
    if (!WIFSIGNALED(status)) {
        fprintf(stderr,
                "test_overflow %s: FAIL: the child exited (status %d) "
                "instead of dying by a signal\n",
                argv[1], WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return 1;
    }
    /* SIGALRM is child()'s alarm(60): the process hung (say, after its
     * report) instead of dying of it, which must not pass as a death. */
    if (WTERMSIG(status) == SIGALRM) {
        fprintf(stderr,
                "test_overflow %s: FAIL: the child hung (killed by its 60 s "
                "alarm)\n",
                argv[1]);
        return 1;
    }
    /* ThreadSanitizer's interceptor runs a program's signal handler with
     * every signal blocked, so the SIGSEGV of the overflow inside the
     * SIGABRT handler kills the process at once: no second report, and no
     * hang either, which is what reenter is about. */
    if (UNDER_TSAN && strcmp(argv[1], "reenter") == 0 &&
        WTERMSIG(status) != SIGALRM && strstr(out, "not joined")) {
        printf("test_overflow reenter: ok under ThreadSanitizer (the first "
               "report, then signal %d, no hang)\n",
               WTERMSIG(status));
        return 0;
    }
    if (!strstr(out, "stack overflow")) {
        fprintf(stderr,
                "test_overflow %s: FAIL: the child died by signal %d "
                "without saying \"stack overflow\"\n",
                argv[1], WTERMSIG(status));
        return 1;
    }
    /* One report, in one line of its own: two threads that overflow
     * together must not both write (their messages interleaved). */
    int reports = 0;
    for (const char *p = out; (p = strstr(p, "stack overflow")); p++)
        reports++;
    const char *line = strstr(out, "heist: fatal: stack overflow");
    const char *eol = line ? strchr(line, '\n') : NULL;
    if (reports != 1 || !line || !eol || !strstr(line, "HEIST_STACK_SIZE") ||
        strstr(line, "HEIST_STACK_SIZE") > eol) {
        fprintf(stderr,
                "test_overflow %s: FAIL: %d reports of \"stack overflow\", "
                "not one whole line\n",
                argv[1], reports);
        return 1;
    }
    printf("test_overflow %s: ok (signal %d)\n", argv[1], WTERMSIG(status));
    return 0;
}
