"""bench/hops_asyncio.py - issue 6's "chain" shape: create futures 0..N,
create N hop tasks (hop i awaits future i, then resolves future i+1 with its
value plus one), resolve future 0 with 0, await future N (its value must be
N), then gather the hops. -c is cold.

asyncio starts a task only when main yields, so every hop finds its future
already done when it starts and none suspends: the cheapest way this shape
can run, which the heist/asyncio ratio therefore does not flatter."""

import asyncio

import bench_asyncio


async def hop(fin, fout):
    fout.set_result(await fin + 1)


async def hops(n):
    loop = asyncio.get_running_loop()
    futs = [loop.create_future() for _ in range(n + 1)]
    tasks = [loop.create_task(hop(futs[i], futs[i + 1])) for i in range(n)]
    futs[0].set_result(0)
    v = await futs[n]
    await asyncio.gather(*tasks)
    return v


if __name__ == "__main__":
    bench_asyncio.main("hops", 100000, hops, lambda n: n)
