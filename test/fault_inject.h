/*
 * fault_inject.h - make the Nth call of an allocation, mapping or thread
 * creation fail, counted only while armed. See fault_inject.c for how the
 * calls are intercepted (and why that way).
 */
#ifndef HEIST_FAULT_INJECT_H
#define HEIST_FAULT_INJECT_H

#include <stdbool.h>
#include <stdint.h>

/* What can be made to fail. A call of one kind counts only for that kind. */
enum fi_kind {
    FI_ALLOC = 0,  /* malloc, calloc, realloc (new size > 0), aligned_alloc,
                      posix_memalign, memalign: NULL / ENOMEM */
    FI_MMAP = 1,   /* mmap: MAP_FAILED, errno ENOMEM */
    FI_MPROTECT = 2, /* mprotect: -1, errno ENOMEM */
    FI_THREAD = 3, /* pthread_create: EAGAIN */
    FI_NKINDS = 4
};

enum fi_mode {
    FI_ONCE = 0,   /* only the Nth call fails */
    FI_FROM = 1,   /* the Nth call and every later one fail */
};

/* Starts counting calls of every kind from zero; calls of kind `kind` fail
 * as `mode` says from the nth (1-based; n == 0: count only, nothing fails). */
void fi_arm(enum fi_kind kind, uint64_t n, enum fi_mode mode);

/* Stops counting and failing. */
void fi_disarm(void);

/* Calls of kind counted since the last fi_arm (also after fi_disarm). */
uint64_t fi_count(enum fi_kind kind);

/* Calls made to fail since the last fi_arm. */
uint64_t fi_failed(void);

/* membarrier(2), seen through syscall(3): while refused, every call of it
 * fails with ENOSYS, as on a kernel without it. Counts, refused or not,
 * the calls of each command (0: QUERY, 1 << 3: PRIVATE_EXPEDITED, 1 << 4:
 * REGISTER_PRIVATE_EXPEDITED), from the start of the process. */
void fi_refuse_membarrier(bool refuse);
uint64_t fi_membarrier_calls(int cmd);

/* process_madvise(2), seen through syscall(3): while err is not 0, every
 * call of it fails with errno err (EINVAL: a kernel that refuses the
 * advice; ENOMEM: memory short for now). Counts the calls, refused or
 * not, from the start of the process. */
void fi_refuse_process_madvise(int err);
uint64_t fi_process_madvise_calls(void);

const char *fi_kind_name(enum fi_kind kind);
const char *fi_mode_name(enum fi_mode mode);

#endif /* HEIST_FAULT_INJECT_H */
