/*
 * bench/nqueens.h - the placement check shared by the nqueens programs (the
 * BOTS formulation: a[i] is the column of the queen in row i; ok() checks
 * every pair of the first n rows).
 */
#ifndef HEIST_BENCH_NQUEENS_H
#define HEIST_BENCH_NQUEENS_H

#define NQ_MAXN 16

static inline int nq_ok(int n, const char *a)
{
    for (int i = 0; i < n; i++) {
        char p = a[i];
        for (int j = i + 1; j < n; j++) {
            char q = a[j];
            if (q == p || q == p - (j - i) || q == p + (j - i))
                return 0;
        }
    }
    return 1;
}

#endif /* HEIST_BENCH_NQUEENS_H */
