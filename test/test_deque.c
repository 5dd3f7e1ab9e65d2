/*
 * test_deque.c - the split work-stealing deque (lib/deque.h), directly,
 * and the ready queue's batch push (lib/readyq.h, suite readyq).
 *
 * Items are entries whose argument is a distinct integer (never 0); pop
 * and steal give back the entry (steal copies its argument out). The
 * deque only
 * shares private items when the owner pushes or pops after a thief asked
 * (steal returns EMPTY and raises a request), so the sequential tests below
 * alternate thief rounds and owner operations, and the stress tests keep the
 * owner busy while thieves run.
 *
 * The deque does not grow: a push on a full deque fails (ENOMEM). Plain
 * pop does not give back the positions of stolen entries, so the stress
 * tests size the deque for every entry they push.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <heist/heist.h>
#include <sched.h>
#include <stdlib.h>

#include "deque.h"
#include "readyq.h"
#include "test_util.h"
#include "worker.h"

#define ITEM(i) ((void *)(uintptr_t)(i))

/* The value an entry carries (0: no entry). */
static uintptr_t VAL(const struct heist__fjent *e)
{
    return e ? (uintptr_t)e->arg : 0;
}

/* The entry at position i (pop_if names entries by address). */
static const struct heist__fjent *AT(const struct heist__deque *dq, uint32_t i)
{
    return dq->ent + i;
}

/* The owner's side: the calling thread registers and owns a new deque. */
static void owner_begin(struct heist__deque *dq, unsigned log2cap)
{
    cr_assert_eq(heist__deque_init(dq, log2cap), 0);
}

/* Every thief has been joined: destroy frees the entries. */
static void owner_end(struct heist__deque *dq)
{
    heist__deque_destroy(dq);
}

static void push(struct heist__deque *dq, uintptr_t v)
{
    bool published = false;
    cr_assert_eq(heist__deque_push(dq, NULL, ITEM(v), &published), 0,
                 "push %lu failed", (unsigned long)v);
}

/* ---- a thief round on another thread --------------------------------- */

struct round {
    struct heist__deque *dq;
    size_t max;     /* steal at most this many */
    size_t n;       /* stolen */
    uintptr_t *out; /* stolen items, in order */
    enum heist__steal_status last;
};

static void *round_main(void *arg)
{
    struct round *r = arg;
    r->n = 0;
    r->last = HEIST__STEAL_OK;
    while (r->n < r->max) {
        enum heist__steal_status st;
        heist_fn fn;
        void *got;
        if (!heist__deque_steal(r->dq, true, &fn, &got, &st)) {
            r->last = st;
            break;
        }
        r->out[r->n++] = (uintptr_t)got;
    }
    return NULL;
}

/* Steals from dq on a fresh thread until EMPTY (or max items); the owner
 * (caller) does nothing meanwhile, so no steal can be LOST. */
static size_t steal_round(struct heist__deque *dq, uintptr_t *out, size_t max)
{
    struct round r = {.dq = dq, .max = max, .out = out};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, round_main, &r), 0);
    pthread_join(t, NULL);
    if (r.n < max)
        cr_assert_eq(r.last, HEIST__STEAL_EMPTY,
                     "a lone thief's steal failed with status %d", r.last);
    return r.n;
}

/* ---- unit tests -------------------------------------------------------- */

Test(deque, init_rejects_bad_capacity)
{
    struct heist__deque dq;
    cr_expect_eq(heist__deque_init(&dq, 0), EINVAL);
    cr_expect_eq(heist__deque_init(&dq, 31), EINVAL);
    cr_expect_eq(heist__deque_init(&dq, 1000), EINVAL);
}

Test(deque, owner_lifo)
{
    struct heist__deque dq;
    owner_begin(&dq, 7);
    for (uintptr_t i = 1; i <= 100; i++) {
        push(&dq, i);
        cr_assert_eq(heist__deque_size_owner(&dq), i);
    }
    for (uintptr_t i = 100; i >= 1; i--)
        cr_assert_eq(VAL(heist__deque_pop(&dq)), i);
    cr_assert_null(heist__deque_pop(&dq));
    cr_assert_eq(heist__deque_size_owner(&dq), 0);
    /* Interleaved: LIFO at every point. */
    push(&dq, 1);
    push(&dq, 2);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 2);
    push(&dq, 3);
    push(&dq, 4);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 4);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 3);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 1);
    cr_assert_null(heist__deque_pop(&dq));
    owner_end(&dq);
}

