# -*- test-case-name: tests.test_tcp_wan -*-
"""
WAN conditions (issue 19 item 5): a line of three nodes X - L - Y on 127.0.0.1 whose two TLS
peer links each run through a delay link (L{tests.delaylink}, one process per link) adding
C{--delay-ms} (default 10 ms) each way, so X to Y has a 40 ms round trip.

 - C{stream} (default): X, L and Y are C{make_node_service} nodes in this process; one overlay
   TCP stream X -> Y carries C{--size} MiB (written at once, no per-message round trip);
   prints MB/s (10**6 bytes/s) of wall time from the first write until the last byte arrived.
 - C{send}: X, L and Y are C{twistd} nodes; C{--count} sequential 1 MiB C{/send} X -> Y
   (each waits for Y's TCP to acknowledge it) while Y's C{/recv} is drained; prints MiB/s,
   then 50 sequential 100-byte C{/send} calls until Y's C{/recv} returns them (p50/p95 ms).

    python bench/bench_tcp_wan.py [stream|send|both] [--delay-ms 10] [--size 64] [--count 16]
        [--max-in-flight BYTES]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from axl.client import request as http  # noqa: E402
from bench.common import Figure, Options, benchmark  # noqa: E402
from bench.nodes import free_port, stop_all, wait_for_route  # noqa: E402
from bench.nodes import start_node_process as start_node  # noqa: E402
from tests.delaylink import DEFAULT_MAX_IN_FLIGHT  # noqa: E402


def start_delay_link(target_port: int, delay_ms: float, max_in_flight: int
                     ) -> tuple[subprocess.Popen[bytes], int]:
    """A delay link process in front of 127.0.0.1:C{target_port}; returns it and its port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.delaylink", "--to", f"127.0.0.1:{target_port}",
         "--delay-ms", str(delay_ms), "--max-in-flight", str(max_in_flight)], cwd=ROOT, stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"delay link did not start: {line!r}")
    return proc, int(line.split()[-1])


# ---- stream: in-process nodes ---------------------------------------------------------------

def run_stream(delay_ms: float, size: int, max_in_flight: int) -> float:
    """One overlay TCP stream X -> Y over the delayed line; returns MB/s."""
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred, ensureDeferred
    from twisted.internet.endpoints import connectProtocol
    from twisted.internet.protocol import Factory, Protocol
    from twisted.internet.task import deferLater

    from axl.config import config_from_dict
    from axl.crypto.keys import Identity
    from axl.service import make_node_service
    from axl.tcp.endpoints import OverlayClientEndpoint, OverlayServerEndpoint

    procs: list[subprocess.Popen[bytes]] = []
    result: list[float] = []

    class Sink(Protocol):
        def __init__(self) -> None:
            self.n = 0
            self.done: Deferred[None] = Deferred()

        def dataReceived(self, data: bytes) -> None:
            self.n += len(data)
            if self.n >= size and not self.done.called:
                self.done.callback(None)

    async def scenario() -> None:
        listen_port = free_port()
        tops = []

        def node(config: dict[str, Any]) -> Any:
            top = make_node_service(config_from_dict({**config, "api_port": free_port()}),
                                    reactor, identity=Identity.generate())
            top.startService()
            tops.append(top)
            return top.node

        node({"Listen": [f"tls://127.0.0.1:{listen_port}"]})
        for _ in range(2):
            proc, port = start_delay_link(listen_port, delay_ms, max_in_flight)
            procs.append(proc)
            node({"Peers": [f"tls://127.0.0.1:{port}"]})
        x, y = tops[1].node, tops[2].node
        sink = Sink()
        await OverlayServerEndpoint(y.tcp, 5001).listen(Factory.forProtocol(lambda: sink))
        proto = Protocol()
        for _ in range(120):
            try:
                await connectProtocol(OverlayClientEndpoint(x.tcp, y.public_key, 5001, timeout=5),
                                      proto)
                break
            except Exception:
                await deferLater(reactor, 0.5, lambda: None)
        else:
            raise SystemExit("no overlay connection X -> Y")
        block = os.urandom(1 << 20)
        t0 = time.perf_counter()
        for _ in range(size >> 20):
            proto.transport.write(block)
        await sink.done
        result.append(size / (time.perf_counter() - t0) / 1e6)
        conn = proto.transport.conn
        srtt = (conn.rto.srtt or 0) * 1000
        print(f"  (sender: SRTT {srtt:.1f} ms, cwnd {conn.cc.cwnd >> 10} KiB, "
              f"peer window {conn.snd_wnd >> 10} KiB, MSS {conn.smss})")
        proto.transport.loseConnection()
        for t in tops:
            await t.stopService()

    def run() -> None:
        d = ensureDeferred(scenario())
        d.addErrback(lambda f: f.printTraceback())
        d.addBoth(lambda _: reactor.stop())

    try:
        reactor.callWhenRunning(run)
        reactor.run()
    finally:
        stop_all(procs)
    if not result:
        raise SystemExit("stream bench failed")
    return result[0]


