/*
 * heist/task_inline.h - the fast paths of heist_fork, heist_join and
 * heist_join_fn, inline in the caller (included by heist/task.h; do not
 * include it alone).
 *
 * What a program sees: heist_fork, heist_join, heist_join_fn and
 * heist_sched_new become macros over the static inline functions below
 * (in C with the join's check off, HEIST_JOIN_CHECK 0 as under NDEBUG,
 * the first three are statement expressions around them, see the end;
 * each macro evaluates each argument once).
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
 * ABI, not API: everything named heist__ here (the task's words, the
 * exported thread-local view of the worker's deque heist__fj,
 * heist__fork_slow, heist__join_slow, heist__join_check, heist_sched_new_v)
 * is the contract between this header and the library binary, not
 * something to call. Its layout is versioned by HEIST_ABI_VERSION: with
 * the inline path on, heist_sched_new(cfg, out) is heist_sched_new_v(cfg,
 * out, HEIST_ABI_VERSION), and a library whose
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
 * (or the meaning of a field or state) changes. 2: the worker's fork-deque
 * view moved into the thread-local heist__fj, frames record their slot.
 * 3: a joined frame's slot word holds HEIST__TASK_SLOT_JOINED, and the
 * inline join no longer reads the deque slot. 4: the deque holds the
 * forks' entries (function and argument), a heist_task holds its entry's
 * address and copies of the function and argument, and the slow paths
 * take and return values (nothing of the caller's frame escapes). */
#define HEIST_ABI_VERSION 4u

/*
 * Creates a scheduler like heist_sched_new after checking that abi, the
 * HEIST_ABI_VERSION the caller was compiled with, is the library's.
 * Errors: those of heist_sched_new, and ENOTSUP (abi is not the library's
 * version; a message on stderr says so; *out is left unchanged).
 */
int heist_sched_new_v(const heist_config *cfg, heist_sched **out,
                      unsigned abi);

/*
 * The words of a heist_task (heist_private_[i]). The task lives in the
 * caller's frame, but only the caller's code (inline) reads and writes it:
 * the library is given its words as values and gives back new ones, so a
 * compiler may keep the task in registers.
 */
enum {
    HEIST__TASK_SLOT = 0, /* its deque entry while forked, or a marker */
    HEIST__TASK_FN = 1,   /* heist_fn, as forked */
    HEIST__TASK_ARG = 2   /* void *, as forked; fn's result once the slot
                             word is HEIST__TASK_RAN */
};
/* Slot words that are no entry: odd, so never an entry's address (entries
 * are 32-byte aligned): the inline join's test fails on them and the
 * library says what they mean. */
#define HEIST__TASK_JOINED ((uintptr_t)0x4a4f4931u) /* "JOI1": joined */
#define HEIST__TASK_RAN ((uintptr_t)0x52414e31u)    /* "RAN1": ran at once */
#define HEIST__TASK_BADFN ((uintptr_t)0x42414431u)  /* "BAD1": fn was NULL */

/*
 * One position of a worker's fork deque. The forking code writes fn and
 * arg; sync and spare are the library's (a thief's acknowledgement; see
 * lib/fork.c).
 */
struct heist__fjent {
    heist_fn fn;
    void *arg;
    uintptr_t sync;
    uintptr_t spare;
};

/*
 * The owner's view of a worker's fork deque, in the worker thread's own
 * thread-local storage (heist__fj) while the thread runs the worker: the
 * fast paths reach it with one %fs-relative access, no pointer to chase.
 * Only the owner thread reads or writes top and split. limit is the
 * deque's end, or NULL when a fork must take the slow path: on a thread
 * that is no worker, while everything public was stolen (the fork
 * publishes at once), or after a thief asked for work (thieves store NULL
 * there, lib/deque.c).
 */
struct heist__fj {
    struct heist__fjent *top;   /* one past the newest fork's entry */
    struct heist__fjent *limit; /* the fast fork applies while top < limit */
    struct heist__fjent *split; /* forks in [split, top) are private */
    uint64_t inlined;           /* joins run inline by the fast path */
};

/* The calling thread's view (zero on a thread that is no worker: top and
 * limit NULL, so every fork and join takes the slow path). Defined in the
 * library. */
extern __thread struct heist__fj heist__fj
    __attribute__((tls_model("initial-exec"), visibility("default")));

