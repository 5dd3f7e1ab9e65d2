/*
 * fork.h - fork entries, stolen forks, the drain before a suspension and
 * the calls the layers above need (internal). See fork.c for the protocol.
 */
#ifndef HEIST_FORK_H
#define HEIST_FORK_H

#include "worker.h"

/* What a thief keeps of a stolen fork: the result and the joiner waiting
 * for it (a record of kind HEIST__C_STOLEN, from the thief's cache, taken
 * before the steal; the joiner gives it back). The thief acknowledges the
 * entry it claimed by storing the record's address into its sync word.
 * A drain nested too deep hands a fork to its own worker's ready queue in
 * such a record too, as an item (fork.c, "Bounded drains"): the rest of
 * the record is for that. */
struct heist__stolen {
    void *result;            /* written by the thief before DONE */
    _Atomic(void *) waiter;  /* NULL, a suspended joiner, or DONE */
    /* 0 (a thief's record), or the state of a queued fork: who runs it,
     * the item or the joiner (HEIST__SELF_*, fork.c). */
    _Atomic uint32_t self;
    uint32_t from;           /* a queued fork's worker (the trace) */
    struct heist__item it;   /* a queued fork's item */
    heist_fn fn;             /* a queued fork's function, argument and */
    void *arg;               /* task, written before the item is queued */
    struct heist__tk *task;
};
#define HEIST__STOLEN_DONE ((void *)1)

/* A fork a suspension took off the deque (the fiber's save list, fiber.h). */
enum {
    HEIST__SAVED_RUNNING = 1, /* the drain runs it now */
    HEIST__SAVED_DRAINED,     /* run by the drain: val is the result */
    HEIST__SAVED_STOLEN       /* a thief runs it: val is its record */
};
struct heist__saved {
    const struct heist__fjent *e; /* its entry's address when forked */
    heist_fn fn;
    void *arg;
    uintptr_t kind;               /* HEIST__SAVED_* */
    void *val;                    /* the result, or STOLEN's record
                                     (struct heist__stolen) */
};

/* The ABI of heist/task_inline.h (HEIST_ABI_VERSION 4). Any layout change
 * that breaks one of these must bump HEIST_ABI_VERSION and update the
 * header. */
_Static_assert(sizeof(struct heist__fjent) == 32 &&
                   offsetof(struct heist__fjent, fn) == 0 &&
                   offsetof(struct heist__fjent, arg) == 8 &&
                   offsetof(struct heist__fjent, sync) == 16,
               "ABI: fork entry");
_Static_assert(sizeof(heist_task) >= 3 * sizeof(uintptr_t),
               "ABI: task words");

/* The deque's publish hook (deque.h) for fork entries: clears the sync
 * word, which the inline fork leaves. */
void heist__entry_publish(struct heist__fjent *e);

/* Runs user code on the calling worker on behalf of `task` (NULL: none):
 * the one way every item runs its function (a spawned task, a stolen fork,
 * a callback). fn may suspend: on return the caller is perhaps on another
 * worker and must re-read it. Aborts (check_joined, fork.c) if fn left forks
 * unjoined; returns fn's result. kind (HEIST__TK_*) and sym (the function
 * to name the slice by) are for the trace. */
void *heist__run_user(struct heist__tk *task, heist_fn fn, void *arg,
                      int kind, const void *sym);
/* A steal record for the calling worker's next steal of a fork, or NULL
 * (out of memory: it then steals no fork); heist__stolen_drop gives back
 * one that no steal used. */
struct heist__stolen *heist__stolen_new(void);
void heist__stolen_drop(struct heist__stolen *r);
/* Acknowledges the entry e that the calling worker stole (after its copy
 * of fn and arg) with the record r it took before: from then on it does
 * not touch e. Then heist__entry_run_stolen runs fn(arg) for the task
 * that was running on e's worker (`task`) and delivers the result through
 * r (worker.c). */
void heist__entry_ack(struct heist__fjent *e, struct heist__stolen *r);
void heist__entry_run_stolen(heist_fn fn, void *arg, struct heist__tk *task,
                             struct heist__stolen *r);
/* Takes every fork of the running fiber off the calling worker's deque,
 * newest first, running the ones no thief took, into the fiber's save
 * list, so that the deque is empty: a fiber suspends only then. Returns 0,
 * or ENOMEM (the save list could not grow; nothing was taken: the caller
 * must not suspend). */
int heist__drain(void);
/* A fiber f goes on running on worker w (it resumed there): places w's
 * empty deque above every entry of w's that f's save list names, so that
 * no fork f makes now takes one of their addresses (fork.c). */
void heist__fork_rebase(struct heist__worker *w, struct heist__fiber *f);

#endif /* HEIST_FORK_H */
