/*
 * fork.h - fork-join frames and the calls the layers above need (internal).
 * See fork.c for the frame protocol.
 */
#ifndef HEIST_FORK_H
#define HEIST_FORK_H

#include "worker.h"

/* The private layout of heist_task. */
struct heist__frame {
    heist_fn fn;     /* written by the forking worker before the push */
    void *arg;       /* same */
    void *result;    /* written by whoever runs fn, before state = DONE */
    _Atomic uintptr_t state; /* see fork.c */
    /* The worker that stole the frame: written by the thief (release) once
     * it has read the deque slot; read by the joining owner (acquire). */
    _Atomic(struct heist__worker *) thief;
    /* Set by the thief (relaxed, before its release store of thief) to
     * NULL; then the joiner may CAS in its suspended fiber, and the thief's
     * last act is an exchange to HEIST__FRAME_DONE (fork.c). */
    _Atomic(void *) waiter;
    /* Its deque slot while it is on the deque (the inline join compares it
     * with the view's top, heist/task_inline.h); NULL when the fork ran at
     * once or a drain took it off the deque; HEIST__TASK_SLOT_JOINED once
     * joined. Written and read by the forking task only. */
    void *slot;
};
#define HEIST__FRAME_DONE ((void *)1)
_Static_assert(sizeof(struct heist__frame) <= sizeof(heist_task),
               "heist_task too small for its frame");
_Static_assert(_Alignof(struct heist__frame) <= _Alignof(heist_task),
               "heist_task under-aligned for its frame");

/* The ABI of heist/task_inline.h (HEIST_ABI_VERSION 3): the inline fast
 * paths reach the frame as heist_task words and the worker's deque through
 * the thread-local struct heist__fj (deque.h keeps it in step). Any layout
 * change that breaks one of these must bump HEIST_ABI_VERSION and update
 * the header. */
#define HEIST__WORD(i) ((size_t)(i) * sizeof(uintptr_t))
_Static_assert(offsetof(struct heist__frame, fn) == HEIST__WORD(HEIST__TASK_FN),
               "ABI: frame fn");
_Static_assert(offsetof(struct heist__frame, arg) ==
                   HEIST__WORD(HEIST__TASK_ARG), "ABI: frame arg");
_Static_assert(offsetof(struct heist__frame, result) ==
                   HEIST__WORD(HEIST__TASK_RESULT), "ABI: frame result");
_Static_assert(offsetof(struct heist__frame, state) ==
                   HEIST__WORD(HEIST__TASK_STATE), "ABI: frame state");
_Static_assert(offsetof(struct heist__frame, thief) ==
                   HEIST__WORD(HEIST__TASK_THIEF), "ABI: frame thief");
_Static_assert(offsetof(struct heist__frame, waiter) ==
                   HEIST__WORD(HEIST__TASK_WAITER), "ABI: frame waiter");
_Static_assert(sizeof(heist_fn) == sizeof(uintptr_t) &&
                   sizeof(_Atomic uintptr_t) == sizeof(uintptr_t) &&
                   sizeof(_Atomic(struct heist__worker *)) == sizeof(uintptr_t),
               "ABI: frame words");
_Static_assert(offsetof(struct heist__frame, slot) ==
                   HEIST__WORD(HEIST__TASK_SLOT), "ABI: frame slot");

/* The deque's publish hook (deque.h) for fork frames: initializes the
 * words a thief and a later join read, which the inline fork leaves. */
void heist__frame_publish(void *item);

/* Runs user code on the calling worker on behalf of `task` (NULL: none):
 * the one way every item runs its function (a spawned task, a stolen fork,
 * a callback). fn may suspend: on return the caller is perhaps on another
 * worker and must re-read it. Aborts (check_joined, fork.c) if fn left forks
 * unjoined; returns fn's result. kind (HEIST__TK_*) and sym (the function
 * to name the slice by) are for the trace. */
void *heist__run_user(struct heist__tk *task, heist_fn fn, void *arg,
                      int kind, const void *sym);
/* Runs a frame the calling worker stole from a worker whose running task
 * was `task` (worker.c). */
void heist__frame_run_stolen(struct heist__frame *f, struct heist__tk *task);
/* Runs every fork still on the calling worker's deque (they belong to the
 * running fiber) and waits for the thieves of stolen ones to acknowledge
 * them, so that the deque is empty: a fiber suspends only then. */
void heist__drain(void);

#endif /* HEIST_FORK_H */
