"""
Link-layer benchmark: ironwood frames through a handshaken link core (no TLS, no router).

Feeds a byte stream of N frames of SIZE bytes to a link core that is up, in 64 KiB chunks as a
socket would deliver them, and sends N frames through it. Figures: frames/s each way.

Run: python bench/bench_link.py [--quick]   (or through the runner: python -m bench --only link)
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.task import Clock  # noqa: E402

from axl.crypto import Identity  # noqa: E402
from axl.link.core import LinkCore, NullLinkHandler  # noqa: E402
from axl.link.framing import encode_frame  # noqa: E402
from axl.link.meta import encode_meta  # noqa: E402
from bench.common import Figure, Options, benchmark, run_standalone  # noqa: E402

SIZE = 1200


@benchmark("link", "ironwood frames through a link core, 1200-byte frames (no TLS)")
def measure(opts: Options) -> list[Figure]:
    frames = 20_000 if opts.quick else 200_000
    clock = Clock()
    written: list[bytes] = []
    core = LinkCore(
        identity=Identity(bytes(32)), clock=clock, handler=NullLinkHandler(),
        uri="tcp://127.0.0.1:1", inbound=False,
    )  # fmt: skip
    core.connection_made(written.append, lambda abort: None)
    core.data_received(encode_meta(Identity(bytes(range(1, 33)))))
    assert core.is_up, core.last_error
    stream = encode_frame(9, bytes(SIZE)) * frames
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    start = time.perf_counter()
    for chunk in chunks:
        core.data_received(chunk)
    rx = time.perf_counter() - start
    payload = bytes(SIZE)
    start = time.perf_counter()
    for _ in range(frames):
        core.send_frame(9, payload)
    tx = time.perf_counter() - start
    return [
        Figure("link.receive", "link receive, 1200-byte frames", frames / rx, "frames/s"),
        Figure("link.send", "link send, 1200-byte frames", frames / tx, "frames/s"),
    ]


if __name__ == "__main__":
    run_standalone(measure)
