/*
 * future.c - the future's state word, completion, references, results and
 * callbacks (heist_future_then).
 *
 * A future's `state` is one atomic word:
 *
 *   state                    meaning          who moves it
 *   0                        pending, empty   -
 *   pointer (even)           pending: the     a waiter (CAS push: release)
 *                            newest node of
 *                            a Treiber stack
 *   HEIST__ST_DONE (1)       result in value  the one completer (exchange:
 *   HEIST__ST_FAILED (3)     error in err     acq_rel), once, from pending
 *   HEIST__ST_CANCELLED (5)  cancelled
 *
 * Adding a node is a CAS push that fails once the state is terminal.
 * Completing is claimed once (a CAS on `claim`: of racing completers one
 * wins, the others get EBUSY), then the winner writes value and err and
 * swaps in the terminal state with one exchange, which hands it the whole
 * list; it fires the nodes oldest first. Nothing is ever removed from the
 * list of a pending future: a waiter that stops waiting (timeout, cancel)
 * leaves its node there, and the node is reference-counted so the
 * completer (or the future's free, which fires the nodes as dropped) can
 * still read it.
 *
 * Each node fires through its own function (fut.h), and each kind of future
 * frees and cancels through its own operations: this file knows nothing of
 * tasks, waits or gathers.
 *
 * Callbacks: heist_future_then pushes a callback node; when the future
 * completes the node becomes a runnable item of its scheduler (never run
 * inline), counted in the scheduler's `live` so heist_sched_free waits for
 * it, and in `cb_waiting` while it waits on a pending future.
 */
#include "cache.h"
#include "fork.h"
#include "fut.h"

#include <errno.h>

struct heist_sched *heist__current_sched(void)
{
    struct heist__worker *w = heist__self_get();
    return w ? w->sched : NULL;
}

/* ---- plain futures --------------------------------------------------------- */

static void plain_free(heist_future *f)
{
    heist__cache_put(HEIST__C_FUTURE, f);
}

static bool plain_cancel(heist_future *f)
{
    return heist__fut_complete(f, HEIST__ST_CANCELLED, NULL, ECANCELED) == 0;
}

static const struct heist__fut_ops plain_ops = {plain_free, plain_cancel,
                                                NULL};

heist_future *heist_future_new(void)
{
    heist_future *f = heist__cache_get(HEIST__C_FUTURE, sizeof(*f));
    if (!f) {
        errno = ENOMEM;
        return NULL;
    }
    heist__fut_init(f, &plain_ops, heist__current_sched(), 1);
    return f;
}

/* ---- references ------------------------------------------------------------ */

heist_future *heist_future_ref(heist_future *f)
{
    if (!f) {
        errno = EINVAL;
        return NULL;
    }
    /* Relaxed: the caller holds a reference, so the count is > 0; no data
     * is published by taking one. */
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

/* Drops a reference of a future whose ops have an orphan function: the
 * last reference but the nodes' one goes only after the orphan call,
 * made while we still hold ours. A CAS loop, not a load and then a
 * decrement: two holders dropping the last two references at once would
 * both have seen 3 and neither called it. Returns whether ours was the
 * last reference. */
static bool unref_orphaning(heist_future *f)
{
    /* Relaxed: a guess that the CAS checks. */
    uint32_t r = atomic_load_explicit(&f->refs, memory_order_relaxed);
    for (;;) {
        /* Acquire: pairs with the completer's exchange, as every read of
         * the state; a complete future has no nodes left to hold it (its
         * release dropped its children). */
        if (r == 2 && !heist__st_terminal(atomic_load_explicit(
                          &f->state, memory_order_acquire))) {
            f->ops->orphan(f);
            /* acq_rel: as the decrement in heist_future_unref. */
            return atomic_fetch_sub_explicit(&f->refs, 1,
                                             memory_order_acq_rel) == 1;
        }
        /* acq_rel on success: as the decrement in heist_future_unref;
         * relaxed on failure (r is reloaded and checked again). */
        if (atomic_compare_exchange_weak_explicit(&f->refs, &r, r - 1,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed))
            return r == 1;
    }
}

void heist_future_unref(heist_future *f)
{
    if (!f)
        return;
    if (f->ops->orphan) {
        if (!unref_orphaning(f))
            return;
    } else if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) !=
               1) {
        /* acq_rel: the last holder's free happens after every other
         * holder's use (release by each, acquire by the last). */
        return;
    }
    /* Relaxed: ordered by the acquire above; nobody else holds f, so the
     * list is stable. */
    uintptr_t st = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (!heist__st_terminal(st)) {
        struct heist__lnode *l = (struct heist__lnode *)st, *next;
        for (; l; l = next) {
            next = l->next;
            l->fire(l, f, false);
        }
    }
    f->ops->free(f);
}

