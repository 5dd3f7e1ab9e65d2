/*
 * test_report.c - heist_sched_report (include/heist/sched.h): the table's
 * format (a header naming the columns, one row per worker, a total row
 * equal to the column sums, all lines aligned) and its values (each row
 * the counters heist_sched_worker_stats gives for that worker), its
 * errors, $HEIST_STATS (which values print the table at heist_sched_free
 * and which stay silent), and the trace: its creation errors, $HEIST_TRACE,
 * and a trace that cannot be written at heist_sched_free.
 *
 * Each Criterion test runs in its own process, so setenv() here does not
 * leak into other tests.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <heist/heist.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

enum { NCOLS = 10 };
static const char *const cols[NCOLS] = {
    "tasks", "forks", "inlined", "steals", "failed_steals",
    "parks", "suspends", "resumes", "stacks_mapped", "stacks_reused",
};

static void *fib(void *arg)
{
    long n = (long)arg;
    if (n < 2)
        return (void *)n;
    heist_task t;
    void *a, *b;
    heist_fork(&t, fib, (void *)(n - 1));
    b = fib((void *)(n - 2));
    heist_join(&t, &a);
    return (void *)((long)a + (long)b);
}

/* fib(20) above forks once per call with n >= 2: fib(21) - 1 calls. Each
 * fork is joined once, so the forks column sums to this on any number of
 * workers (the column counts a fork where its join returned). */
enum { BUSY_N = 20, BUSY_FORKS = 10945 };

static heist_sched *busy_sched(unsigned workers)
{
    heist_config cfg = {.workers = workers};
    heist_sched *s = NULL;
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    void *r;
    cr_assert_eq(heist_run(s, fib, (void *)(long)BUSY_N, &r), 0);
    cr_assert_eq((long)r, 6765);
    return s;
}

/* The counters of one worker in the report's column order. */
static void counters_cols(const heist_counters *c, unsigned long long v[])
{
    const uint64_t in[NCOLS] = {
        c->tasks,         c->forks, c->inlined,  c->steals,
        c->failed_steals, c->parks, c->suspends, c->resumes,
        c->stacks_mapped, c->stacks_reused,
    };
    for (unsigned k = 0; k < NCOLS; k++)
        v[k] = in[k];
}

/* What a worker's row may hold, column by column: lo[i][k] <= v <=
 * hi[i][k] (hi UINT64_MAX: no upper bound). */
struct expect {
    unsigned workers;
    unsigned long long lo[8][NCOLS], hi[8][NCOLS];
};

/* Reads every worker's counters through the public stats API into e->lo,
 * with no upper bound yet. A worker still counts the item it ran last
 * (heist_run's main among them) after heist_run returned, and looks for
 * work and parks afterwards, so the counters may still grow: what a later
 * report prints is at least this. */
static void expect_read(heist_sched *s, unsigned workers, struct expect *e)
{
    cr_assert_leq(workers, 8u);
    e->workers = workers;
    for (unsigned i = 0; i < workers; i++) {
        heist_counters c;
        cr_assert_eq(heist_sched_worker_stats(s, i, &c), 0);
        counters_cols(&c, e->lo[i]);
        for (unsigned k = 0; k < NCOLS; k++)
            e->hi[i][k] = UINT64_MAX;
    }
    heist_counters c;
    cr_assert_eq(heist_sched_worker_stats(s, workers, &c), EINVAL);
    /* The workload is fixed, one heist_run of fib(20), and its forks were
     * all joined (so counted) before heist_run returned. */
    unsigned long long forks = 0;
    for (unsigned i = 0; i < workers; i++)
        forks += e->lo[i][1];
    cr_assert_eq(forks, BUSY_FORKS,
                 "the stats API counted %llu forks of fib(%d), want %d", forks,
                 BUSY_N, BUSY_FORKS);
}

/* Sets the upper bounds from a second reading, taken after the report:
 * each counter only grows, so a value printed between the two readings
 * lies between them. */
static void expect_read_after(heist_sched *s, struct expect *e)
{
    for (unsigned i = 0; i < e->workers; i++) {
        heist_counters c;
        cr_assert_eq(heist_sched_worker_stats(s, i, &c), 0);
        counters_cols(&c, e->hi[i]);
        for (unsigned k = 0; k < NCOLS; k++)
            cr_assert_geq(e->hi[i][k], e->lo[i][k],
                          "worker %u's %s went down", i, cols[k]);
    }
}

