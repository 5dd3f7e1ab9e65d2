"""bench/forkwait_asyncio.py - forkwait's asyncio peer: main creates N
tasks that each sleep 10 us, sleeps 10 us itself, then gathers them. Task
i returns i + 1; the result is their sum."""

import asyncio

import bench_asyncio

NAP_S = 10e-6


async def child(i):
    await asyncio.sleep(NAP_S)
    return i + 1


async def forkwait(n):
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(child(i)) for i in range(n)]
    await asyncio.sleep(NAP_S)
    return sum(await asyncio.gather(*tasks))


if __name__ == "__main__":
    bench_asyncio.main("forkwait", 3000, forkwait, lambda n: n * (n + 1) // 2)
