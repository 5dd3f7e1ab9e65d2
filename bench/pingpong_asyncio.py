"""bench/pingpong_asyncio.py - await round trips between two tasks. Each
round uses two fresh futures, as futures complete only once: ping resolves
the round's ping future with (pong future, next ping future) and awaits
pong; pong awaits ping and resolves the pong future with the round's
number plus one, which ping checks. The result is the sum of the round
numbers pong received."""

import asyncio

import bench_asyncio


async def pinger(ping, rounds):
    loop = asyncio.get_running_loop()
    for r in range(rounds):
        pong = loop.create_future()
        nxt = loop.create_future()
        ping.set_result((r, pong, nxt))
        if await pong != r + 1:
            raise RuntimeError("ping: a wrong answer")
        ping = nxt


async def ponger(ping, rounds):
    total = 0
    for _ in range(rounds):
        r, pong, ping = await ping
        total += r
        pong.set_result(r + 1)
    return total


async def pingpong(rounds):
    loop = asyncio.get_running_loop()
    first = loop.create_future()
    _, answered = await asyncio.gather(pinger(first, rounds),
                                       ponger(first, rounds))
    return answered


if __name__ == "__main__":
    bench_asyncio.main("pingpong", 100000, pingpong,
                       lambda n: n * (n - 1) // 2)