/* Reads the table back and checks it against itself (header, rows, sums)
 * and each worker's row against the counters in e. */
static void check_table(const char *text, const struct expect *e)
{
    unsigned workers = e->workers;
    char *copy = strdup(text), *save = NULL;
    cr_assert_not_null(copy);
    size_t width = 0;
    unsigned line = 0;
    unsigned long long sum[NCOLS] = {0};
    for (char *l = strtok_r(copy, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save), line++) {
        if (line == 0)
            width = strlen(l);
        cr_assert_eq(strlen(l), width, "line %u not aligned: '%s'", line, l);
        char label[32];
        int off = 0;
        cr_assert_eq(sscanf(l, "%31s%n", label, &off), 1);
        const char *p = l + off;
        if (line == 0) {
            cr_assert_str_eq(label, "worker");
            for (unsigned k = 0; k < NCOLS; k++) {
                char name[32];
                int o = 0;
                cr_assert_eq(sscanf(p, "%31s%n", name, &o), 1);
                cr_assert_str_eq(name, cols[k]);
                p += o;
            }
            continue;
        }
        unsigned long long v[NCOLS];
        for (unsigned k = 0; k < NCOLS; k++) {
            int o = 0;
            cr_assert_eq(sscanf(p, "%llu%n", &v[k], &o), 1,
                         "line %u column %u", line, k);
            p += o;
        }
        if (line <= workers) {
            char want[16];
            snprintf(want, sizeof(want), "%u", line - 1);
            cr_assert_str_eq(label, want);
            for (unsigned k = 0; k < NCOLS; k++) {
                sum[k] += v[k];
                const unsigned long long lo = e->lo[line - 1][k],
                                         hi = e->hi[line - 1][k];
                cr_assert(v[k] >= lo && v[k] <= hi,
                          "worker %u's %s printed as %llu, the stats API "
                          "read %llu..%llu",
                          line - 1, cols[k], v[k], lo, hi);
            }
        } else {
            cr_assert_eq(line, workers + 1, "more rows than workers + 1");
            cr_assert_str_eq(label, "total");
            for (unsigned k = 0; k < NCOLS; k++)
                cr_assert_eq(v[k], sum[k], "total of %s: %llu, sum %llu",
                             cols[k], v[k], sum[k]);
            cr_assert_eq(v[1], BUSY_FORKS, "total forks printed as %llu", v[1]);
        }
    }
    cr_assert_eq(line, workers + 2, "%u lines for %u workers", line, workers);
    free(copy);
}

static void report_of(unsigned workers)
{
    heist_sched *s = busy_sched(workers);
    struct expect e;
    expect_read(s, workers, &e);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    cr_assert_not_null(m);
    cr_assert_eq(heist_sched_report(s, m), 0);
    fclose(m);
    expect_read_after(s, &e);
    cr_assert_eq(heist_sched_free(s), 0);
    check_table(buf, &e);
    free(buf);
}

Test(report, format_one_worker)
{
    report_of(1);
}

Test(report, format_three_workers)
{
    report_of(3);
}

/* A stream whose every write fails, as on a full disk: the report must
 * say EIO. (/dev/full would do on Linux, but a missing one would skip the
 * check.) */
static ssize_t write_fails(void *cookie, const char *buf, size_t size)
{
    (void)cookie;
    (void)buf;
    (void)size;
    errno = ENOSPC;
    return -1;
}

