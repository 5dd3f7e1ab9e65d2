/*
 * util.c - fatal errors and the clock (see util.h).
 */
#include "util.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void heist__fatal_claim(void)
{
    /* The kernel thread id of the thread that reports; 0: none yet. */
    static _Atomic long owner;
    long me = (long)syscall(SYS_gettid), none = 0;
    /* Relaxed: the word orders nothing; it only picks one reporter (the
     * compare-exchange is atomic whatever its order). Lock-free, so safe
     * in a signal handler, as are gettid and nanosleep. The reporter
     * itself may fail again while it reports or aborts (a SIGABRT handler
     * that overflows its stack): it goes on, so that report comes out
     * too, instead of waiting for itself. */
    if (atomic_compare_exchange_strong_explicit(
            &owner, &none, me, memory_order_relaxed, memory_order_relaxed) ||
        none == me)
        return;
    /* Another thread reports and aborts: wait for that to end the process;
     * should it not within about 5 s (its report stuck), report here. */
    for (int i = 0; i < 500; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
}

_Noreturn void heist__fatal(const char *fmt, ...)
{
    /* Formatted here and written with one write(2): no stdio lock, which
     * a thread that failed inside stdio may hold. */
    char msg[1024];
    static const char head[] = "heist: fatal: ";
    va_list ap;
    heist__fatal_claim();
    memcpy(msg, head, sizeof head - 1);
    va_start(ap, fmt);
    /* One byte kept for the newline; a longer message is cut. */
    int n = vsnprintf(msg + sizeof head - 1, sizeof msg - sizeof head, fmt, ap);
    va_end(ap);
    size_t len = sizeof head - 1;
    if (n > 0)
        len += (size_t)n < sizeof msg - sizeof head
                   ? (size_t)n
                   : sizeof msg - sizeof head - 1;
    msg[len++] = '\n';
    heist__write_err(msg, len);
    abort();
}

void heist__write_err(const char *s, size_t len)
{
    for (size_t off = 0; off < len;) {
        ssize_t w = write(2, s + off, len - off);
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

int heist__mutex_init_short(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    int err = pthread_mutexattr_init(&a);
    if (err)
        return err;
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    /* An error leaves the default type: only slower. */
    (void)pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    err = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return err;
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
