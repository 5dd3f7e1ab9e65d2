/*
 * rcu.c - liburcu QSBR with ThreadSanitizer annotations. See rcu.h.
 *
 * We call liburcu's library functions, never its _LGPL_SOURCE inline
 * versions: the inline ones would put liburcu's volatile accesses into our
 * instrumented code, where TSan would report them as races. Inside the
 * library they are invisible, and the annotations below tell TSan about the
 * ordering they provide.
 */
#include "rcu.h"
#include "park.h"

#include <stdlib.h>
#include <urcu-qsbr.h>

/* The object TSan sees as released at every quiescent state and acquired by
 * every callback that runs after a grace period. */
static char rcu_hb;

_Static_assert(sizeof(struct rcu_head) <= sizeof(((struct heist__rcu_node *)0)->urcu) &&
                   offsetof(struct heist__rcu_node, urcu) == 0,
               "struct rcu_head does not fit heist__rcu_node");

void heist__rcu_register(void)
{
    rcu_register_thread();
}

void heist__rcu_unregister(void)
{
    heist__tsan_release(&rcu_hb);
    rcu_unregister_thread();
}

void heist__rcu_quiescent(void)
{
    /* Every access this thread made to RCU-protected memory happens before
     * any callback that runs after the next grace period. */
    heist__tsan_release(&rcu_hb);
    rcu_quiescent_state();
}

void heist__rcu_offline(void)
{
    heist__tsan_release(&rcu_hb);
    rcu_thread_offline();
}

void heist__rcu_online(void)
{
    rcu_thread_online();
}

static void deferred_cb(struct rcu_head *head)
{
    /* Pairs with the releases above: a grace period has passed, so every
     * reader reported a quiescent state (or went offline) since the object
     * was retired. */
    heist__tsan_acquire(&rcu_hb);
    struct heist__rcu_node *n = (struct heist__rcu_node *)head;
    n->fn(n);
}

void heist__rcu_defer(struct heist__rcu_node *n,
                      void (*fn)(struct heist__rcu_node *))
{
    n->fn = fn;
    call_rcu((struct rcu_head *)n, deferred_cb);
}

void heist__rcu_retire(_Atomic uint32_t *pending, struct heist__rcu_node *n,
                       void (*fn)(struct heist__rcu_node *))
{
    /* Relaxed: read (acquire) only after heist__rcu_retired's release
     * decrement, which follows in this counter's modification order. */
    atomic_fetch_add_explicit(pending, 1, memory_order_relaxed);
    heist__rcu_defer(n, fn);
}

void heist__rcu_retired(_Atomic uint32_t *pending)
{
    /* Release: pairs with the acquire load in heist__rcu_wait_retired,
     * which lets the owner be freed. The futex wake names the address only
     * (the kernel tolerates a stale one). */
    if (atomic_fetch_sub_explicit(pending, 1, memory_order_release) == 1)
        heist__futex_wake(pending, 1);
}

void heist__rcu_wait_retired(_Atomic uint32_t *pending)
{
    uint32_t n;
    /* Acquire: pairs with the release decrement in heist__rcu_retired. */
    while ((n = atomic_load_explicit(pending, memory_order_acquire)) != 0)
        heist__futex_wait(pending, n);
}