Test(report, errors)
{
    heist_sched *s = busy_sched(1);
    cr_assert_eq(heist_sched_report(NULL, stdout), EINVAL);
    cr_assert_eq(heist_sched_report(s, NULL), EINVAL);
    cookie_io_functions_t io = {.write = write_fails};
    /* Buffered, the failure shows at the flush; unbuffered, at the first
     * fprintf. */
    for (int unbuffered = 0; unbuffered < 2; unbuffered++) {
        FILE *bad = fopencookie(NULL, "w", io);
        cr_assert_not_null(bad);
        if (unbuffered)
            cr_assert_eq(setvbuf(bad, NULL, _IONBF, 0), 0);
        cr_assert_eq(heist_sched_report(s, bad), EIO, "%s stream",
                     unbuffered ? "an unbuffered" : "a buffered");
        fclose(bad);
    }
    heist_counters c;
    cr_assert_eq(heist_sched_worker_stats(NULL, 0, &c), EINVAL);
    cr_assert_eq(heist_sched_worker_stats(s, 0, NULL), EINVAL);
    cr_assert_eq(heist_sched_worker_stats(s, 1, &c), EINVAL);
    cr_assert_eq(heist_sched_free(s), 0);
}

/* ---- what heist_sched_free writes to stderr ------------------------------ */

/* stderr (fd 2) redirected into a temporary file while a test runs code
 * that writes there at heist_sched_free. */
struct capture {
    FILE *tf;
    int saved;
};

static void capture_start(struct capture *c)
{
    c->tf = tmpfile();
    cr_assert_not_null(c->tf);
    fflush(stderr);
    c->saved = dup(2);
    cr_assert_geq(c->saved, 0);
    cr_assert_geq(dup2(fileno(c->tf), 2), 0);
}

/* Puts stderr back and returns what was written meanwhile (malloc'd, ""
 * if nothing). */
static char *capture_end(struct capture *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    int fd = fileno(c->tf);
    char *buf = malloc(65536);
    cr_assert_not_null(buf);
    ssize_t n = pread(fd, buf, 65535, 0);
    fclose(c->tf);
    cr_assert_geq(n, 0);
    buf[n] = 0;
    return buf;
}

/* A busy scheduler of `workers` workers created and freed with
 * $HEIST_STATS = value (NULL: unset); returns what went to stderr, and in
 * *e the counters read just before heist_sched_free. */
static char *stats_at_free(const char *value, unsigned workers,
                           struct expect *e)
{
    if (value)
        cr_assert_eq(setenv("HEIST_STATS", value, 1), 0);
    else
        cr_assert_eq(unsetenv("HEIST_STATS"), 0);
    struct capture c;
    capture_start(&c);
    heist_sched *s = busy_sched(workers);
    /* The table printed at the free holds the final counters: at least
     * what is read here. */
    expect_read(s, workers, e);
    cr_assert_eq(heist_sched_free(s), 0);
    return capture_end(&c);
}

/* HEIST_STATS=1: the table goes to stderr at heist_sched_free. */
Test(report, stats_env_at_free)
{
    struct expect e;
    char *out = stats_at_free("1", 2, &e);
    cr_assert_neq(out[0], 0, "nothing on stderr");
    check_table(out, &e);
    free(out);
}

/* Anything but "" or "0" prints the table: "00" is not "0" (the value is
 * compared, not parsed), nor is a word. */
Test(report, stats_env_other_values_print)
{
    const char *const vals[] = {"00", "yes"};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        struct expect e;
        char *out = stats_at_free(vals[i], 1, &e);
        cr_assert_neq(out[0], 0, "HEIST_STATS=\"%s\": nothing on stderr",
                      vals[i]);
        check_table(out, &e);
        free(out);
    }
}

/* HEIST_STATS unset, "" or "0": heist_sched_free prints nothing. */
Test(report, stats_env_silent)
{
    const char *const vals[] = {NULL, "", "0"};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        struct expect e;
        char *out = stats_at_free(vals[i], 2, &e);
        cr_assert_str_empty(out, "HEIST_STATS=%s%s%s: stderr got '%s'",
                            vals[i] ? "\"" : "(unset)", vals[i] ? vals[i] : "",
                            vals[i] ? "\"" : "", out);
        free(out);
    }
}

/* ---- the trace ----------------------------------------------------------- */

