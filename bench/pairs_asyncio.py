"""bench/pairs_asyncio.py - the seed's foo/bar pair, N times over: foo
awaits a future that bar resolves, and main gathers all 2N tasks. bar does
not sleep (the seed's 3 s sleep is the sleeps workload). The result is the
sum of foo's results, the values bar set: 1 + 2 + ... + N."""

import asyncio

import bench_asyncio


async def bar(fut, value):
    fut.set_result(value)


async def foo(fut):
    return await fut


async def pairs(n):
    loop = asyncio.get_running_loop()
    tasks = []
    for i in range(n):
        fut = loop.create_future()
        tasks.append(loop.create_task(foo(fut)))
        tasks.append(loop.create_task(bar(fut, i + 1)))
    results = await asyncio.gather(*tasks)
    return sum(results[0::2])


if __name__ == "__main__":
    bench_asyncio.main("pairs", 100000, pairs, lambda n: n * (n + 1) // 2)
