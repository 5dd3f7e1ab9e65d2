/*
 * util.c - fatal errors and the clock (see util.h).
 */
#include "util.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

void heist__fatal_claim(void)
{
    static atomic_flag claimed = ATOMIC_FLAG_INIT;
    /* Relaxed: the flag orders nothing; it only picks one reporter (the
     * test-and-set is atomic whatever its order). Lock-free, so safe in a
     * signal handler. */
    if (!atomic_flag_test_and_set_explicit(&claimed, memory_order_relaxed))
        return;
    for (;;)
        pause();
}

_Noreturn void heist__fatal(const char *fmt, ...)
{
    va_list ap;
    heist__fatal_claim();
    va_start(ap, fmt);
    fputs("heist: fatal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

uint64_t heist__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t heist__deadline_after(uint64_t ns)
{
    uint64_t now = heist__now_ns();
    return ns >= UINT64_MAX - now ? UINT64_MAX - 1 : now + ns;
}