/* Thieves take the oldest item first; the owner keeps the newest. Rounds of
 * stealing alternate with owner pushes (which answer the thief's request to
 * share), until everything pushed is either stolen or popped. */
Test(deque, thief_fifo)
{
    enum { N = 300 };
    static uintptr_t stolen[N + 64], buf[N + 64];
    struct heist__deque dq;
    owner_begin(&dq, 9);
    uintptr_t next = 1;
    for (; next <= 64; next++)
        push(&dq, next);
    size_t ns = 0;
    int empty_rounds = 0;
    while (next <= N) {
        size_t k = steal_round(&dq, buf, N);
        for (size_t i = 0; i < k; i++)
            stolen[ns++] = buf[i];
        empty_rounds = k ? 0 : empty_rounds + 1;
        cr_assert_lt(empty_rounds, 3,
                     "thieves got nothing twice in a row although the owner "
                     "holds %u items and pushed after their request",
                     heist__deque_size_owner(&dq));
        push(&dq, next++); /* answers the thief's request */
    }
    cr_assert_gt(ns, 1, "thieves stole only %zu items", ns);
    /* Stolen: exactly 1, 2, 3, ... in order (oldest first). */
    for (size_t i = 0; i < ns; i++)
        cr_assert_eq(stolen[i], i + 1, "steal %zu returned %lu", i,
                     (unsigned long)stolen[i]);
    /* Popped: everything else, newest first. */
    uintptr_t expect = N;
    struct heist__fjent *p;
    while ((p = heist__deque_pop(&dq)) != NULL)
        cr_assert_eq(VAL(p), expect--, "pop returned %lu",
                     (unsigned long)VAL(p));
    cr_assert_eq(expect, ns, "popped down to %lu, stolen %zu",
                 (unsigned long)expect, ns);
    owner_end(&dq);
}

/* Thousands of entries: thieves take the oldest ones in order, with the
 * owner's pushes in between, and the owner the rest, newest first. */
Test(deque, many_keep_order)
{
    enum { N = 5000 };
    static uintptr_t buf[N];
    struct heist__deque dq;
    owner_begin(&dq, 13);
    push(&dq, 1);
    push(&dq, 2);
    push(&dq, 3);
    cr_assert_eq(steal_round(&dq, buf, 1), 1);
    cr_assert_eq(buf[0], 1);
    for (uintptr_t i = 4; i <= N; i++)
        push(&dq, i);
    cr_assert_eq(heist__deque_size_owner(&dq), N - 1);
    /* Thieves take 100 of the oldest items; between their rounds the owner
     * pushes a newer item (which answers a thief's request to share). */
    enum { K = 100 };
    size_t got = 0;
    uintptr_t filler = N + 1;
    for (int round = 0; got < K; round++) {
        cr_assert_lt(round, 20, "thieves got only %zu items in 20 rounds", got);
        got += steal_round(&dq, buf + got, K - got);
        if (got < K)
            push(&dq, filler++);
    }
    /* Oldest first, in order. */
    for (size_t i = 0; i < K; i++)
        cr_assert_eq(buf[i], i + 2, "steal %zu returned %lu", i,
                     (unsigned long)buf[i]);
    /* The owner gets the rest, newest first. */
    for (uintptr_t i = filler - 1; i >= 2 + K; i--)
        cr_assert_eq(VAL(heist__deque_pop(&dq)), i, "at %lu", (unsigned long)i);
    cr_assert_null(heist__deque_pop(&dq));
    owner_end(&dq);
}

/* pop on an empty deque must return NULL, however often, and leave the deque
 * usable (the signed-index pitfall of Chase-Lev: bottom - 1 on empty). */
Test(deque, pop_empty_returns_null)
{
    struct heist__deque dq;
    owner_begin(&dq, 2);
    for (int i = 0; i < 1000; i++)
        cr_assert_null(heist__deque_pop(&dq));
    cr_assert_eq(heist__deque_size_owner(&dq), 0);
    cr_assert(!heist__deque_has_public(&dq));
    push(&dq, 7);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 7);
    for (int i = 0; i < 1000; i++)
        cr_assert_null(heist__deque_pop(&dq));
    push(&dq, 8);
    push(&dq, 9);
    push(&dq, 10);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 10);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 9);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 8);
    cr_assert_null(heist__deque_pop(&dq));
    owner_end(&dq);
}

