/*
 * fault_inject.c - fails the Nth call of malloc & co., mmap, mprotect or
 * pthread_create while armed, and refuses membarrier(2) or
 * process_madvise(2) when told (fault_inject.h).
 *
 * How the calls are caught, and why this way:
 *
 *  - This file is linked into the test executable itself (not a library,
 *    not LD_PRELOAD), and the executable exports its symbols (CMake's
 *    ENABLE_EXPORTS). The executable comes first in the dynamic linker's
 *    lookup order, so its malloc, mmap, pthread_create... are the ones
 *    that every library calls: libheist.so, liburcu (whose call_rcu helper
 *    thread and its memory are what issue 10, item 3 is about) and glibc
 *    itself (glibc's own calls to malloc go through the PLT so that malloc
 *    can be replaced).
 *  - Each replacement forwards to the next definition, found with
 *    dlsym(RTLD_NEXT, ...). Under AddressSanitizer that next definition is
 *    ASan's interceptor (libasan is the first library loaded), so ASan and
 *    LeakSanitizer still see, track and check every allocation: a leak
 *    caused by an injected fault is reported as any other. An LD_PRELOAD
 *    library would come after libasan and never be called (or, put first,
 *    break ASan's "runtime comes first" check); -Wl,--wrap only renames
 *    the calls of the objects being linked, not those made inside liburcu
 *    or glibc.
 *  - dlsym may allocate (its error buffer, with calloc) before the real
 *    functions are known: those early requests are served from a static
 *    buffer, and free/realloc recognise its addresses and never hand them
 *    on.
 *  - Counting happens only between fi_arm and fi_disarm, so the test
 *    harness, ASan's start-up and the C library's start-up are never
 *    disturbed. Each kind has its own count; a call counts for its kind
 *    even when another kind is the one being failed.
 *  - Only calls made directly by heist's own code and by liburcu's count
 *    (and can fail): the caller's return address must lie in the
 *    executable code of libheist or liburcu (found with dl_iterate_phdr
 *    at fi_arm). Calls that glibc and the sanitizer runtime make on their
 *    own are left alone: ASan's start-up of every new thread calls
 *    pthread_getattr_np, which allocates, and ASan aborts ("CHECK failed")
 *    when that fails; that is no fault of heist's, and a heist call that
 *    fails inside glibc is caught at the call heist made (pthread_create
 *    itself fails instead of the memory it would map).
 *
 * Not caught: allocations made inside glibc by internal names (the stack
 * pthread_create maps, for one); pthread_create itself is caught instead.
 * Not used under ThreadSanitizer (the fault tests are not built there).
 */
#include "fault_inject.h"

#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- state --------------------------------------------------------------- */

static atomic_bool armed;
static _Atomic uint64_t counts[FI_NKINDS];
static _Atomic uint64_t nfailed;
static int fail_kind;
static uint64_t fail_n;
static int fail_mode;

/* The executable code of the libraries whose calls count. */
enum { MAX_RANGES = 16 };
static struct range {
    uintptr_t lo, hi;
} ranges[MAX_RANGES];
static int nranges;

static int add_ranges(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    const char *name = info->dlpi_name;
    if (!name || (!strstr(name, "libheist") && !strstr(name, "liburcu")))
        return 0;
    for (int i = 0; i < info->dlpi_phnum && nranges < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X))
            ranges[nranges++] = (struct range){
                info->dlpi_addr + ph->p_vaddr,
                info->dlpi_addr + ph->p_vaddr + ph->p_memsz};
    }
    return 0;
}

static bool counted_caller(const void *ret)
{
    uintptr_t a = (uintptr_t)ret;
    for (int i = 0; i < nranges; i++)
        if (a >= ranges[i].lo && a < ranges[i].hi)
            return true;
    return false;
}

void fi_arm(enum fi_kind kind, uint64_t n, enum fi_mode mode)
{
    atomic_store(&armed, false);
    nranges = 0;
    dl_iterate_phdr(add_ranges, NULL);
    for (int k = 0; k < FI_NKINDS; k++)
        atomic_store(&counts[k], 0);
    atomic_store(&nfailed, 0);
    fail_kind = (int)kind;
    fail_n = n;
    fail_mode = (int)mode;
    /* seq_cst: the settings above are visible to every thread that sees
     * armed true. */
    atomic_store(&armed, true);
}

void fi_disarm(void)
{
    atomic_store(&armed, false);
}

