/*
 * test_report.c - heist_sched_report (include/heist/sched.h): the table's
 * format (a header naming the columns, one row per worker, a total row
 * equal to the column sums, all lines aligned), its errors, $HEIST_STATS,
 * and the trace's creation errors.
 *
 * Each Criterion test runs in its own process, so setenv() here does not
 * leak into other tests.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <heist/heist.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static heist_sched *busy_sched(unsigned workers)
{
    heist_config cfg = {.workers = workers};
    heist_sched *s = NULL;
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    void *r;
    cr_assert_eq(heist_run(s, fib, (void *)20L, &r), 0);
    cr_assert_eq((long)r, 6765);
    return s;
}

/* Reads the table back and checks it against itself: header, rows, sums. */
static void check_table(const char *text, unsigned workers)
{
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
            for (unsigned k = 0; k < NCOLS; k++)
                sum[k] += v[k];
        } else {
            cr_assert_eq(line, workers + 1, "more rows than workers + 1");
            cr_assert_str_eq(label, "total");
            for (unsigned k = 0; k < NCOLS; k++)
                cr_assert_eq(v[k], sum[k], "total of %s: %llu, sum %llu",
                             cols[k], v[k], sum[k]);
        }
    }
    cr_assert_eq(line, workers + 2, "%u lines for %u workers", line, workers);
    free(copy);
}

static void report_of(unsigned workers)
{
    heist_sched *s = busy_sched(workers);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    cr_assert_not_null(m);
    cr_assert_eq(heist_sched_report(s, m), 0);
    fclose(m);
    cr_assert_eq(heist_sched_free(s), 0);
    check_table(buf, workers);
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

Test(report, errors)
{
    heist_sched *s = busy_sched(1);
    cr_assert_eq(heist_sched_report(NULL, stdout), EINVAL);
    cr_assert_eq(heist_sched_report(s, NULL), EINVAL);
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        cr_assert_eq(heist_sched_report(s, full), EIO);
        fclose(full);
    }
    cr_assert_eq(heist_sched_free(s), 0);
}

/* HEIST_STATS=1: the table goes to stderr at heist_sched_free. */
Test(report, stats_env_at_free)
{
    FILE *tf = tmpfile();
    cr_assert_not_null(tf);
    int fd = fileno(tf);
    cr_assert_eq(setenv("HEIST_STATS", "1", 1), 0);
    fflush(stderr);
    int saved = dup(2);
    cr_assert_geq(saved, 0);
    cr_assert_geq(dup2(fd, 2), 0);
    heist_sched *s = busy_sched(2);
    cr_assert_eq(heist_sched_free(s), 0);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char buf[4096];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    fclose(tf);
    cr_assert_gt(n, 0, "nothing on stderr");
    buf[n] = 0;
    check_table(buf, 2);
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
