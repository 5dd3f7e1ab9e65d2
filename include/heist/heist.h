/*
 * heist/heist.h - the umbrella header: include this one.
 *
 * heist is a work-stealing task scheduler for C11: fork-join parallelism
 * (heist/task.h) and asyncio-style futures and tasks (heist/future.h) on a
 * pool of worker threads (heist/sched.h).
 */
#ifndef HEIST_HEIST_H
#define HEIST_HEIST_H

#include "sched.h"
#include "task.h"
#include "future.h"

#define HEIST_VERSION_MAJOR 0
#define HEIST_VERSION_MINOR 1
#define HEIST_VERSION_PATCH 0

#endif /* HEIST_HEIST_H */