/* A fresh directory for trace files, and a path in it. */
static void trace_dir(char dir[static 64], char path[static 96])
{
    /* In the working directory (ctest runs this in the build tree). */
    strcpy(dir, "heist_report_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, 96, "%s/trace.json", dir);
}

/* The whole of a file (malloc'd), or NULL if it cannot be read. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t cap = 0, len = 0, n;
    do {
        if (len + 4096 + 1 > cap) {
            cap = 2 * cap + 4096 + 1;
            char *nb = realloc(buf, cap);
            cr_assert_not_null(nb);
            buf = nb;
        }
        n = fread(buf + len, 1, 4096, f);
        len += n;
    } while (n > 0);
    fclose(f);
    buf[len] = 0;
    return buf;
}

/* $HEIST_TRACE names the trace when trace_path is NULL: heist_sched_new
 * creates the file, heist_sched_free writes the trace there (and says
 * nothing on stderr). trace_path "" means no trace, whatever the
 * variable says. */
Test(report, trace_env_written_at_free)
{
    char dir[64], path[96];
    trace_dir(dir, path);
    cr_assert_eq(setenv("HEIST_TRACE", path, 1), 0);

    heist_config cfg = {.workers = 2, .trace_path = ""};
    heist_sched *s = NULL;
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    cr_assert_neq(access(path, F_OK), 0,
                  "trace_path \"\" made a trace at $HEIST_TRACE");
    cr_assert_eq(heist_sched_free(s), 0);
    cr_assert_neq(access(path, F_OK), 0,
                  "trace_path \"\" wrote a trace at $HEIST_TRACE");

    struct capture c;
    capture_start(&c);
    cfg.trace_path = NULL;
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0,
                 "heist_sched_new made no file at $HEIST_TRACE");
    cr_assert_eq(sb.st_size, 0, "the trace was written before the free");
    void *r;
    cr_assert_eq(heist_run(s, fib, (void *)10L, &r), 0);
    cr_assert_eq((long)r, 55);
    cr_assert_eq(heist_sched_free(s), 0);
    char *err = capture_end(&c);
    cr_assert_str_empty(err, "a trace written fine, yet stderr got '%s'", err);
    free(err);

    char *text = slurp(path);
    cr_assert_not_null(text, "no trace at $HEIST_TRACE after the free");
    cr_assert_eq(text[0], '{', "not a JSON object: '%.60s'", text);
    cr_assert_not_null(strstr(text, "\"traceEvents\""),
                       "no traceEvents in the trace");
    /* One track per worker, named, tid = its index. */
    cr_assert_not_null(strstr(text, "\"tid\":1"), "no track of worker 1");
    cr_assert_not_null(strstr(text, "worker 1"), "worker 1's track unnamed");
    free(text);
    unlink(path);
    rmdir(dir);
}

/* A trace that cannot be written at heist_sched_free (/dev/full opens,
 * every write fails): a message on stderr, and the scheduler is freed all
 * the same (0, as any free). */
Test(report, trace_unwritable_at_free)
{
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no writable /dev/full to trace to");
    heist_config cfg = {.workers = 2, .trace_path = "/dev/full"};
    heist_sched *s = NULL;
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    void *r;
    cr_assert_eq(heist_run(s, fib, (void *)10L, &r), 0);
    cr_assert_eq((long)r, 55);
    struct capture c;
    capture_start(&c);
    int err = heist_sched_free(s);
    char *out = capture_end(&c);
    cr_assert_eq(err, 0, "heist_sched_free returned %d", err);
    /* The message says what failed: the trace, at which path. */
    cr_assert_not_null(strstr(out, "trace"),
                       "no message about the trace on stderr: '%s'", out);
    cr_assert_not_null(strstr(out, "/dev/full"),
                       "the message does not name the path: '%s'", out);
    free(out);
}

/* The trace file cannot be created: heist_sched_new says why. */
Test(report, trace_path_errors)
{
    heist_config cfg = {.workers = 1,
                        .trace_path = "/nonexistent-dir/heist/trace.json"};
    heist_sched *s = NULL;
    cr_assert_eq(heist_sched_new(&cfg, &s), ENOENT);
    cr_assert_null(s);
    cr_assert_eq(setenv("HEIST_TRACE_EVENTS", "lots", 1), 0);
    /* Relative: ctest runs in the build tree. The bad event count is
     * refused before the file is made. */
    cfg.trace_path = "heist_unused_trace.json";
    cr_assert_eq(heist_sched_new(&cfg, &s), EINVAL);
    cr_assert_null(s);
    cr_assert_neq(access(cfg.trace_path, F_OK), 0, "the trace file was made");
}