/* The slow paths (exported), by value. heist__fork_slow does what
 * heist_fork does when the fast path does not apply and returns the task's
 * slot word and, for HEIST__TASK_RAN, the result (its argument word then);
 * heist__join_slow does what heist_join (fn NULL) or heist_join_fn (fn
 * not NULL) does for a task whose words are slot, tfn and targ, and
 * returns the result and the error (0: the task is joined; the caller
 * then marks it so). Two-word structures: returned
 * in registers. */
struct heist__forked {
    uintptr_t slot;
    void *result;
};
struct heist__joined {
    void *result;
    uintptr_t err;
};
struct heist__forked heist__fork_slow(heist_fn fn, void *arg);
struct heist__joined heist__join_slow(uintptr_t slot, heist_fn fn,
                                      heist_fn tfn, void *targ);
/* After a join ran its task here (the task's entry was slot, and the deque
 * stood at slot when the task began): aborts, with a message, if the task
 * returned with forks of its own not joined (task.h); returns if not (the
 * deque no longer stands at slot because a suspension of the task moved
 * the fiber's forks). Called when the deque's top is not slot. */
void heist__join_check(uintptr_t slot);

#if defined(__GNUC__)

#if defined(__x86_64__)
/* Accesses to the calling thread's heist__fj, each a volatile asm: a task
 * that suspended may resume on another thread, so no thread pointer or
 * thread-local address computed before a call may be reused after it, and
 * the compiler would (it takes %fs as constant in a function). Each access
 * reads %fs afresh; the field's offset in the thread's static TLS block
 * comes from the GOT (initial-exec), the same in every thread. */
#define HEIST__FJ_OFF(field) __builtin_offsetof(struct heist__fj, field)
/* The offset of heist__fj from the thread pointer: the same in every
 * thread, so a plain (non-volatile) asm the compiler may compute once. */
static inline uintptr_t heist__fj_off(void)
{
    uintptr_t o;
    __asm__("movq heist__fj@gottpoff(%%rip), %0" : "=r"(o));
    return o;
}
#define HEIST__FJ_LOAD(field, out)                                           \
    __asm__ __volatile__("movq %%fs:%c2(%1), %0"                             \
                         : "=r"(out)                                         \
                         : "r"(heist__fj_off()), "i"(HEIST__FJ_OFF(field)))
#define HEIST__FJ_STORE(field, val)                                          \
    __asm__ __volatile__("movq %0, %%fs:%c2(%1)"                             \
                         :                                                   \
                         : "r"(val), "r"(heist__fj_off()),                   \
                           "i"(HEIST__FJ_OFF(field)))
/* The inline-join count: one add to memory, by the owner only; on x86-64
 * an aligned 8-byte add is one store that a statistics reader (relaxed
 * load, lib/sched.c) sees whole. */
#define HEIST__FJ_COUNT_INLINED()                                            \
    __asm__ __volatile__("addq $1, %%fs:%c1(%0)"                             \
                         :                                                   \
                         : "r"(heist__fj_off()), "i"(HEIST__FJ_OFF(inlined)))
/* After a join ran the task of entry slot here: its forks are joined if the
 * deque stands at slot again (one load and compare); the library looks
 * closer otherwise. */
#define HEIST__JOIN_CHECK(slot)                                              \
    do {                                                                     \
        uintptr_t heist__top_;                                               \
        HEIST__FJ_LOAD(top, heist__top_);                                    \
        if (__builtin_expect(heist__top_ != (slot), 0))                      \
            heist__join_check(slot);                                         \
    } while (0)
#else
/* Elsewhere only the library uses the fast paths, inside its exported
 * functions, which read heist__fj before any call that could move the task
 * to another thread. */
#define HEIST__FJ_LOAD(field, out) ((out) = heist__fj.field)
#define HEIST__FJ_STORE(field, val) (heist__fj.field = (val))
/* Relaxed load and store: the owner is the only writer; statistics readers
 * (relaxed) see some recent count. */
#define HEIST__FJ_COUNT_INLINED()                                            \
    __atomic_store_n(&heist__fj.inlined,                                     \
                     __atomic_load_n(&heist__fj.inlined, __ATOMIC_RELAXED) + \
                         1,                                                  \
                     __ATOMIC_RELAXED)