/* After a thief took everything, pop returns NULL (repeatedly), and the
 * deque works normally afterwards. */
Test(deque, pop_after_all_stolen)
{
    uintptr_t buf[4];
    struct heist__deque dq;
    owner_begin(&dq, 2);
    push(&dq, 1); /* on an empty deque, published at once */
    cr_assert(heist__deque_has_public(&dq));
    cr_assert_eq(steal_round(&dq, buf, 4), 1);
    cr_assert_eq(buf[0], 1);
    for (int i = 0; i < 100; i++)
        cr_assert_null(heist__deque_pop(&dq));
    cr_assert_eq(heist__deque_size_owner(&dq), 0);
    push(&dq, 2);
    push(&dq, 3);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 3);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 2);
    cr_assert_null(heist__deque_pop(&dq));
    owner_end(&dq);
}

Test(deque, pop_if)
{
    uintptr_t buf[4];
    bool stolen = true;
    struct heist__deque dq;
    owner_begin(&dq, 8);

    /* Empty: nothing, not stolen. */
    cr_assert(!heist__deque_pop_if(&dq, AT(&dq, 0), &stolen));
    cr_assert(!stolen);

    push(&dq, 1); /* position 0 */
    push(&dq, 2); /* 1 */
    push(&dq, 3); /* 2 */
    /* Not the newest: nothing removed. */
    stolen = true;
    cr_assert(!heist__deque_pop_if(&dq, AT(&dq, 1), &stolen));
    cr_assert(!stolen);
    cr_assert(!heist__deque_pop_if(&dq, AT(&dq, 99), &stolen));
    cr_assert(!stolen);
    cr_assert_eq(heist__deque_size_owner(&dq), 3);
    /* The newest: removed, in LIFO order. */
    cr_assert(heist__deque_pop_if(&dq, AT(&dq, 2), &stolen));
    cr_assert(!stolen);
    cr_assert(heist__deque_pop_if(&dq, AT(&dq, 1), &stolen));
    cr_assert(heist__deque_pop_if(&dq, AT(&dq, 0), &stolen));
    cr_assert(!stolen);
    cr_assert_null(heist__deque_pop(&dq));

    /* Stolen: pop_if reports it and releases the position. Entry 4 is
     * private when pushed (the deque was not "all stolen"), so the owner
     * pushes fillers until a thief's request made it public and the thief
     * took it (thieves take the oldest entry first). */
    push(&dq, 4); /* position 0 */
    uint32_t nfill = 0;
    for (int i = 0; steal_round(&dq, buf, 1) == 0; i++) {
        cr_assert_lt(i, 3, "the owner's pushes never shared entry 4");
        push(&dq, 100 + nfill++);
    }
    cr_assert_eq(buf[0], 4);
    while (nfill > 0) {
        cr_assert_eq(VAL(AT(&dq, nfill)), 100 + nfill - 1);
        cr_assert(heist__deque_pop_if(&dq, AT(&dq, nfill), &stolen));
        cr_assert(!stolen);
        nfill--;
    }
    stolen = false;
    cr_assert(!heist__deque_pop_if(&dq, AT(&dq, 0), &stolen));
    cr_assert(stolen, "pop_if did not report the stolen entry");
    cr_assert_null(heist__deque_pop(&dq));
    cr_assert_eq(heist__deque_size_owner(&dq), 0);

    /* And the deque still works, from position 0 again. */
    push(&dq, 5);
    push(&dq, 6);
    cr_assert(heist__deque_pop_if(&dq, AT(&dq, 1), &stolen));
    cr_assert(!stolen);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 5);
    cr_assert_null(heist__deque_pop(&dq));
    owner_end(&dq);
}

/* A full deque refuses a push (nothing pushed) and works on after pops;
 * entries keep their addresses. */
Test(deque, full_refuses_push)
{
    struct heist__deque dq;
    owner_begin(&dq, 2);
    for (uintptr_t i = 1; i <= 4; i++)
        push(&dq, i);
    const struct heist__fjent *first = AT(&dq, 0);
    bool published = false;
    cr_assert_eq(heist__deque_push(&dq, NULL, ITEM(5), &published), ENOMEM);
    cr_assert_eq(heist__deque_size_owner(&dq), 4);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 4);
    push(&dq, 6);
    cr_assert_eq(heist__deque_push(&dq, NULL, ITEM(7), &published), ENOMEM);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 6);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 3);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 2);
    cr_assert_eq(heist__deque_pop(&dq), first);
    cr_assert_eq(VAL(first), 1);
    cr_assert_null(heist__deque_pop(&dq));
    owner_end(&dq);
}

