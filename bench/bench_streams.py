"""
The streams layer alone: 100-byte /send messages from a MessageSender through one pooled
channel to a message listener and its /recv queue, in one process over in-memory pipes that
acknowledge what they deliver (tests.streams_helpers.MemoryNet; no TCP, no crypto). Prints the
CPU time per message (best of 7 rounds of 20000, sent 50 at a time), for the acknowledged
protocol between axl nodes (README "Messaging": a status frame per message) and for the plain
frames sent to a Go AXL receiver.

Run: .venv/bin/python bench/bench_streams.py
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.task import Clock  # noqa: E402

from axl.streams.framing import acknowledged_port  # noqa: E402
from axl.streams.listener import AcknowledgedMessageFactory, MessageFactory  # noqa: E402
from axl.streams.recv_queue import RecvQueue  # noqa: E402
from axl.streams.registry import StreamRegistry  # noqa: E402
from axl.streams.sender import MessageSender  # noqa: E402
from tests.streams_helpers import MemoryNet  # noqa: E402

A, B = b"\x01" * 32, b"\x02" * 32
N, BATCH, ROUNDS = 20000, 50, 7


def one_round(acked: bool) -> float:
    """CPU seconds to send N messages and take them from B's queue."""
    clock, net = Clock(), MemoryNet()
    queue = RecvQueue(clock, 10**9, 10**12)
    factory = MessageFactory(StreamRegistry(queue, clock), clock)
    net.listen(B, 7000, factory)
    if acked:
        net.listen(B, acknowledged_port(7000), AcknowledgedMessageFactory(factory))
    sender = MessageSender(net.dial_from(A), clock, A, StreamRegistry(RecvQueue(clock), clock),
                           ack_port=acknowledged_port(7000))  # fmt: skip
    payload = b"x" * 100
    start = time.process_time()
    for _ in range(N // BATCH):
        sent = [sender.send(B, payload) for _ in range(BATCH)]
        net.flush()
        while queue.get() is not None:
            pass
        assert all(d.called for d in sent)
    return time.process_time() - start


def main() -> None:
    for acked, what in ((True, "acknowledged protocol (axl receiver)"), (False, "plain frames (Go AXL receiver)")):
        best = min(one_round(acked) for _ in range(ROUNDS))
        print(f"{N} x 100-byte /send through the streams layer, {what}: {best / N * 1e6:.1f} us CPU per message")


if __name__ == "__main__":
    main()
