# -*- test-case-name: tests.test_tcp_stack -*-
"""
Bulk-transfer benchmark of the userspace TCP: two in-process L{TCPStack}s joined by the
in-memory link of L{axl.tcp.testing} (no crypto, no routing), driven by a Clock so only CPU
time counts. Reports MB/s (10**6 bytes per second of wall time) for MTU 65535 and for MSS 1220
(MTU 1280, what a Go AXL node's gVisor advertises), and the CPU time per data segment (sender
and receiver together, acknowledgements included), which a busy machine disturbs less. With --sessions the stacks sit on the real
session and IPv6 layers (encryption included) of L{axl.ipv6.testing}'s in-memory mesh.

With --loss (and --delay-ms, one way) it also reports what the simulated path achieved, which
the machine's load does not change: MB/s of simulated time, the most out-of-order bytes the
receiver held at once (sampled per clock step; they count against C{tcp_rcv_budget_bytes}),
the sender's SACK hole retransmissions and the bytes the receive budget dropped.

    python bench/bench_tcp.py [--size MiB] [--mtu N ...] [--loss P] [--delay-ms MS] [--sessions]
        [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.task import Clock

from axl.crypto.keys import Identity
from axl.ipv6.testing import FakeNetwork, Stack
from axl.tcp.connection import TCPConfig
from axl.tcp.stack import TCPStack
from axl.tcp.testing import FakeIPv6Layer, LossyNetwork, run_until
from bench.common import Figure, Options, benchmark

KEY_A, KEY_B = bytes([1]) * 32, bytes([2]) * 32


class Sink:
    """Counts received bytes."""

    def __init__(self) -> None:
        self.n = 0
        self.eof = False
        self.conn = None

    def tcp_established(self) -> None:
        pass

    def tcp_data(self, data: bytes) -> None:
        self.n += len(data)

    def tcp_eof(self) -> None:
        self.eof = True
        self.conn.close()

    def tcp_writable(self) -> None:
        pass

    def tcp_closed(self, reason: Exception) -> None:
        pass


def run(size: int, mtu: int, loss: float = 0.0, sessions: bool = False, delay: float | None = None,
        path: dict[str, float] | None = None) -> tuple[float, int, float]:
    """
    Transfer C{size} bytes; returns (seconds of wall time, segments sent, CPU seconds). Fills
    C{path}, if given, with the simulated path's figures (lossy network only): C{seconds},
    C{ooo_peak}, C{hole_resends}, C{budget_dropped}.
    """
    clock = Clock()
    if sessions:
        clock.advance(1.7e9)
        mesh = FakeNetwork()
        na, nb = Stack(mesh, Identity.generate(), clock), Stack(mesh, Identity.generate(), clock)
        cfg = TCPConfig(mtu=mtu)
        a = TCPStack(na.ipv6, na.public_key, clock, config=cfg)
        b = TCPStack(nb.ipv6, nb.public_key, clock, config=cfg)
        peer = nb.public_key

        def drive(done) -> None:
            while not done():
                if mesh.flush(10**9):
                    continue
                calls = clock.getDelayedCalls()
                clock.advance(max(min(c.getTime() for c in calls) - clock.seconds(), 0))
    else:
        if delay is None:
            delay = 0.001 if loss else 0.0
        net = LossyNetwork(clock, loss=loss, delay=delay)
        a = TCPStack(FakeIPv6Layer(KEY_A, net, mtu=mtu), KEY_A, clock)
        b = TCPStack(FakeIPv6Layer(KEY_B, net, mtu=mtu), KEY_B, clock)
        peer = KEY_B
        ooo_peak = [0]

        def sampled(done):
            def check() -> bool:
                for c in b.connections:
                    if c.ooo.held > ooo_peak[0]:
                        ooo_peak[0] = c.ooo.held
                return done()
            return check

        def drive(done) -> None:
            run_until(clock, sampled(done) if path is not None else done, 1e6)
    sink = Sink()

    def accept(conn):
        sink.conn = conn
        return sink

    b.listen(80, accept)
    client = Sink()
    conn = a.connect(peer, 80, client)
    client.conn = conn
    resends = [0]
    if path is not None and not sessions:
        retransmit_hole = conn._retransmit_hole

        def counted() -> bool:
            sent = retransmit_hole()
            resends[0] += sent
            return sent

        conn._retransmit_hole = counted  # type: ignore[method-assign]
    drive(lambda: sink.conn is not None)
    payload = os.urandom(1 << 20)
    chunks = size // len(payload)
    t0, c0, s0 = time.perf_counter(), time.process_time(), clock.seconds()
    for _ in range(chunks):
        conn.send(payload)
    conn.close()
    drive(lambda: sink.eof)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert sink.n == chunks * len(payload), (sink.n, size)
    if path is not None and not sessions:
        path.update(seconds=clock.seconds() - s0, ooo_peak=ooo_peak[0], hole_resends=resends[0],
                    budget_dropped=b.rcv_budget.dropped)
    return dt, a.stats["out"], cpu


@benchmark("tcp", "bulk transfer between two in-process TCP stacks (plain, and over sessions + IPv6)")
def measure(opts: Options) -> list[Figure]:
    size = (16 if opts.quick else 64) << 20
    figures = []
    for sessions in (False, True):
        for mtu in (65535, 1280):
            dt = run(size if mtu > 1280 else size // 4, mtu, sessions=sessions)[0]
            where = "over sessions + IPv6" if sessions else "no crypto"
            figures.append(Figure(f"tcp.{'sessions_' if sessions else ''}mtu{mtu}",
                                  f"userspace TCP bulk, {where}, MTU {mtu}",
                                  (size if mtu > 1280 else size // 4) / dt / 1e6, "MB/s"))
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=64, help="MiB to transfer (default 64)")
    p.add_argument("--mtu", type=int, action="append", help="MTU(s) to test (default 65535 and 1280)")
    p.add_argument("--loss", type=float, default=0.0, help="packet loss probability")
    p.add_argument("--delay-ms", type=float, default=None,
                   help="one-way delay of the lossy network (default 1 with --loss, else 0)")
    p.add_argument("--sessions", action="store_true",
                   help="run over the real session + IPv6 layers (with encryption)")
    p.add_argument("--profile", action="store_true", help="print a cProfile summary")
    args = p.parse_args()
    size = args.size << 20
    for mtu in args.mtu or [65535, 1280]:
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
        path: dict[str, float] = {}
        delay = args.delay_ms / 1000 if args.delay_ms is not None else None
        dt, segs, cpu = run(size, mtu, args.loss, args.sessions, delay,
                            path if args.loss and not args.sessions else None)
        if args.profile:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        print(("sessions " if args.sessions else "") + f"MTU {mtu:5d} (MSS {min(mtu - 60, 65475)}): {size / dt / 1e6:7.1f} MB/s "
              f"({size >> 20} MiB in {dt:.2f} s, {segs} segments sent, {segs / dt:,.0f} seg/s, "
              f"{cpu / segs * 1e6:.1f} µs CPU per segment)")
        if path:
            print(f"  simulated path: {size / path['seconds'] / 1e6:.1f} MB/s of simulated time, "
                  f"out-of-order peak {path['ooo_peak'] / 2**20:.2f} MiB, "
                  f"{path['hole_resends']:.0f} SACK hole retransmissions, "
                  f"{path['budget_dropped']:.0f} bytes dropped over the receive budget")


if __name__ == "__main__":
    main()
