/*
 * criterion_tsan.c - lets Criterion 2.4.1 start under ThreadSanitizer
 * (linked into the test executables of TSan builds only; see
 * test/CMakeLists.txt for the whole story).
 *
 * The problem (Criterion issue #274): BoxFort, Criterion's sandbox library,
 * maps its shared arena with MAP_FIXED at
 *
 *     0x2000_0000_0000 + (rand_r(&seed) & 0x3fffff) * 16 MiB
 *
 * after checking with mincore() that the range is unmapped, and gives up
 * after 10 draws. TSan reserves almost all of [0x2000_0000_0000,
 * 0x6000_0000_0000) for its shadow and meta memory and refuses MAP_FIXED
 * outside application memory, so most draws fail and Criterion aborts with
 * "Could not initialize inheritable arena" about four runs in five.
 *
 * The fix: this executable defines rand_r, which the dynamic linker binds
 * ahead of the C library's for libcriterion too. When libcriterion calls it,
 * we return a draw that lands in a hole of the current address map: under
 * TSan every hole in that range is application memory (TSan maps or
 * protects the rest), and the hole we pick is the largest one, with a margin
 * on both sides so the arena can grow in place. Any other caller gets the C
 * library's rand_r. If no hole is found (an unexpected layout) we fall back
 * to the C library too, which is what Criterion would have done anyway.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* BoxFort's draw (src/arena.c, 64-bit): base + (r & mask) * step. */
#define BXF_BASE 0x200000000000ull
#define BXF_STEP (1ull << 24)
#define BXF_MASK 0x3fffffull
#define BXF_END  (BXF_BASE + (BXF_MASK + 1) * BXF_STEP)
/* Room kept free on each side of the arena: it grows in place (mremap or a
 * fixed mapping after it) while the pages after it are free. */
#define MARGIN (1ull << 32)

static int (*libc_rand_r)(unsigned *);

static bool called_from_criterion(const void *ret)
{
    Dl_info info;
    return dladdr(ret, &info) && info.dli_fname &&
           strstr(info.dli_fname, "libcriterion") != NULL;
}

static uint64_t parse_hex(const char **p, const char *end)
{
    uint64_t v = 0;
    for (; *p < end; (*p)++) {
        char c = **p;
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            break;
        v = v * 16 + d;
    }
    return v;
}

/* Finds the largest unmapped range inside BoxFort's window; returns false if
 * none is large enough. Reads /proc/self/maps with plain system calls (no
 * allocation): its lines are sorted by address. */
static bool largest_hole(uint64_t *lo, uint64_t *hi)
{
    static char buf[1 << 18];
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof(buf))
            break; /* later lines are higher addresses: past our window */
    }
    close(fd);

    uint64_t best_lo = 0, best_hi = 0, prev_end = BXF_BASE;
    const char *p = buf, *end = buf + len;
    for (;;) {
        uint64_t start = BXF_END, stop = BXF_END;
        if (p < end) {
            start = parse_hex(&p, end);
            if (p < end && *p == '-')
                p++;
            stop = parse_hex(&p, end);
        }
        uint64_t a = prev_end > BXF_BASE ? prev_end : BXF_BASE;
        uint64_t b = start < BXF_END ? start : BXF_END;
        if (b > a && b - a > best_hi - best_lo) {
            best_lo = a;
            best_hi = b;
        }
        if (p >= end || start >= BXF_END)
            break;
        if (stop > prev_end)
            prev_end = stop;
        while (p < end && *p != '\n')
            p++;
        if (p < end)
            p++;
    }
    if (best_hi - best_lo < 2 * MARGIN + 2 * BXF_STEP)
        return false;
    *lo = best_lo + MARGIN;
    *hi = best_hi - MARGIN;
    return true;
}

int rand_r(unsigned *seed)
{
    if (called_from_criterion(__builtin_return_address(0))) {
        uint64_t lo, hi;
        if (largest_hole(&lo, &hi)) {
            /* Slots whose whole 16 MiB lie in [lo, hi). */
            uint64_t first = (lo - BXF_BASE + BXF_STEP - 1) / BXF_STEP;
            uint64_t last = (hi - BXF_BASE) / BXF_STEP; /* exclusive */
            *seed = *seed * 1103515245u + 12345u;
            uint64_t pick = first + (*seed >> 8) % (last - first);
            return (int)pick; /* pick <= BXF_MASK */
        }
    }
    if (!libc_rand_r)
        libc_rand_r = (int (*)(unsigned *))dlsym(RTLD_NEXT, "rand_r");
    return libc_rand_r(seed);
}

/* A TSan report must fail the test whatever TSAN_OPTIONS says: Criterion
 * ignores the exit status of a worker whose test already passed, so the
 * report has to end the worker first. TSAN_OPTIONS still overrides these. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "halt_on_error=1:second_deadlock_stack=1";
}
