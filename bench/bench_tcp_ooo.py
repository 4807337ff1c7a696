"""
An out-of-order flood against the userspace TCP (issue 12), in one process on a Clock: a peer
opens C{--conns} connections to a stack whose applications read, sends a few bytes in order on
each (which opens the receiver's full window), then leaves a one-byte gap open and fills the
window above it with crafted segments (one reused payload, so the attacker holds nothing).
Reports the most the victim stack held undelivered (C{tcp_rcv_budget_bytes} bounds it: 8 MiB
by default) and the process's RSS growth, then how long (simulated time, so the machine's load
does not change it) a legitimate peer needs to move 8 MiB to a reading application over a path
with 1 % loss and a 20 ms round trip while the flood holds the budget, and without the flood.

    python bench/bench_tcp_ooo.py [--conns 32] [--size MiB]
"""

from __future__ import annotations

import argparse
import os
import statistics
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.task import Clock

from axl.tcp.common import TCPConfig
from axl.tcp.connection import Connection
from axl.tcp.segment import ACK, NEXT_HEADER_TCP, build_tcp, ts_option
from axl.tcp.stack import TCPStack
from axl.tcp.testing import FakeIPv6Layer, LossyNetwork, run_until
from bench.bench_mesh_sim import rss_mb
from bench.bench_tcp import Sink
from bench.common import Figure, Options, benchmark

KEY_ATTACKER, KEY_VICTIM, KEY_LEGIT = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32
GAP = 1000          # bytes sent in order before the gap


def held(stack: TCPStack) -> int:
    """Payload bytes C{stack} holds undelivered: for paused apps, and out of order."""
    return sum(len(c._rpending) + sum(map(len, c.ooo.segments.values())) for c in stack.connections)


def flood(attacker: TCPStack, victim: TCPStack, conn: Connection, segment: bytes) -> None:
    """Fill the window the victim offers C{conn} above a one-byte gap with copies of C{segment}."""
    src, dst = attacker.address, victim.address
    seq = (conn.snd_nxt + 1) & 0xFFFFFFFF
    left = conn.snd_wnd - 1
    while left > 0:
        payload = segment[:left]
        opts = ts_option(conn._ts_now(), conn._ts_recent)
        tcp = build_tcp(src, dst, conn.local_port, conn.remote_port, seq, conn.rcv_nxt, ACK,
                        65535, opts, payload)
        ip6 = struct.pack("!IHBB", 0x60000000, len(tcp), NEXT_HEADER_TCP, 64)
        victim.packet_received(attacker.public_key, ip6 + src + dst + tcp)
        seq = (seq + len(payload)) & 0xFFFFFFFF
        left -= len(payload)


def run(conns: int, size: int, attack: bool = True, seed: int = 1) -> dict[str, float]:
    """One flood (if C{attack}) and one legitimate transfer; returns the figures."""
    clock = Clock()
    net = LossyNetwork(clock, loss=0.01, delay=0.01, seed=seed)
    attacker = TCPStack(FakeIPv6Layer(KEY_ATTACKER, net), KEY_ATTACKER, clock)
    victim = TCPStack(FakeIPv6Layer(KEY_VICTIM, net), KEY_VICTIM, clock)
    legit = TCPStack(FakeIPv6Layer(KEY_LEGIT, net), KEY_LEGIT, clock)
    sinks: list[Sink] = []

    def accept(conn: Connection) -> Sink:
        sink = Sink()
        sink.conn = conn
        sinks.append(sink)
        return sink

    victim.listen(7000, accept)
    result = {"held_mib": 0.0, "rss_mib": 0.0}
    if attack:
        rss0 = rss_mb()
        clients = [attacker.connect(KEY_VICTIM, 7000, Sink()) for _ in range(conns)]
        for c in clients:
            c.send(b"h" * GAP)
        run_until(clock, lambda: len(sinks) == conns and all(s.n == GAP for s in sinks), 60)
        run_until(clock, lambda: False, 1)              # the window updates reach the attacker
        segment = b"x" * clients[0].smss
        for c in clients:
            flood(attacker, victim, c, segment)
        run_until(clock, lambda: False, 1)
        result["held_mib"] = held(victim) / 2**20
        result["rss_mib"] = rss_mb() - rss0
    sink_count = len(sinks)
    client = legit.connect(KEY_VICTIM, 7000, Sink())
    run_until(clock, lambda: len(sinks) > sink_count, 60)
    reader = sinks[-1]
    t0 = clock.seconds()
    client.send(os.urandom(size))
    run_until(clock, lambda: reader.n == size, 3600)
    assert reader.n == size, reader.n
    result["legit_s"] = clock.seconds() - t0
    result["held_after_mib"] = held(victim) / 2**20
    return result


SEEDS = range(1, 8)


def runs(conns: int, size: int, attack: bool = True) -> tuple[float, float]:
    """The most held and the median legitimate transfer time over L{SEEDS}."""
    results = [run(conns, size, attack, seed) for seed in SEEDS]
    return max(r["held_mib"] for r in results), statistics.median(r["legit_s"] for r in results)


@benchmark("tcp_ooo", "out-of-order flood: 32 connections keep gaps open against reading apps")
def measure(opts: Options) -> list[Figure]:
    size = (2 if opts.quick else 8) << 20
    held_mib, legit_s = runs(32, size)
    budget = TCPConfig().rcv_budget / 2**20
    return [
        Figure("tcp_ooo.held", f"bytes the victim stack held undelivered (budget {budget:g} MiB)",
               held_mib, "MiB", better="lower", target=budget),
        Figure("tcp_ooo.legit", f"meanwhile {size >> 20} MiB to a reading app, 1 % loss, 20 ms RTT "
               "(simulated, median of 7)", legit_s, "s", better="lower"),
        Figure("tcp_ooo.legit_alone", "the same without the flood", runs(32, size, False)[1], "s",
               better="lower"),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conns", type=int, default=32, help="flooded connections (default 32)")
    p.add_argument("--size", type=int, default=8, help="MiB the legitimate peer sends (default 8)")
    args = p.parse_args()
    size = args.size << 20
    r = run(args.conns, size)
    print(f"{args.conns} connections with gaps open: the victim held {r['held_mib']:.1f} MiB "
          f"undelivered (RSS +{r['rss_mib']:.0f} MiB)")
    with_flood, alone = runs(args.conns, size)[1], runs(args.conns, size, False)[1]
    print(f"{args.size} MiB to a reading app (1 % loss, 20 ms RTT), median of {len(SEEDS)} seeds, "
          f"simulated time: {with_flood:.2f} s during the flood, {alone:.2f} s without it")


if __name__ == "__main__":
    main()
