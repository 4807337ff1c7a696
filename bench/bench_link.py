"""
Link-layer benchmark: ironwood frames through a handshaken link core (no TLS, no router).

Feeds a byte stream of N frames of SIZE bytes to a link core that is up, in 64 KiB chunks as a
socket would deliver them, and sends N frames through it. Prints frames/s and MB/s each way.

Run: python bench/bench_link.py [--frames N] [--size BYTES]
"""

from __future__ import annotations

import argparse
import time

from twisted.internet.task import Clock

from axl.crypto import Identity
from axl.link.core import LinkCore, NullLinkHandler
from axl.link.framing import encode_frame
from axl.link.meta import encode_meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=1200)
    args = parser.parse_args()

    clock = Clock()
    written: list[bytes] = []
    core = LinkCore(
        identity=Identity(bytes(32)), clock=clock, handler=NullLinkHandler(),
        uri="tcp://127.0.0.1:1", inbound=False,
    )  # fmt: skip
    core.connection_made(written.append, lambda abort: None)
    core.data_received(encode_meta(Identity(bytes(range(1, 33)))))
    assert core.is_up, core.last_error
    stream = encode_frame(9, bytes(args.size)) * args.frames
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    start = time.perf_counter()
    for chunk in chunks:
        core.data_received(chunk)
    rx = time.perf_counter() - start
    payload = bytes(args.size)
    start = time.perf_counter()
    for _ in range(args.frames):
        core.send_frame(9, payload)
    tx = time.perf_counter() - start
    total = args.frames * args.size / 1e6
    print(f"link receive, {args.size}-byte frames: {args.frames / rx:,.0f} frames/s, {total / rx:.0f} MB/s")
    print(f"link send,    {args.size}-byte frames: {args.frames / tx:,.0f} frames/s, {total / tx:.0f} MB/s")


if __name__ == "__main__":
    main()