# ---- send: twistd nodes ---------------------------------------------------------------------

def run_send(delay_ms: float, count: int, max_in_flight: int) -> tuple[float, float, float]:
    """Sequential 1 MiB /send X -> Y; returns (MiB/s, p50 ms, p95 ms of 100-byte sends)."""
    workdir = tempfile.mkdtemp(prefix="axl-wan-")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        listen_port = free_port()
        relay, _ = start_node(workdir, "l", {"Listen": [f"tls://127.0.0.1:{listen_port}"]})
        procs.append(relay)
        apis = []
        for name in ("x", "y"):
            link, port = start_delay_link(listen_port, delay_ms, max_in_flight)
            node, api = start_node(workdir, name, {"Peers": [f"tls://127.0.0.1:{port}"]})
            procs += [link, node]
            apis.append(api)
        api_x, api_y = apis
        _, send, recv, dest = wait_for_route(api_x, api_y)

        chunk = os.urandom(1 << 20)
        received: list[int] = []

        def drain() -> None:
            while len(received) < count:
                code, _, body = http("GET", recv)
                if code == 200:
                    received.append(len(body))

        drainer = threading.Thread(target=drain)
        t0 = time.perf_counter()
        drainer.start()
        each = []
        for _ in range(count):
            t = time.perf_counter()
            code, _, body = http("POST", send, chunk, dest)
            assert code == 200, (code, body)
            each.append((time.perf_counter() - t) * 1000)
        drainer.join()
        bulk = count / (time.perf_counter() - t0)
        assert sum(received) == count * len(chunk)
        print(f"  (1 MiB /send: first {each[0]:.0f} ms, then median "
              f"{statistics.median(each[1:] or each):.0f} ms)")

        lat = []
        small = b"x" * 100
        for _ in range(50):
            t = time.perf_counter()
            assert http("POST", send, small, dest)[0] == 200
            assert http("GET", recv)[2] == small
            lat.append((time.perf_counter() - t) * 1000)
        lat.sort()
        return bulk, statistics.median(lat), lat[int(len(lat) * 0.95)]
    finally:
        stop_all(procs)


@benchmark("tcp_wan", "X – L – Y with a 10 ms delay each way on each TLS link (40 ms RTT X ↔ Y)")
def measure(opts: Options) -> list[Figure]:
    count, size = (2, 4) if opts.quick else (16, 64)
    bulk, p50, _ = run_send(10.0, count, DEFAULT_MAX_IN_FLIGHT)
    figures = [
        Figure("tcp_wan.send", f"40 ms RTT: {count} × 1 MiB sequential /send X → Y", bulk, "MiB/s", target=15),
        Figure("tcp_wan.latency_p50", "40 ms RTT: 100 B /send until Y's /recv returns it, p50", p50, "ms",
               better="lower"),
    ]
    if not opts.quick:  # --quick: the twistd part only (the whole runner stays under a minute)
        mbs = run_stream(10.0, size << 20, DEFAULT_MAX_IN_FLIGHT)
        figures.append(Figure("tcp_wan.stream", f"40 ms RTT: one overlay TCP stream X → Y, {size} MiB "
                              "(nodes in one process)", mbs, "MB/s", target=40))
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", nargs="?", choices=("stream", "send", "both"), default="both")
    p.add_argument("--delay-ms", type=float, default=10.0, help="one-way delay per link")
    p.add_argument("--size", type=int, default=64, help="MiB for the stream (default 64)")
    p.add_argument("--count", type=int, default=16, help="1 MiB /send calls (default 16)")
    p.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT,
                   help="bytes each delay link holds per direction (default 4 MiB)")
    args = p.parse_args()
    rtt = 4 * args.delay_ms
    if args.what in ("send", "both"):
        bulk, p50, p95 = run_send(args.delay_ms, args.count, args.max_in_flight)
        print(f"X-L-Y, {args.delay_ms:g} ms one way per link ({rtt:g} ms RTT): "
              f"{args.count} x 1 MiB sequential /send: {bulk:.1f} MiB/s; "
              f"100-byte /send until /recv: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    if args.what in ("stream", "both"):
        mbs = run_stream(args.delay_ms, args.size << 20, args.max_in_flight)
        print(f"X-L-Y, {args.delay_ms:g} ms one way per link ({rtt:g} ms RTT): one overlay "
              f"TCP stream, {args.size} MiB: {mbs:.1f} MB/s")


if __name__ == "__main__":
    main()
