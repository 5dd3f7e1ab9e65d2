"""bench/chain_asyncio.py - a chain of N tasks: task i awaits future i and
resolves future i+1 with its value plus one; main resolves future 0 with 0
and awaits future N, whose value must be N.

asyncio starts a new task only when main yields, so here every task finds
its future already done when it starts, and no task ever suspends: the
cheapest way this chain can run, which the heist/asyncio ratio therefore
does not flatter."""

import asyncio

import bench_asyncio


async def link(fin, fout):
    fout.set_result(await fin + 1)


async def chain(n):
    loop = asyncio.get_running_loop()
    futs = [loop.create_future() for _ in range(n + 1)]
    for i in range(n):
        loop.create_task(link(futs[i], futs[i + 1]))
    futs[0].set_result(0)
    return await futs[n]


if __name__ == "__main__":
    bench_asyncio.main("chain", 100000, chain, lambda n: n)
