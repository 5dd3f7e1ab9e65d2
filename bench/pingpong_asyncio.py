"""bench/pingpong_asyncio.py - await round trips between two tasks. Each
round uses two fresh futures, as futures complete only once: ping resolves
the round's ping future with (pong future, next ping future) and awaits
pong; pong awaits ping and resolves the pong future. The result is the
number of rounds pong answered."""

import asyncio

import bench_asyncio


async def pinger(ping, rounds):
    loop = asyncio.get_running_loop()
    for _ in range(rounds):
        pong = loop.create_future()
        nxt = loop.create_future()
        ping.set_result((pong, nxt))
        await pong
        ping = nxt


async def ponger(ping, rounds):
    answered = 0
    for _ in range(rounds):
        pong, ping = await ping
        pong.set_result(None)
        answered += 1
    return answered


async def pingpong(rounds):
    loop = asyncio.get_running_loop()
    first = loop.create_future()
    _, answered = await asyncio.gather(pinger(first, rounds),
                                       ponger(first, rounds))
    return answered


if __name__ == "__main__":
    bench_asyncio.main("pingpong", 100000, pingpong, lambda n: n)
