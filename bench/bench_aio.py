# -*- test-case-name: tests.test_aio -*-
"""
Embedded nodes (L{axl.aio}) in one asyncio program: two nodes peered over tcp on 127.0.0.1
(links, routing, encrypted sessions, userspace TCP, all on the asyncio loop).

 - message rate: N messages of S bytes sent with W sends in flight while a receiver task
   recv()s them (every one checked to arrive once, in order); messages/s of wall time;
 - latency: M sequential sends of 100 bytes, each timed until the receiver's recv() returned
   it; p50/p95;
 - stream throughput: a MiB one way over open_connection (write + drain, 256 KiB at a time) to
   a server that reads everything; MiB/s from the first write to the server's last byte.

    python bench/bench_aio.py [--messages 5000] [--size 1024] [--window 32] [--stream-mib 256]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import axl.aio  # noqa: E402
from bench.common import Figure, Options, benchmark  # noqa: E402
from bench.nodes import free_port  # noqa: E402

MiB = 1024 * 1024


async def message_rate(a: axl.aio.Node, b: axl.aio.Node, n: int, size: int, window: int) -> float:
    payloads = [i.to_bytes(4, "big") + bytes(size - 4) for i in range(n)]
    received: list[int] = []

    async def receive() -> None:
        while len(received) < n:
            m = await b.recv(timeout=60)
            received.append(int.from_bytes(m.data[:4], "big"))

    receiver = asyncio.ensure_future(receive())
    slots = asyncio.Semaphore(window)
    start = time.perf_counter()

    async def one(p: bytes) -> None:
        try:
            await a.send(b.public_key, p)
        finally:
            slots.release()

    sends = []
    for p in payloads:
        await slots.acquire()
        sends.append(asyncio.ensure_future(one(p)))
    await asyncio.gather(*sends)
    await receiver
    elapsed = time.perf_counter() - start
    if received != list(range(n)):
        raise SystemExit("messages lost, duplicated or reordered")
    return n / elapsed


async def latency(a: axl.aio.Node, b: axl.aio.Node, m: int) -> tuple[float, float]:
    samples = []
    for _ in range(m):
        t = time.perf_counter()
        await a.send(b.public_key, bytes(100))
        await b.recv(timeout=10)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95)]


async def stream(a: axl.aio.Node, b: axl.aio.Node, mib: int) -> float:
    total = mib * MiB
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = 0
        while chunk := await reader.read(1 << 20):
            n += len(chunk)
        done.set_result(time.perf_counter())
        if n != total:
            raise SystemExit(f"stream got {n} of {total} bytes")
        writer.close()

    server = await b.start_server(sink, 5001, limit=1 << 20)
    reader, writer = await a.open_connection(b.public_key, 5001)
    block = os.urandom(256 * 1024)
    start = time.perf_counter()
    for _ in range(total // len(block)):
        writer.write(block)
        await writer.drain()
    writer.write_eof()
    end = await done
    writer.close()
    server.close()
    return mib / (end - start)


async def main(args: argparse.Namespace) -> list[Figure]:
    listen = f"tcp://127.0.0.1:{free_port()}"
    async with axl.aio.Node({"Listen": [listen]}) as a, axl.aio.Node({"Peers": [listen]}) as b:
        await a.send(b.public_key, b"warm up")  # path and session set-up, outside the timings
        await b.recv(timeout=30)
        rate = await message_rate(a, b, args.messages, args.size, args.window)
        print(f"messages: {args.messages} x {args.size} B, {args.window} in flight: {rate:,.0f} msgs/s")
        p50, p95 = await latency(a, b, args.latency)
        print(f"100 B send -> recv: p50 {p50:.2f} ms, p95 {p95:.2f} ms ({args.latency} samples)")
        mbps = await stream(a, b, args.stream_mib)
        print(f"stream: {args.stream_mib} MiB over open_connection: {mbps:.0f} MiB/s")
    return [
        Figure("aio.rate", f"{args.size} B send → recv, {args.window} in flight (once, in order)", rate, "msgs/s"),
        Figure("aio.latency_p50", "100 B send until the other node's recv returns it, p50", p50, "ms",
               better="lower"),
        Figure("aio.stream", f"{args.stream_mib} MiB over open_connection", mbps, "MiB/s"),
    ]


@benchmark("aio", "two embedded axl.aio nodes in one asyncio program, tcp link on loopback")
def measure(opts: Options) -> list[Figure]:
    import logging

    logging.basicConfig(level=logging.ERROR)
    quick = opts.quick
    args = argparse.Namespace(messages=1000 if quick else 5000, size=1024, window=32,
                              latency=50 if quick else 200, stream_mib=32 if quick else 256)
    return asyncio.run(main(args))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--stream-mib", type=int, default=256)
    import logging

    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(parser.parse_args()))
