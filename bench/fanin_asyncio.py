"""bench/fanin_asyncio.py - issue 6's "fanin" shape: create N trivial tasks
(task i returns i+1), then gather them; the result is their sum. The same
work as gather_asyncio.py; -c is cold."""

import asyncio

import bench_asyncio


async def trivial(i):
    return i


async def fanin(n):
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(trivial(i + 1)) for i in range(n)]
    return sum(await asyncio.gather(*tasks))


if __name__ == "__main__":
    bench_asyncio.main("fanin", 100000, fanin, lambda n: n * (n + 1) // 2)
