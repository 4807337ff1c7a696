"""
Routing benchmark: packets through a line of three ironwood routers (no links, no crypto).

A simulated line A - R - B converges; then A sends N packets of 1200 bytes to B. Each packet is
originated by A, forwarded by R (greedy next hop, watermark) and delivered by B, so the figure is
the cost of three router steps per packet.

Run: python bench/bench_mesh.py [--quick]   (or through the runner: python -m bench --only mesh)
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from axl.mesh.sim import SimNetwork  # noqa: E402
from bench.common import Figure, Options, benchmark, run_standalone  # noqa: E402

SIZE = 1200


@benchmark("mesh", "a 1200-byte packet originated, forwarded and delivered by three routers (A → R → B)")
def measure(opts: Options) -> list[Figure]:
    packets = 10_000 if opts.quick else 100_000
    net = SimNetwork(seed=1)
    a, r, b = net.add_node(), net.add_node(), net.add_node()
    net.connect(a, r)
    net.connect(r, b)
    net.advance(15.0)
    assert net.converged(), "the line did not converge"
    data = bytes(SIZE)
    net.send(a, b, data)  # the lookup: the path is known from here on
    net.advance(1.0)
    b.received.clear()
    start = time.perf_counter()
    for _ in range(packets):
        net.send(a, b, data)
    elapsed = time.perf_counter() - start
    assert len(b.received) == packets, f"delivered {len(b.received)} of {packets}"
    net.stop()
    return [
        Figure("mesh.rate", "routing A → R → B, 1200-byte packets", packets / elapsed, "packets/s"),
        Figure("mesh.per_packet", "routing A → R → B, per packet (three router steps)",
               elapsed / packets * 1e6, "µs", better="lower"),
    ]


if __name__ == "__main__":
    run_standalone(measure)