/* ---- completion ------------------------------------------------------------ */

/* Fires the list of the completed future f, oldest registration first. */
static void fire_list(heist_future *f, struct heist__lnode *l)
{
    struct heist__lnode *rev = NULL, *next;
    for (; l; l = next) {
        next = l->next;
        l->next = rev;
        rev = l;
    }
    for (l = rev; l; l = next) {
        next = l->next;
        l->fire(l, f, true);
    }
}

int heist__fut_complete(heist_future *f, uintptr_t term, void *value, int err)
{
    uint32_t z = 0;
    /* Relaxed: the claim only picks the one completer; the value it writes
     * is published by the exchange in heist__fut_settle. */
    if (!atomic_compare_exchange_strong_explicit(&f->claim, &z, 1,
                                                 memory_order_relaxed,
                                                 memory_order_relaxed))
        return EBUSY;
    heist__fut_settle(f, term, value, err);
    return 0;
}

void heist__fut_settle(heist_future *f, uintptr_t term, void *value, int err)
{
    f->value = value;
    f->err = err;
    /* acq_rel: release publishes value/err to every acquire load of a
     * terminal state; acquire pairs with the waiters' release CAS pushes,
     * so their nodes' fields are visible. */
    uintptr_t old =
        atomic_exchange_explicit(&f->state, term, memory_order_acq_rel);
    fire_list(f, (struct heist__lnode *)old);
}

bool heist__fut_push(heist_future *f, struct heist__lnode *l)
{
    /* Acquire: if terminal, the value is visible to the caller. */
    uintptr_t old = atomic_load_explicit(&f->state, memory_order_acquire);
    do {
        if (heist__st_terminal(old))
            return false;
        l->next = (struct heist__lnode *)old;
        /* Release: publishes the node's fields to the completer's acq_rel
         * exchange; acquire on failure: as the load above. */
    } while (!atomic_compare_exchange_weak_explicit(
        &f->state, &old, (uintptr_t)l, memory_order_release,
        memory_order_acquire));
    return true;
}

int heist_future_set_result(heist_future *f, void *value)
{
    if (!f)
        return EINVAL;
    if (f->ops != &plain_ops)
        return EPERM;
    return heist__fut_complete(f, HEIST__ST_DONE, value, 0);
}

int heist_future_set_error(heist_future *f, int err)
{
    if (!f || err <= 0 || err == ECANCELED)
        return EINVAL;
    if (f->ops != &plain_ops)
        return EPERM;
    return heist__fut_complete(f, HEIST__ST_FAILED, NULL, err);
}

bool heist_future_cancel(heist_future *f)
{
    return f && f->ops->cancel(f);
}

/* ---- reading the outcome ------------------------------------------------------ */

bool heist_future_done(const heist_future *f)
{
    /* Acquire: a true answer lets the caller read the result. */
    return f && heist__st_terminal(
                    atomic_load_explicit(&f->state, memory_order_acquire));
}

bool heist_future_cancelled(const heist_future *f)
{
    /* Acquire: as heist_future_done. */
    return f && atomic_load_explicit(&f->state, memory_order_acquire) ==
                    HEIST__ST_CANCELLED;
}

