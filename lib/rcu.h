/*
 * rcu.h - liburcu QSBR, wrapped with ThreadSanitizer annotations (internal).
 *
 * liburcu 0.13 synchronizes with inline assembly and volatile accesses that
 * ThreadSanitizer cannot see. Each wrapper below tells TSan about the
 * happens-before edge the real operation creates: every quiescent state (and
 * going offline, and unregistering) releases a shared sync object, and a
 * callback that runs after a grace period acquires it, so memory freed by
 * such a callback is ordered after every reader's last access to it.
 * Outside TSan builds the annotations compile to nothing.
 *
 * QSBR rules: a registered thread is a reader whenever it is online; it must
 * report quiescent states regularly and go offline before it blocks, or grace
 * periods never end. Never hold an RCU-protected pointer across a quiescent
 * state, going offline, or a fiber switch.
 */
#ifndef HEIST_RCU_H
#define HEIST_RCU_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Registers the calling thread as a QSBR reader (online). */
void heist__rcu_register(void);
/* Unregisters it (it must be online). */
void heist__rcu_unregister(void);
/* Reports a quiescent state: the thread holds no RCU-protected pointer. */
void heist__rcu_quiescent(void);
/* Goes offline (before blocking) / comes back online. */
void heist__rcu_offline(void);
void heist__rcu_online(void);
/* A node to defer work past a grace period; embed it in the object. */
struct heist__rcu_node {
    void *urcu[2]; /* liburcu's struct rcu_head (checked in rcu.c) */
    void (*fn)(struct heist__rcu_node *);
};
/* Calls n->fn(n) after a grace period, on liburcu's call_rcu thread. The
 * caller must be a registered thread. */
void heist__rcu_defer(struct heist__rcu_node *n,
                      void (*fn)(struct heist__rcu_node *));

/*
 * Buffers retired by an owner that must not be freed before they are (a
 * deque's old rings): heist__rcu_retire counts one in *pending and defers
 * fn; fn frees the buffer and then calls heist__rcu_retired(pending) as its
 * last access to the owner; the owner's destroy calls
 * heist__rcu_wait_retired(pending), which waits for zero (the caller must
 * not be an online reader, or it waits for itself).
 */
void heist__rcu_retire(_Atomic uint32_t *pending, struct heist__rcu_node *n,
                       void (*fn)(struct heist__rcu_node *));
void heist__rcu_retired(_Atomic uint32_t *pending);
void heist__rcu_wait_retired(_Atomic uint32_t *pending);

#endif /* HEIST_RCU_H */
