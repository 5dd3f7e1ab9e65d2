/*
 * wait.h - waiting for futures (internal). See wait.c.
 */
#ifndef HEIST_WAIT_H
#define HEIST_WAIT_H

#include "fut.h"

/* Blocks the calling thread (not a task on a fiber) until f completes or
 * CLOCK_MONOTONIC reaches deadline (UINT64_MAX: none); then as
 * heist_future_result, or ETIMEDOUT, or ENOMEM (no wait node). */
int heist__await_thread(heist_future *f, uint64_t deadline, void **value);

#endif /* HEIST_WAIT_H */
