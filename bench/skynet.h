/*
 * bench/skynet.h - the skynet tree: a 10-ary tree whose leaves are numbered
 * 0..leaves-1; a leaf returns its number, an inner node the sum of its 10
 * children. leaves must be a power of 10.
 */
#ifndef HEIST_BENCH_SKYNET_H
#define HEIST_BENCH_SKYNET_H

static inline int skynet_leaves_ok(long leaves)
{
    while (leaves > 1 && leaves % 10 == 0)
        leaves /= 10;
    return leaves == 1;
}

#endif /* HEIST_BENCH_SKYNET_H */