/* After the task's call the thread may be another one, whose heist__fj a
 * compiler could not be trusted to address afresh: the library looks. */
#define HEIST__JOIN_CHECK(slot) heist__join_check(slot)
#endif

/* Whether the inline join checks, when the task it ran returns, that the
 * task joined its own forks (heist/task.h): HEIST_JOIN_CHECK as the
 * program defines it (0 or 1), else 1 unless NDEBUG is defined, as for
 * assert. The check is a load and a compare per join, but it comes after
 * the task's call, so the call is never the function's last act: gcc
 * cannot turn a recursion that ends in the join into a loop. fib(35) on
 * one worker, `-O2`, with the leaf test on the argument: 58 ms with it,
 * 43.4 without; with the test after the conversion (no loop either way)
 * 58 against 60 (README). The library's own joins always check. */
#ifndef HEIST_JOIN_CHECK
#ifdef NDEBUG
#define HEIST_JOIN_CHECK 0
#else
#define HEIST_JOIN_CHECK 1
#endif
#endif

/* heist_fork's fast path: on a worker whose deque has room and has nothing
 * to publish (no thief asked, not everything stolen: limit is NULL then),
 * the entry is private to this thread: plain stores. */
static inline void heist__fork_fast(heist_task *t, heist_fn fn, void *arg)
{
    struct heist__fjent *e, *limit;
    HEIST__FJ_LOAD(top, e);
    /* A plain (relaxed) load of limit: thieves store NULL there to ask for
     * work (seq_cst, after raising the deque's splitreq); a stale value
     * only delays sharing to a later fork, and the slow path's acquire
     * fence pairs with the thief's store when it sees NULL (lib/deque.c). */
    HEIST__FJ_LOAD(limit, limit);
    if (__builtin_expect(e < limit && t != 0 && fn != 0, 1)) {
        /* Plain stores: a thief reads the entry only after the library's
         * later release (seq_cst) write of the deque's tail/split word
         * publishes it (lib/deque.c, I2), and that write comes after these
         * in this thread's order (it is in a call, which the compiler does
         * not move these stores across). The sync word is written when the
         * library publishes the entry, if ever. */
        e->fn = fn;
        e->arg = arg;
        t->heist_private_[HEIST__TASK_SLOT] = (uintptr_t)e;
        t->heist_private_[HEIST__TASK_FN] = (uintptr_t)fn;
        t->heist_private_[HEIST__TASK_ARG] = (uintptr_t)arg;
        HEIST__FJ_STORE(top, e + 1);
        return;
    }
    if (t) {
        struct heist__forked r = heist__fork_slow(fn, arg);
        t->heist_private_[HEIST__TASK_SLOT] = r.slot;
        t->heist_private_[HEIST__TASK_FN] = (uintptr_t)fn;
        t->heist_private_[HEIST__TASK_ARG] =
            (uintptr_t)(r.slot == HEIST__TASK_RAN ? r.result : arg);
    }
    /* t NULL: nothing runs; heist_join(NULL) reports EINVAL. */
}

/* heist_join's (fn NULL) and heist_join_fn's fast path, its first half: if
 * t's entry is this worker's newest (the one below top) and still private
 * (at or above split), so that no thief can take it, pops it, marks t
 * joined and returns 1 with the entry's address in *slot; the caller then
 * runs the task, from the task's own copies of the function and argument.
 * Returns 0, changing nothing, if not. An entry of this fiber that a
 * suspension took off the deque (lib/fork.c, the drain) lies below split:
 * every fiber resumes on an empty deque placed above them (split at or
 * above that place), and split does not go below it while the fiber runs;
 * so does an entry of another worker's deque, which is another array. A
 * joined task's slot word is odd (HEIST__TASK_JOINED) and never passes. */