/* rebase: an empty deque moved to another position pushes there, and pop
 * stops at the new base. */
Test(deque, rebase)
{
    struct heist__deque dq;
    owner_begin(&dq, 6);
    push(&dq, 1);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 1);
    heist__deque_rebase(&dq, 10);
    push(&dq, 2);
    push(&dq, 3);
    cr_assert_eq(VAL(AT(&dq, 10)), 2);
    cr_assert_eq(VAL(AT(&dq, 11)), 3);
    cr_assert_eq(heist__deque_size_owner(&dq), 2);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 3);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 2);
    cr_assert_null(heist__deque_pop(&dq));
    heist__deque_rebase(&dq, 0);
    push(&dq, 4);
    cr_assert_eq(VAL(AT(&dq, 0)), 4);
    cr_assert_eq(VAL(heist__deque_pop(&dq)), 4);
    cr_assert_null(heist__deque_pop(&dq));
    owner_end(&dq);
}

/* ---- a worker's deque across suspensions (lib/fork.c) ------------------ */

static void *identity(void *arg)
{
    return arg;
}

/* Where the calling worker's empty deque stands (its base), or ~0 if it
 * is not empty. */
static uintptr_t deque_base(void)
{
    struct heist__worker *w = heist__self_get();
    if (heist__dq_head(&w->dq) != w->dq.o_base)
        return ~(uintptr_t)0;
    return w->dq.o_base;
}

/* Forks that a suspension took off the deque put it above their entries
 * while they are not joined (heist__fork_rebase); their joins bring it
 * back down. A task that forks, sleeps and joins in a loop must keep using
 * the first positions: before, the deque crept up one position a round
 * (600,000 rounds committed its whole 8 MiB, and every 2^18th fork ran
 * at once). Returns NULL, or the failing round * 8 + check. */
static void *fork_sleep_join_rounds(void *arg)
{
    (void)arg;
    for (uintptr_t round = 0; round < 300; round++) {
        heist_task a, b;
        void *ra = NULL, *rb = NULL;
        heist_fork(&a, identity, (void *)(round + 1));
        if (round % 2)
            heist_fork(&b, identity, (void *)(round + 2));
        if (heist_sleep(1000) != 0)
            return (void *)(round * 8 + 1);
        if (round % 2 &&
            (heist_join(&b, &rb) != 0 || rb != (void *)(round + 2)))
            return (void *)(round * 8 + 2);
        if (heist_join(&a, &ra) != 0 || ra != (void *)(round + 1))
            return (void *)(round * 8 + 3);
        if (deque_base() != 0)
            return (void *)(round * 8 + 4);
    }
    return NULL;
}

Test(deque, stays_low_across_fork_sleep_join)
{
    heist_config cfg = {.workers = 1};
    heist_sched *s = NULL;
    cr_assert_eq(heist_sched_new(&cfg, &s), 0);
    void *r = (void *)1;
    cr_assert_eq(heist_run(s, fork_sleep_join_rounds, NULL, &r), 0);
    cr_assert_null(r, "round %lu, check %lu", (unsigned long)((uintptr_t)r / 8),
                   (unsigned long)((uintptr_t)r % 8));
    cr_assert_eq(heist_sched_free(s), 0);
}

/* ---- stress ------------------------------------------------------------ */

struct stress {
    struct heist__deque dq;
    size_t n;                /* items 1..n */
    _Atomic unsigned *count; /* count[i]: times item i was taken */
    _Atomic size_t taken;    /* by thieves and the owner */
    _Atomic size_t stolen;   /* by thieves */
    atomic_bool stop;
    atomic_int ready;               /* thieves in their loop */
    _Atomic unsigned long attempts; /* steal calls, by all thieves */
    _Atomic unsigned bad;           /* thief-side failures (reported by main) */
    _Atomic uintptr_t bad_item;
    struct ht_watchdog wd;
};

static void take(struct stress *s, uintptr_t v)
{
    if (v == 0 || v > s->n) {
        atomic_fetch_add(&s->bad, 1);
        atomic_store(&s->bad_item, v);
        return;
    }
    atomic_fetch_add_explicit(&s->count[v], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->taken, 1, memory_order_relaxed);
}

