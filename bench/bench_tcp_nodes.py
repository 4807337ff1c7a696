# -*- test-case-name: tests.test_tcp_e2e -*-
"""
Overlay TCP throughput through whole nodes: three C{make_node_service} nodes in this process on
127.0.0.1 (TLS links, ironwood routing, encrypted sessions, IPv6 carriage, userspace TCP), A the
hub, B and C peered to it. Sends N MiB from B to C's overlay port (so through A) and reports
MB/s of wall time. Real reactor, real sockets on loopback only.

    python bench/bench_tcp_nodes.py [--size MiB]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet import reactor  # noqa: E402
from twisted.internet.defer import ensureDeferred  # noqa: E402
from twisted.internet.endpoints import connectProtocol  # noqa: E402
from twisted.internet.protocol import Factory, Protocol  # noqa: E402
from twisted.internet.task import deferLater  # noqa: E402

from axl.config import config_from_dict  # noqa: E402
from axl.crypto.keys import Identity  # noqa: E402
from axl.service import make_node_service  # noqa: E402
from axl.tcp.endpoints import OverlayClientEndpoint, OverlayServerEndpoint  # noqa: E402
from bench.common import Figure, Options, benchmark  # noqa: E402
from bench.nodes import free_port  # noqa: E402


class Sink(Protocol):
    def __init__(self) -> None:
        self.n = 0
        self.done = None

    def dataReceived(self, data: bytes) -> None:
        self.n += len(data)
        if self.done is not None and self.n >= self.total:
            d, self.done = self.done, None
            d.callback(None)


async def main(size: int) -> float:
    listen = f"tcp://127.0.0.1:{free_port()}"
    tops = []
    for cfg in ({"Listen": [listen]}, {"Peers": [listen]}, {"Peers": [listen]}):
        top = make_node_service(config_from_dict({**cfg, "api_port": free_port()}), reactor,
                                identity=Identity.generate())
        top.startService()
        tops.append(top)
    a, b, c = (t.node for t in tops)
    sink = Sink()
    sink.total = size
    await OverlayServerEndpoint(c.tcp, 5001).listen(Factory.forProtocol(lambda: sink))
    proto = Protocol()
    for _ in range(60):
        try:
            await connectProtocol(OverlayClientEndpoint(b.tcp, c.public_key, 5001, timeout=5), proto)
            break
        except Exception:
            await deferLater(reactor, 0.5, lambda: None)
    from twisted.internet.defer import Deferred
    sink.done = Deferred()
    block = os.urandom(1 << 20)
    t0 = time.perf_counter()
    for _ in range(size >> 20):
        proto.transport.write(block)
    await sink.done
    dt = time.perf_counter() - t0
    print(f"B -> A -> C through whole nodes: {size / dt / 1e6:.1f} MB/s "
          f"({size >> 20} MiB in {dt:.2f} s, MSS {b.tcp.connections[0].smss})")
    for t in tops:
        await t.node.tcp.stop(0.5)
    for t in tops:
        await t.stopService()
    return size / dt / 1e6


def run_in_reactor(size: int) -> float:
    """Run L{main} in the global reactor (once per process): MB/s."""
    result: list[float] = []

    def run() -> None:
        d = ensureDeferred(main(size))
        d.addCallback(result.append)
        d.addErrback(lambda f: f.printTraceback())
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run()
    if not result:
        raise RuntimeError("the transfer failed (traceback above)")
    return result[0]


@benchmark("tcp_nodes", "overlay TCP through three whole nodes in one process, B → A → C over TLS links")
def measure(opts: Options) -> list[Figure]:
    rate = run_in_reactor((8 if opts.quick else 32) << 20)
    return [Figure("tcp_nodes.bulk", "overlay TCP B → A → C through whole nodes", rate, "MB/s")]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=32, help="MiB to send (default 32)")
    args = p.parse_args()
    run_in_reactor(args.size << 20)
