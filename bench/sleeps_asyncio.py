"""bench/sleeps_asyncio.py - N concurrent 10 ms sleeps, gathered. Each task
checks on the loop's monotonic clock that it slept at least 10 ms; the
result is the number that did. The time is the wall time of the whole
batch, about 10 ms when sleeping tasks cost nothing."""

import asyncio

import bench_asyncio

SLEEP_S = 0.010


async def sleeper():
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.sleep(SLEEP_S)
    return 1 if loop.time() - t0 >= SLEEP_S else 0


async def sleeps(n):
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(sleeper()) for _ in range(n)]
    return sum(await asyncio.gather(*tasks))


if __name__ == "__main__":
    bench_asyncio.main("sleeps", 10000, sleeps, lambda n: n)