uint64_t fi_count(enum fi_kind kind)
{
    return atomic_load(&counts[kind]);
}

uint64_t fi_failed(void)
{
    return atomic_load(&nfailed);
}

const char *fi_kind_name(enum fi_kind kind)
{
    static const char *const names[FI_NKINDS] = {"alloc", "mmap", "mprotect",
                                                 "pthread_create"};
    return (unsigned)kind < FI_NKINDS ? names[kind] : "?";
}

const char *fi_mode_name(enum fi_mode mode)
{
    return mode == FI_ONCE ? "once" : "from";
}

/* Counts one call of kind made from ret; true if it must fail. */
#define should_fail(kind) should_fail_from(kind, __builtin_return_address(0))
static bool should_fail_from(int kind, const void *ret)
{
    if (!atomic_load_explicit(&armed, memory_order_acquire) ||
        !counted_caller(ret))
        return false;
    uint64_t c = atomic_fetch_add(&counts[kind], 1) + 1;
    if (kind != fail_kind || fail_n == 0)
        return false;
    bool fail = fail_mode == FI_ONCE ? c == fail_n : c >= fail_n;
    if (fail)
        atomic_fetch_add(&nfailed, 1);
    return fail;
}

/* ---- the next definitions ------------------------------------------------ */

static void *(*next_malloc)(size_t);
static void *(*next_calloc)(size_t, size_t);
static void *(*next_realloc)(void *, size_t);
static void (*next_free)(void *);
static void *(*next_aligned_alloc)(size_t, size_t);
static int (*next_posix_memalign)(void **, size_t, size_t);
static void *(*next_memalign)(size_t, size_t);
static void *(*next_mmap)(void *, size_t, int, int, int, off_t);
static int (*next_mprotect)(void *, size_t, int);
static long (*next_syscall)(long, ...);
static int (*next_pthread_create)(pthread_t *, const pthread_attr_t *,
                                  void *(*)(void *), void *);

/* Early requests (while dlsym runs): a bump allocator over a static
 * buffer, never freed. */
static _Alignas(64) char boot_buf[64 * 1024];
static _Atomic size_t boot_used;
static atomic_int resolving;

static void *boot_alloc(size_t size, size_t align)
{
    if (align < 16)
        align = 16;
    size_t old = atomic_load(&boot_used), start;
    do {
        start = (old + align - 1) & ~(align - 1);
        if (start + size > sizeof(boot_buf))
            return NULL;
    } while (!atomic_compare_exchange_weak(&boot_used, &old, start + size));
    return boot_buf + start; /* static storage: already zero */
}

static bool is_boot(const void *p)
{
    return (const char *)p >= boot_buf &&
           (const char *)p < boot_buf + sizeof(boot_buf);
}