static void *thief_main(void *arg)
{
    struct stress *s = arg;
    uintptr_t last = 0;
    unsigned empty = 0;
    atomic_fetch_add(&s->ready, 1);
    for (unsigned i = 1; !atomic_load_explicit(&s->stop, memory_order_relaxed);
         i++) {
        enum heist__steal_status st;
        heist_fn fn;
        void *got;
        struct heist__fjent *p = heist__deque_steal(&s->dq, true, &fn, &got, &st);
        atomic_fetch_add_explicit(&s->attempts, 1, memory_order_relaxed);
        if (p) {
            uintptr_t v = (uintptr_t)got;
            /* One thief's steals are increasing: the owner pushes
             * increasing values and the live part is a stack. */
            if (v <= last) {
                atomic_fetch_add(&s->bad, 1);
                atomic_store(&s->bad_item, v);
            }
            last = v;
            take(s, v);
            atomic_fetch_add_explicit(&s->stolen, 1, memory_order_relaxed);
            empty = 0;
        } else if (st == HEIST__STEAL_EMPTY && ++empty % 64 == 0) {
            sched_yield(); /* let the owner run on a small machine */
        }
    }
    return NULL;
}

/* The owner waits until the thieves made k more steal calls. */
static void wait_attempts(struct stress *s, unsigned k)
{
    unsigned long a = atomic_load(&s->attempts);
    while (atomic_load(&s->attempts) < a + k)
        sched_yield();
}

static void stress_run(unsigned nthieves, size_t n)
{
    struct stress *s = calloc(1, sizeof(*s));
    cr_assert_not_null(s);
    s->n = n;
    s->count = calloc(n + 1, sizeof(s->count[0]));
    cr_assert_not_null(s->count);
    /* Room for every push: stolen positions are not given back. */
    unsigned log2cap = 1;
    while (((size_t)1 << log2cap) < n + 1)
        log2cap++;
    cr_assert_eq(heist__deque_init(&s->dq, log2cap), 0);
    ht_watchdog_start(&s->wd, "deque stress", 60);

    pthread_t th[16];
    cr_assert_leq(nthieves, 16);
    for (unsigned i = 0; i < nthieves; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, thief_main, s), 0);
    /* Start once every thief is stealing. */
    cr_assert(ht_wait_at_least(&s->ready, (int)nthieves, 60));

    /* The owner: bursts of pushes, then some pops, now and then a full
     * drain. */
    uint64_t rng = 12345;
    uintptr_t next = 1;
    size_t ops = 0;
    bool let_in = false;
    while (next <= n) {
        unsigned burst = 1 + (unsigned)(ht_rand(&rng) % 32);
        for (unsigned j = 0; j < burst && next <= n; j++) {
            bool published = false;
            cr_assert_eq(
                heist__deque_push(&s->dq, NULL, ITEM(next), &published), 0);
            next++;
        }
        if (let_in) {
            /* 0 to 2 attempts per thief: the pops below race with steals
             * at different points. */
            wait_attempts(s, (unsigned)(ht_rand(&rng) % (2 * nthieves + 1)));
            let_in = false;
        }
        uint64_t r = ht_rand(&rng);
        unsigned pops = (r % 64 == 0) ? ~0u : (unsigned)((r >> 8) % burst);
        for (unsigned j = 0; j < pops; j++) {
            struct heist__fjent *p = heist__deque_pop(&s->dq);
            if (!p)
                break;
            take(s, VAL(p));
        }
        if (++ops % 16 == 0) {
            ht_watchdog_tick(&s->wd);
        }
        /* Now and then let the thieves in, however the OS schedules
         * threads (on a busy machine the owner could finish before they
         * ever run): wait for their attempts (they find nothing public and
         * ask to share), push (which shares), wait again (they steal). */
        if (ops % 32 == 0) {
            wait_attempts(s, nthieves);
            let_in = true;
        }
    }
    /* Drain: pop returns NULL only once every remaining item was stolen. */
    for (struct heist__fjent *p; (p = heist__deque_pop(&s->dq)) != NULL;)
        take(s, VAL(p));
    cr_assert_null(heist__deque_pop(&s->dq));

    /* Every item is now taken or claimed by a thief that is about to
     * count it. If items were lost, give up after 30 s: the counts below
     * then name them. */
    uint64_t deadline = ht_now_ns() + 30ull * 1000000000u;
    while (atomic_load(&s->taken) < n && atomic_load(&s->bad) == 0 &&
           ht_now_ns() < deadline)
        sched_yield();
    atomic_store(&s->stop, true);
    for (unsigned i = 0; i < nthieves; i++)
        pthread_join(th[i], NULL);
    ht_watchdog_stop(&s->wd);
    owner_end(&s->dq);

    /* Gather the verdict, free, then assert (no leak report on failure). */
    unsigned bad = atomic_load(&s->bad);
    uintptr_t bad_item = atomic_load(&s->bad_item);
    size_t total = 0, wrong = 0, first_wrong = 0;
    unsigned wrong_count = 0;
    for (size_t i = 1; i <= n; i++) {
        unsigned c = atomic_load(&s->count[i]);
        total += c;
        if (c != 1 && wrong++ == 0) {
            first_wrong = i;
            wrong_count = c;
        }
    }
    size_t taken = atomic_load(&s->taken), stolen = atomic_load(&s->stolen);
    free(s->count);
    free(s);

    cr_assert_eq(bad, 0,
                 "%u bad steals (last: item %lu: out of range, or not "
                 "increasing for one thief)",
                 bad, (unsigned long)bad_item);
    cr_assert_eq(wrong, 0,
                 "%zu items not taken exactly once; item %zu "
                 "taken %u times",
                 wrong, first_wrong, wrong_count);
    cr_assert_eq(total, n);
    cr_assert_eq(taken, n);
    /* Not a vacuous run: thieves did get items. */
    cr_assert_gt(stolen, 0, "no item was ever stolen");
    cr_log_info("%u thieves stole %zu of %zu items", nthieves, stolen, n);
}

