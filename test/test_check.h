/*
 * test_check.h - checks for code that runs on workers or other threads.
 *
 * cr_assert may only be called from a test's own thread, so tasks,
 * callbacks and helper threads record failed checks with CHECK / CHECK_EQ
 * (the first one's line and text are kept), and the test ends with
 * expect_clean(), which asserts that none failed. Include it after
 * criterion.h, in one file per executable.
 */
#ifndef HEIST_TEST_CHECK_H
#define HEIST_TEST_CHECK_H

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t check_mu = PTHREAD_MUTEX_INITIALIZER;
static int check_failures;
static char check_first[512];

__attribute__((format(printf, 2, 3))) static inline void
note_fail(int line, const char *fmt, ...)
{
    pthread_mutex_lock(&check_mu);
    if (check_failures++ == 0) {
        int n = snprintf(check_first, sizeof(check_first), "line %d: ", line);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(check_first + n, sizeof(check_first) - (size_t)n, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&check_mu);
}

#define CHECK(c)                                                               \
    do {                                                                       \
        if (!(c))                                                              \
            note_fail(__LINE__, "%s", #c);                                     \
    } while (0)
#define CHECK_EQ(a, b)                                                         \
    do {                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                    \
        if (a_ != b_)                                                          \
            note_fail(__LINE__, "%s is %lld, want %s (%lld)", #a, a_, #b,      \
                      b_);                                                     \
    } while (0)

static inline void expect_clean(void)
{
    pthread_mutex_lock(&check_mu);
    int n = check_failures;
    char first[sizeof(check_first)];
    memcpy(first, check_first, sizeof(first));
    pthread_mutex_unlock(&check_mu);
    cr_assert_eq(n, 0, "%d failed checks in tasks or threads; first: %s", n,
                 first);
}

/* errno read through a call the compiler cannot fold: glibc declares
 * __errno_location const, so after a possible fiber switch a cached
 * address would be another thread's errno. */
__attribute__((noinline, unused)) static int get_errno(void)
{
    return errno;
}

#endif /* HEIST_TEST_CHECK_H */