static inline int heist__join_pop(heist_task *t, heist_fn fn, uintptr_t *slot)
{
    struct heist__fjent *top, *split;
    uintptr_t s;
    HEIST__FJ_LOAD(top, top);
    HEIST__FJ_LOAD(split, split);
    /* Integer compares: a marker never passes, as top is NULL or an
     * aligned heap address. */
    if (__builtin_expect(
            t != 0 &&
                (s = t->heist_private_[HEIST__TASK_SLOT],
                 (uintptr_t)top == s + sizeof(struct heist__fjent)) &&
                s >= (uintptr_t)split &&
                (fn == 0 || t->heist_private_[HEIST__TASK_FN] == (uintptr_t)fn),
            1)) {
        HEIST__FJ_STORE(top, (struct heist__fjent *)s);
        /* Counted before the task runs: it may suspend and come back on
         * another worker. */
        HEIST__FJ_COUNT_INLINED();
        /* Written before the task runs: a second join of t then goes to
         * the library, which reports it. */
        t->heist_private_[HEIST__TASK_SLOT] = HEIST__TASK_JOINED;
        *slot = s;
        return 1;
    }
    return 0;
}

/* The rest of a join whose pop did not apply: t NULL, or the library. */
static inline int heist__join_rest(heist_task *t, heist_fn fn, void **result)
{
    if (!t) {
        if (result)
            *result = (void *)0;
        return EINVAL;
    }
    struct heist__joined j = heist__join_slow(
        t->heist_private_[HEIST__TASK_SLOT], fn,
        (heist_fn)t->heist_private_[HEIST__TASK_FN],
        (void *)t->heist_private_[HEIST__TASK_ARG]);
    if (j.err == 0)
        t->heist_private_[HEIST__TASK_SLOT] = HEIST__TASK_JOINED;
    /* Written on every path (NULL on an error: heist/task.h), so that a
     * compiler that sees the task's words does not take the caller's
     * result variable for one that a failed join leaves unset. */
    if (result)
        *result = j.err == 0 ? j.result : (void *)0;
    return (int)j.err;
}

/* heist_join (fn NULL) and heist_join_fn (fn not NULL, the task's). */
static inline int heist__join_fast(heist_task *t, heist_fn fn, void **result)
{
    uintptr_t slot;
    if (__builtin_expect(heist__join_pop(t, fn, &slot), 1)) {
        heist_fn call = fn ? fn : (heist_fn)t->heist_private_[HEIST__TASK_FN];
        void *r = call((void *)t->heist_private_[HEIST__TASK_ARG]);
#if HEIST_JOIN_CHECK
        /* A task that returns with forks not joined is caught at its end
         * (task.h), here as where a thief or a drain runs it: its forks
         * would otherwise pass for ours, to run on its dead frame. */
        HEIST__JOIN_CHECK(slot);
#else
        (void)slot;
#endif
        if (result)
            *result = r;
        return 0;
    }
    return heist__join_rest(t, fn, result);
}

/* heist_join_fn's rest when its pop did not apply or fn is NULL (a NULL
 * fn joins nothing: heist/task.h). */
static inline int heist__join_fn_rest(heist_task *t, heist_fn fn,
                                      void **result)
{
    if (!fn) {
        if (result)
            *result = (void *)0;
        return EINVAL;
    }
    return heist__join_rest(t, fn, result);
}

/* heist_join_fn. The library's exported heist_join_fn is this too. */
static inline int heist__join_fn_inline(heist_task *t, heist_fn fn,
                                        void **result)
{
    return fn ? heist__join_fast(t, fn, result)
              : heist__join_fn_rest(t, fn, result);
}

#endif /* __GNUC__ */

#if defined(__GNUC__) && defined(__x86_64__) && !defined(HEIST_NO_INLINE) &&                      \
    !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
#if defined(__has_feature)
#if !__has_feature(thread_sanitizer) && !__has_feature(address_sanitizer)
#define HEIST_INLINE 1
#endif
#else
#define HEIST_INLINE 1
#endif
#endif

#ifdef HEIST_INLINE
#if HEIST_JOIN_CHECK || defined(__cplusplus)
#define heist_fork(t, fn, arg) heist__fork_fast((t), (fn), (arg))
#define heist_join(t, result) heist__join_fast((t), (heist_fn)0, (result))
#define heist_join_fn(t, fn, result) heist__join_fn_inline((t), (fn), (result))
#else
/*
 * In C with the join's check off (HEIST_JOIN_CHECK 0, the default under
 * NDEBUG), the three are statement expressions (GNU C) that put two
 * things in the caller's own body, where gcc sees them from the start of
 * its work: heist_fork's store of the function into the task (a repeat of
 * the inline function's, which gcc then drops), and the join's call of
 * the task. The pop, the fork and the slow paths stay inline functions.
 * Through an inline function alone the join's call becomes a direct one
 * only when gcc inlines that function, after its early passes: too late
 * to turn a recursion that ends in the join (fib's) into a loop, as it
 * does Lace's, or to inline the task's partial-inlining head (its leaf
 * test) at the join. fib(35) with the leaf test on the argument, one
 * worker, `-O2 -DNDEBUG`: 52 ms before, 43.4 ms so (Lace 42-44 ms;
 * README). With the check on, its load after the call keeps the call
 * where it is, and these would gain nothing. Each argument is evaluated
 * once; the locals get a number of their own in each expansion
 * (__COUNTER__), so that nested uses do not shadow each other. C++ keeps
 * the inline functions (its casts would warn in the caller's code).
 */