#define RESOLVE(name)                                                          \
    do {                                                                       \
        void *p_ = dlsym(RTLD_NEXT, #name);                                    \
        memcpy(&next_##name, &p_, sizeof(p_));                                 \
    } while (0)

static void resolve(void)
{
    if (atomic_exchange(&resolving, 1))
        return; /* a call made by dlsym itself: the caller uses boot_alloc */
    RESOLVE(calloc);
    RESOLVE(malloc);
    RESOLVE(realloc);
    RESOLVE(free);
    RESOLVE(aligned_alloc);
    RESOLVE(posix_memalign);
    RESOLVE(memalign);
    RESOLVE(mmap);
    RESOLVE(mprotect);
    RESOLVE(pthread_create);
    RESOLVE(syscall);
    /* resolving stays 1: resolve() runs once. */
}

__attribute__((constructor(101))) static void fi_init(void)
{
    if (!next_free)
        resolve();
}

/* ---- the replacements ---------------------------------------------------- */

void *malloc(size_t size);
void *calloc(size_t n, size_t size);
void *realloc(void *p, size_t size);
void free(void *p);
void *aligned_alloc(size_t align, size_t size);
int posix_memalign(void **out, size_t align, size_t size);
void *memalign(size_t align, size_t size);

void *malloc(size_t size)
{
    if (!next_malloc) {
        resolve();
        if (!next_malloc)
            return boot_alloc(size, 16);
    }
    if (should_fail(FI_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return next_malloc(size);
}

void *calloc(size_t n, size_t size)
{
    if (!next_calloc) {
        resolve();
        if (!next_calloc) {
            if (size && n > SIZE_MAX / size)
                return NULL;
            return boot_alloc(n * size, 16);
        }
    }
    if (should_fail(FI_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return next_calloc(n, size);
}

void free(void *p)
{
    if (!p || is_boot(p))
        return;
    if (!next_free)
        resolve();
    if (next_free)
        next_free(p);
}

void *realloc(void *p, size_t size)
{
    if (!next_realloc) {
        resolve();
        if (!next_realloc)
            return NULL;
    }
    if (is_boot(p)) {
        /* Its size is unknown: copy what can be there. */
        void *q = malloc(size);
        if (q) {
            size_t room = (size_t)(boot_buf + sizeof(boot_buf) - (char *)p);
            memcpy(q, p, size < room ? size : room);
        }
        return q;
    }
    if (size > 0 && should_fail(FI_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return next_realloc(p, size);
}

void *aligned_alloc(size_t align, size_t size)
{
    if (!next_aligned_alloc) {
        resolve();
        if (!next_aligned_alloc)
            return boot_alloc(size, align);
    }
    if (should_fail(FI_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return next_aligned_alloc(align, size);
}

int posix_memalign(void **out, size_t align, size_t size)
{
    if (!next_posix_memalign) {
        resolve();
        if (!next_posix_memalign) {
            *out = boot_alloc(size, align);
            return *out ? 0 : ENOMEM;
        }
    }
    if (should_fail(FI_ALLOC))
        return ENOMEM;
    return next_posix_memalign(out, align, size);
}

void *memalign(size_t align, size_t size)
{
    if (!next_memalign) {
        resolve();
        if (!next_memalign)
            return boot_alloc(size, align);
    }
    if (should_fail(FI_ALLOC)) {
        errno = ENOMEM;
        return NULL;
    }
    return next_memalign(align, size);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    if (!next_mmap)
        resolve();
    if (should_fail(FI_MMAP)) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    return next_mmap(addr, len, prot, flags, fd, off);
}

int mprotect(void *addr, size_t len, int prot)
{
    if (!next_mprotect)
        resolve();
    if (should_fail(FI_MPROTECT)) {
        errno = ENOMEM;
        return -1;
    }
    return next_mprotect(addr, len, prot);
}

int pthread_create(pthread_t *t, const pthread_attr_t *attr,
                   void *(*fn)(void *), void *arg)
{
    if (!next_pthread_create)
        resolve();
    if (should_fail(FI_THREAD))
        return EAGAIN;
    return next_pthread_create(t, attr, fn, arg);
}

/* ---- membarrier ---------------------------------------------------------- */

static atomic_bool membarrier_refused;
/* Calls per command: QUERY, PRIVATE_EXPEDITED, REGISTER_PRIVATE_EXPEDITED,
 * anything else. */
static atomic_uint_least64_t membarrier_calls[4];

void fi_refuse_membarrier(bool refuse)
{
    atomic_store(&membarrier_refused, refuse);
}

static int membarrier_slot(long cmd)
{
    return cmd == 0 ? 0 : cmd == (1 << 3) ? 1 : cmd == (1 << 4) ? 2 : 3;
}

uint64_t fi_membarrier_calls(int cmd)
{
    return atomic_load(&membarrier_calls[membarrier_slot(cmd)]);
}

/* ---- process_madvise ----------------------------------------------------- */

/* The errno to refuse it with; 0: pass it on. seq_cst (the default): a
 * test's switch, read by whichever thread calls; no other data rides on
 * it. */
static atomic_int process_madvise_err;
/* Added by whichever thread calls, read by the test after its bursts
 * (heist_run's end orders them); seq_cst, the default, as the rest here. */
static atomic_uint_least64_t process_madvise_calls;

void fi_refuse_process_madvise(int err)
{
    atomic_store(&process_madvise_err, err);
}

uint64_t fi_process_madvise_calls(void)
{
    return atomic_load(&process_madvise_calls);
}

/* syscall(3) passes six longs on to the kernel; so does this. */
long syscall(long number, ...)
{
    if (!next_syscall)
        resolve();
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (number == SYS_membarrier) {
        atomic_fetch_add(&membarrier_calls[membarrier_slot(a[0])], 1);
        if (atomic_load(&membarrier_refused)) {
            errno = ENOSYS;
            return -1;
        }
    }
#ifdef SYS_process_madvise
    if (number == SYS_process_madvise) {
        atomic_fetch_add(&process_madvise_calls, 1);
        int err = atomic_load(&process_madvise_err);
        if (err) {
            errno = err;
            return -1;
        }
    }
#endif
    return next_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
