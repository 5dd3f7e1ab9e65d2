/*
 * heist/task_inline.h - the fast paths of heist_fork, heist_join and
 * heist_join_fn, inline in the caller (included by heist/task.h; do not
 * include it alone).
 *
 * What a program sees: heist_fork, heist_join, heist_join_fn and
 * heist_sched_new become macros over the static inline functions below.
 * A fork that a worker makes and joins itself (the common case) then costs
 * a few plain loads and stores in the caller, no call into the library, and
 * heist_join_fn calls the child directly (the compiler may inline it). The
 * exported functions of the same names stay (a function pointer such as
 * `&heist_fork`, or `(heist_fork)(...)`, names them).
 *
 * The inline path is on (HEIST_INLINE is defined) when the compiler speaks
 * GNU C (gcc, clang), the target is x86-64, and the program is built with
 * no sanitizer and without HEIST_NO_INLINE. Otherwise every call goes to
 * the library, as before: under ThreadSanitizer and AddressSanitizer (gcc's
 * __SANITIZE_THREAD__ / __SANITIZE_ADDRESS__, clang's __has_feature) that
 * keeps every fork and join inside the instrumented, annotated library.
 *
 * ABI, not API: everything named heist__ here (the worker's public prefix,
 * the task's words, the exported thread-local heist__self, heist__fork_slow,
 * heist__join_slow, heist_sched_new_v) is the contract between this header
 * and the library binary, not something to call. Its layout is versioned by
 * HEIST_ABI_VERSION: with the inline path on, heist_sched_new(cfg, out)
 * is heist_sched_new_v(cfg, out, HEIST_ABI_VERSION), and a library whose
 * layout differs refuses to create the scheduler: ENOTSUP, with a message
 * on stderr naming both versions (rebuild the program against the
 * installed headers). A program whose inline forks run on a scheduler that
 * some other code created without the check is not protected.
 */
#ifndef HEIST_TASK_INLINE_H
#define HEIST_TASK_INLINE_H

#ifndef HEIST_TASK_H
#error "include <heist/task.h> or <heist/heist.h>, not heist/task_inline.h"
#endif

#include <errno.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The layout version of the structures below. Bump it whenever any of them
 * (or the meaning of a field or state) changes. */
#define HEIST_ABI_VERSION 1u

/*
 * Creates a scheduler like heist_sched_new after checking that abi, the
 * HEIST_ABI_VERSION the caller was compiled with, is the library's.
 * Errors: those of heist_sched_new, and ENOTSUP (abi is not the library's
 * version; a message on stderr says so; *out is left unchanged).
 */
int heist_sched_new_v(const heist_config *cfg, heist_sched **out,
                      unsigned abi);

/*
 * The words of a heist_task (heist_private_[i]). State values are chosen so
 * that a zeroed or reused frame is unlikely to pass for a forked one.
 */
enum {
    HEIST__TASK_FN = 0,     /* heist_fn, written by the forking worker */
    HEIST__TASK_ARG = 1,    /* void *, same */
    HEIST__TASK_RESULT = 2, /* void *, written by whoever runs fn */
    HEIST__TASK_STATE = 3,  /* one of the states below (atomic) */
    HEIST__TASK_THIEF = 4,  /* the worker that stole it (atomic) */
    HEIST__TASK_WAITER = 5  /* a suspended joiner (atomic) */
};
#define HEIST__TASK_FORKED ((uintptr_t)0x4f524b31u) /* "ORK1" */
#define HEIST__TASK_JOINED ((uintptr_t)0x4a4f494eu) /* "JOIN" */

/*
 * The public prefix of a worker: the first bytes of the library's worker
 * (its fork deque, lib/deque.h), as the fast paths read them. Line 0 is
 * shared with thieves; line 1 belongs to the worker's own thread.
 */
struct heist__fj_worker {
    uint64_t heist_ts_;       /* library-private (thieves CAS it) */
    unsigned char splitreq;   /* a thief asks for work: read relaxed */
    unsigned char heist_pad0_[55];
    uint32_t head;            /* one past the newest fork */
    uint32_t split;           /* forks at [split, head) are private */
    uint32_t cap;             /* slots in the ring */
    unsigned char allstolen;  /* every public fork was stolen */
    void **slot;              /* the ring's slots: frame pointers */
    uint64_t inlined;         /* joins run inline here (statistics) */
};

/* The calling thread's worker, or NULL (defined in the library; its type
 * is opaque here: the prefix above is its first member). */
struct heist__worker;
extern __thread struct heist__worker *heist__self
    __attribute__((tls_model("initial-exec"), visibility("default")));

/* The slow paths (exported). heist__fork_slow does what heist_fork does
 * when the fast path does not apply; heist__join_slow what heist_join does
 * (fn NULL) or heist_join_fn does (fn not NULL). */
void heist__fork_slow(heist_task *t, heist_fn fn, void *arg);
int heist__join_slow(heist_task *t, heist_fn fn, void **result);

#if defined(__GNUC__)