#define HEIST__CAT_(a, b) a##b
#define HEIST__CAT(a, b) HEIST__CAT_(a, b)
#define heist_fork(t, fn, arg) HEIST__FORK_EXPR(__COUNTER__, t, fn, arg)
#define HEIST__FORK_EXPR(n, t, fn, arg)                                      \
    (__extension__({                                                         \
        heist_task *HEIST__CAT(heist__ft_, n) = (t);                         \
        heist_fn HEIST__CAT(heist__ff_, n) = (fn);                           \
        heist__fork_fast(HEIST__CAT(heist__ft_, n), HEIST__CAT(heist__ff_, n), \
                         (arg));                                             \
        if (HEIST__CAT(heist__ft_, n))                                       \
            HEIST__CAT(heist__ft_, n)->heist_private_[HEIST__TASK_FN] =      \
                (uintptr_t)HEIST__CAT(heist__ff_, n);                        \
        (void)0;                                                             \
    }))
/* The join, expansion n: pop (if ok, an expression of F, the function
 * named or NULL), call CALLEE(T, F) (T: the task), or the rest. */
#define HEIST__JOIN_EXPR(n, t, fn, result, OK, CALLEE, rest)                 \
    HEIST__JOIN_EXPR_(t, fn, result, OK, CALLEE, rest,                       \
                      HEIST__CAT(heist__jt_, n), HEIST__CAT(heist__jf_, n),  \
                      HEIST__CAT(heist__jr_, n), HEIST__CAT(heist__js_, n),  \
                      HEIST__CAT(heist__je_, n), HEIST__CAT(heist__jv_, n))
#define HEIST__JOIN_EXPR_(t, fn, result, OK, CALLEE, rest, T, F, R, S, E, V) \
    (__extension__({                                                         \
        heist_task *T = (t);                                                 \
        heist_fn F = (fn);                                                   \
        void **R = (result);                                                 \
        uintptr_t S;                                                         \
        int E = 0;                                                           \
        if (__builtin_expect(OK(F) && heist__join_pop(T, F, &S), 1)) {       \
            void *V = CALLEE(T, F)(                                          \
                (void *)T->heist_private_[HEIST__TASK_ARG]);                 \
            if (R)                                                           \
                *R = V;                                                      \
        } else {                                                             \
            E = rest(T, F, R);                                               \
        }                                                                    \
        E;                                                                   \
    }))
/* heist_join: any function pops; the task's own is called. */
#define HEIST__JOIN_ANY(F) 1
#define HEIST__JOIN_TASKFN(T, F) ((heist_fn)(T)->heist_private_[HEIST__TASK_FN])
#define heist_join(t, result)                                                \
    HEIST__JOIN_EXPR(__COUNTER__, t, (heist_fn)0, result, HEIST__JOIN_ANY,   \
                     HEIST__JOIN_TASKFN, heist__join_rest)
/* heist_join_fn: a NULL fn must not pop (heist__join_pop takes it for
 * heist_join's); the named function is called. */
#define HEIST__JOIN_NAMED(F) ((F) != 0)
#define HEIST__JOIN_FN(T, F) (F)
#define heist_join_fn(t, fn, result)                                         \
    HEIST__JOIN_EXPR(__COUNTER__, t, fn, result, HEIST__JOIN_NAMED,          \
                     HEIST__JOIN_FN, heist__join_fn_rest)
#endif
#define heist_sched_new(cfg, out)                                             \
    heist_sched_new_v((cfg), (out), HEIST_ABI_VERSION)
#endif

#ifdef __cplusplus
}
#endif

#endif /* HEIST_TASK_INLINE_H */
