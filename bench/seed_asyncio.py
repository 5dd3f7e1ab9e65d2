"""bench/seed_asyncio.py - issue 6's "seed" shape: create every (foo, bar)
pair of tasks first (foo, then its bar), then gather all 2N; each foo awaits
the future its bar resolves. The result is the sum of foo's results,
1 + 2 + ... + N. The same work as pairs_asyncio.py; -c is cold.

asyncio starts a task only when main yields (at the gather): foo runs first
and suspends, then bar resolves its future, as in the seed."""

import asyncio

import bench_asyncio


async def bar(fut, value):
    fut.set_result(value)


async def foo(fut):
    return await fut


async def seed(n):
    loop = asyncio.get_running_loop()
    tasks = []
    for i in range(n):
        fut = loop.create_future()
        tasks.append(loop.create_task(foo(fut)))
        tasks.append(loop.create_task(bar(fut, i + 1)))
    results = await asyncio.gather(*tasks)
    return sum(results[0::2])


if __name__ == "__main__":
    bench_asyncio.main("seed", 100000, seed, lambda n: n * (n + 1) // 2)
