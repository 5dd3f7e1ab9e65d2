"""bench/gather_asyncio.py - spawn N trivial tasks and gather them; task i
returns i+1, and the result is their sum."""

import asyncio

import bench_asyncio


async def trivial(i):
    return i


async def gather(n):
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(trivial(i + 1)) for i in range(n)]
    return sum(await asyncio.gather(*tasks))


if __name__ == "__main__":
    bench_asyncio.main("gather", 1000000, gather, lambda n: n * (n + 1) // 2)