int heist_future_result(const heist_future *f, void **value)
{
    if (!f)
        return EINVAL;
    /* Acquire: pairs with the completer's acq_rel exchange; value and err
     * were written before it. */
    uintptr_t st = atomic_load_explicit(&f->state, memory_order_acquire);
    switch (st) {
    case HEIST__ST_DONE:
        if (value)
            *value = f->value;
        return 0;
    case HEIST__ST_FAILED:
        return f->err;
    case HEIST__ST_CANCELLED:
        return ECANCELED;
    default:
        return EAGAIN;
    }
}

/* ---- callbacks ------------------------------------------------------------- */

struct cbnode {
    struct heist__lnode l;       /* first */
    struct heist__item it;       /* queued once the future completed */
    struct heist_sched *sched;   /* where it runs; immutable */
    heist_future *fut;           /* the completed future (a reference) */
    void (*cb)(heist_future *, void *);
    void *arg;
};

static void cb_waiting_dec(struct heist_sched *s)
{
    /* Release: pairs with heist_sched_free's acquire load; a callback's
     * live increment comes before this decrement. */
    atomic_fetch_sub_explicit(&s->cb_waiting, 1, memory_order_release);
}

static void *callback_call(void *arg)
{
    struct cbnode *n = arg;
    n->cb(n->fut, n->arg);
    return NULL;
}

/* The item's run function: on a worker's loop, on behalf of no task. */
static void callback_run(struct heist__item *it)
{
    struct cbnode *n = caa_container_of(it, struct cbnode, it);
    struct heist_sched *s = n->sched;
    heist__run_user(NULL, callback_call, n, HEIST__TK_CALLBACK,
                    (const void *)n->cb);
    heist_future_unref(n->fut);
    heist__cache_put(HEIST__C_CALLBACK, n);
    heist__live_down(&s->live, heist__live_index(s));
}

/* Queues n's callback and ends its wait (cb_waiting): counted live first,
 * so that heist_sched_free, once it reads no callback waiting, waits for
 * this one to run; the wait ends before the queueing, so that a
 * heist_sched_free after the callback ran does not find it still waiting
 * (EBUSY). s stays alive in between: it has a live count. */
static void schedule_callback(struct cbnode *n, heist_future *f)
{
    struct heist_sched *s = n->sched;
    n->it.run = callback_run;
    n->fut = heist_future_ref(f);
    heist__live_up(&s->live, heist__live_index(s));
    cb_waiting_dec(s);
    heist__make_runnable(s, &n->it);
}

static void callback_fire(struct heist__lnode *l, heist_future *f,
                          bool completed)
{
    struct cbnode *n = (struct cbnode *)l;
    struct heist_sched *s = n->sched;
    if (completed) {
        schedule_callback(n, f);
    } else {
        heist__cache_put(HEIST__C_CALLBACK, n); /* dropped, never run */
        cb_waiting_dec(s);
    }
}

int heist_future_then(heist_future *f, void (*cb)(heist_future *, void *),
                      void *arg)
{
    if (!f || !cb)
        return EINVAL;
    struct cbnode *n = heist__cache_get(HEIST__C_CALLBACK, sizeof(*n));
    if (!n)
        return ENOMEM;
    struct heist_sched *s = heist__current_sched();
    if (s) {
        /* Relaxed: s is alive while its worker runs us; heist_sched_free
         * reads it (acquire) only after the release decrement of live
         * that ends this item. */
        atomic_fetch_add_explicit(&s->cb_waiting, 1, memory_order_relaxed);
    } else if (!(s = f->sched) || !heist__sched_hold_callback(s, f->sched_id)) {
        /* No scheduler to run it: f belongs to none, or it was freed. */
        heist__cache_put(HEIST__C_CALLBACK, n);
        return EPERM;
    }
    n->l.fire = callback_fire;
    n->cb = cb;
    n->arg = arg;
    n->sched = s;
    n->fut = NULL;
    if (!heist__fut_push(f, &n->l))
        schedule_callback(n, f); /* already completed: run it now */
    return 0;
}