Test(deque, stress_3_thieves)
{
    stress_run(3, HT_SCALE(3000000, 1000000));
}

/* More thieves than cores: thieves get preempted in the middle of a steal. */
Test(deque, stress_8_thieves)
{
    stress_run(8, HT_SCALE(2000000, 600000));
}

/* ---- the ready queue's batch push (readyq.c) ---------------------------- */

/* Items for the ready queue: only their addresses matter here. */
static struct heist__item rq_items[2000];

static size_t rq_index(const struct heist__item *it)
{
    return (size_t)(it - rq_items);
}

/* Batches pushed across the ring's end and its growth come out whole and
 * in order, and a stolen batch moved into another queue keeps its order. */
Test(readyq, push_many_keeps_order_across_wrap_and_growth)
{
    struct heist__rq a, b;
    cr_assert_eq(heist__rq_init(&a, 3), 0); /* 8 slots */
    cr_assert_eq(heist__rq_init(&b, 2), 0); /* 4 slots */
    struct heist__item *v[2000];
    for (size_t i = 0; i < 2000; i++)
        v[i] = &rq_items[i];
    size_t next_in = 0, next_out = 0;
    /* Fill part, take some, so that the next batches wrap. */
    cr_assert_eq(heist__rq_push_many(&a, v, 6), 0);
    next_in = 6;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(rq_index(heist__rq_pop(&a)), next_out++);
    /* Batches of growing sizes: wrap, then grow (8 -> ... -> 1024). */
    for (size_t n = 1; next_in + n <= 2000; n = n * 2 + 1) {
        cr_assert_eq(heist__rq_push_many(&a, v + next_in, n), 0);
        next_in += n;
    }
    cr_assert_eq(heist__rq_push_many(&a, v, 0), 0, "an empty batch");
    /* Half the queue (at most 64) stolen, into b in one batch, then the
     * rest of a popped: everything once, each side in order. */
    struct heist__item *batch[64];
    size_t k = heist__rq_steal_batch(&a, batch, 64);
    cr_assert_eq(k, 64);
    cr_assert_eq(heist__rq_push_many(&b, batch, k), 0);
    for (size_t i = 0; i < k; i++)
        cr_assert_eq(rq_index(heist__rq_pop(&b)), next_out + i);
    cr_assert_null(heist__rq_pop(&b));
    next_out += k;
    struct heist__item *it;
    while ((it = heist__rq_pop(&a)))
        cr_assert_eq(rq_index(it), next_out++);
    cr_assert_eq(next_out, next_in);
    heist__rq_destroy(&a);
    heist__rq_destroy(&b);
}
