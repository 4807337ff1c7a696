"""
The streams layer alone: 100-byte /send messages from a MessageSender through one pooled
channel to a message listener and its /recv queue, in one process over in-memory pipes that
acknowledge what they deliver (tests.streams_helpers.MemoryNet; no TCP, no crypto). The figures
are the CPU time per message (best of several rounds of 20000, sent 50 at a time), for the
acknowledged protocol between axl nodes (README "Messaging": a status frame per message) and for
the plain frames sent to a Go AXL receiver.

Run: python bench/bench_streams.py [--quick]   (or: python -m bench --only streams)
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
from bench.common import Figure, Options, benchmark, run_standalone  # noqa: E402
from tests.streams_helpers import MemoryNet  # noqa: E402

A, B = b"\x01" * 32, b"\x02" * 32
N, BATCH = 20000, 50


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


@benchmark("streams", "100-byte /send messages: sender, pooled channel, listener, /recv queue in one process (in-memory pipes)")
def measure(opts: Options) -> list[Figure]:
    rounds = 2 if opts.quick else 7
    figures = []
    for acked, name, what in ((True, "per_message", "acknowledged protocol (axl receiver)"),
                              (False, "per_message_plain", "plain frames (Go AXL receiver)")):
        best = min(one_round(acked) for _ in range(rounds))
        figures.append(Figure(f"streams.{name}", f"100-byte message through the streams layer, {what}, CPU",
                              best / N * 1e6, "µs", better="lower"))
    return figures


if __name__ == "__main__":
    run_standalone(measure)
