"""
Routing benchmark: packets through a line of three ironwood routers (no links, no crypto).

A simulated line A - R - B converges; then A sends N packets of SIZE bytes to B. Each packet is
originated by A, forwarded by R (greedy next hop, watermark) and delivered by B, so the figure is
the cost of three router steps per packet. Prints packets/s and microseconds per packet.

Run: python bench/bench_mesh.py [--packets N] [--size BYTES]
"""

from __future__ import annotations

import argparse
import time

from axl.mesh.sim import SimNetwork


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=1200)
    args = parser.parse_args()

    net = SimNetwork(seed=1)
    a, r, b = net.add_node(), net.add_node(), net.add_node()
    net.connect(a, r)
    net.connect(r, b)
    net.advance(15.0)
    assert net.converged(), "the line did not converge"
    data = bytes(args.size)
    net.send(a, b, data)  # the lookup: the path is known from here on
    net.advance(1.0)
    b.received.clear()
    start = time.perf_counter()
    for _ in range(args.packets):
        net.send(a, b, data)
    elapsed = time.perf_counter() - start
    assert len(b.received) == args.packets, f"delivered {len(b.received)} of {args.packets}"
    per = elapsed / args.packets
    print(f"routing A -> R -> B, {args.size}-byte packets: {args.packets / elapsed:,.0f} packets/s, "
          f"{per * 1e6:.2f} us per packet (originate + forward + deliver), "
          f"{args.packets * args.size / elapsed / 1e6:.0f} MB/s")
    net.stop()


if __name__ == "__main__":
    main()