/* The calling thread's worker prefix, read afresh at every call: a task
 * that suspended may resume on another thread, so no thread pointer or
 * thread-local address computed before a call may be reused after it. On
 * x86-64 the volatile asm is one initial-exec load through %fs that the
 * compiler can neither merge with an earlier one nor move across a call;
 * elsewhere only the library uses these functions (each call of one of its
 * exported functions reads the variable anew). */
static inline struct heist__fj_worker *heist__fj_self(void)
{
#if defined(__x86_64__)
    struct heist__fj_worker *w;
    __asm__ __volatile__("movq heist__self@gottpoff(%%rip), %0\n\t"
                         "movq %%fs:(%0), %0"
                         : "=r"(w));
    return w;
#else
    return (struct heist__fj_worker *)(void *)heist__self;
#endif
}

/* heist_fork's fast path: on a worker whose deque has room and has nothing
 * to publish (no thief asked, not everything stolen), the frame and its
 * slot are private to this thread: plain stores. */
static inline void heist__fork_fast(heist_task *t, heist_fn fn, void *arg)
{
    struct heist__fj_worker *w = heist__fj_self();
    /* Relaxed load of splitreq: a hint written by thieves (relaxed); a stale
     * value only delays sharing to a later fork. */
    if (__builtin_expect(w != 0 && t != 0 && fn != 0 && w->head < w->cap &&
                             !w->allstolen &&
                             !__atomic_load_n(&w->splitreq, __ATOMIC_RELAXED),
                         1)) {
        uint32_t h = w->head;
        t->heist_private_[HEIST__TASK_FN] = (uintptr_t)fn;
        t->heist_private_[HEIST__TASK_ARG] = (uintptr_t)arg;
        /* Relaxed stores of thief, state and the slot: a thief reads them
         * only after the library's later release (seq_cst) write of the
         * deque's tail/split word publishes the slot (lib/deque.c, I2), and
         * that write comes after these in this thread's order. */
        __atomic_store_n(&t->heist_private_[HEIST__TASK_THIEF], (uintptr_t)0,
                         __ATOMIC_RELAXED);
        __atomic_store_n(&t->heist_private_[HEIST__TASK_STATE],
                         HEIST__TASK_FORKED, __ATOMIC_RELAXED);
        __atomic_store_n(&w->slot[h], (void *)t, __ATOMIC_RELAXED);
        w->head = h + 1;
        return;
    }
    heist__fork_slow(t, fn, arg);
}

/* heist_join's (fn NULL) and heist_join_fn's fast path: t is this worker's
 * newest fork and still private (h > split), so no thief can take it: pop
 * it and run it here. Only a forked, unjoined frame can be in that slot. */
static inline int heist__join_fast(heist_task *t, heist_fn fn, void **result)
{
    struct heist__fj_worker *w = heist__fj_self();
    uint32_t h;
    /* Relaxed load of the slot: this thread wrote it (the owner's own
     * write); thieves never write slots. */
    if (__builtin_expect(
            w != 0 && (h = w->head) > w->split &&
                __atomic_load_n(&w->slot[h - 1], __ATOMIC_RELAXED) ==
                    (void *)t &&
                (fn == 0 || t->heist_private_[HEIST__TASK_FN] == (uintptr_t)fn),
            1)) {
        heist_fn call = fn ? fn : (heist_fn)t->heist_private_[HEIST__TASK_FN];
        w->head = h - 1;
        /* Relaxed load and store: the owner is the only writer; statistics
         * readers (relaxed) see some recent count. Counted before the call:
         * the child may suspend and come back on another worker. */
        __atomic_store_n(&w->inlined,
                         __atomic_load_n(&w->inlined, __ATOMIC_RELAXED) + 1,
                         __ATOMIC_RELAXED);
        void *r = call((void *)t->heist_private_[HEIST__TASK_ARG]);
        /* Relaxed: no other thread ever saw this frame. */
        __atomic_store_n(&t->heist_private_[HEIST__TASK_STATE],
                         HEIST__TASK_JOINED, __ATOMIC_RELAXED);
        if (result)
            *result = r;
        return 0;
    }
    return heist__join_slow(t, fn, result);
}

#if defined(__x86_64__) && !defined(HEIST_NO_INLINE) &&                      \
    !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
#if defined(__has_feature)
#if !__has_feature(thread_sanitizer) && !__has_feature(address_sanitizer)
#define HEIST_INLINE 1
#endif
#else
#define HEIST_INLINE 1
#endif
#endif

#endif /* __GNUC__ */

#ifdef HEIST_INLINE
static inline int heist__join_fn_inline(heist_task *t, heist_fn fn,
                                        void **result)
{
    if (!fn)
        return EINVAL;
    return heist__join_fast(t, fn, result);
}

#define heist_fork(t, fn, arg) heist__fork_fast((t), (fn), (arg))
#define heist_join(t, result) heist__join_fast((t), (heist_fn)0, (result))
#define heist_join_fn(t, fn, result) heist__join_fn_inline((t), (fn), (result))
#define heist_sched_new(cfg, out)                                             \
    heist_sched_new_v((cfg), (out), HEIST_ABI_VERSION)
#endif

#ifdef __cplusplus
}
#endif

#endif /* HEIST_TASK_INLINE_H */
