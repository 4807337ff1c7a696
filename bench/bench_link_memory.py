"""
What one inbound peer link costs a node in memory (issue 12's worst-case formula), and that
C{max_inbound_links} holds.

Starts one twistd node on loopback listening on C{tls://}, then opens N TLS links to it from
this process (16 per source address, 127.0.0.2 and up, so the per-address caps do not refuse
them; a fresh key each), does the meta handshake and keeps each alive with keepalive frames
(reading what the node sends). Figures, from the node's VmRSS (noisy: glibc and the Python heap
keep freed memory around; run on a quiet machine for a firm figure):

 - C{link_memory.idle_per_link}: (RSS with N idle up links - RSS before) / N;
 - C{link_memory.stuffed_per_link}: the same once every link has sent most of a maximal frame
   (128 KiB, never finished) and stopped reading (the node's write buffer for it fills with
   whatever the node sends meanwhile: tree announcements, keepalives);
 - C{link_memory.up_at_cap}: how many of N + 32 links are up on a node with
   C{max_inbound_links = N} (must be N).

Run: python bench/bench_link_memory.py [--links N]   (default 200; --quick: 40)
"""

from __future__ import annotations

import argparse
import json
import os
import select
import ssl
import tempfile
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import Figure, Options, benchmark, print_figures  # noqa: E402
from bench.nodes import HTTP, Node, free_port, peer_link, start_node, stop_nodes  # noqa: E402

from axl.crypto import Identity  # noqa: E402
from axl.encoding import uvarint_encode  # noqa: E402
from axl.link.framing import PEER_MAX_MESSAGE_SIZE, encode_frame  # noqa: E402
from axl.link.meta import encode_meta  # noqa: E402

PER_SOURCE = 16
KEEPALIVE = encode_frame(1)


def open_link(port: int, index: int) -> ssl.SSLSocket:
    """A handshaken TLS link from 127.0.0.(2 + index // PER_SOURCE) with a fresh key."""
    source = (f"127.0.0.{2 + index // PER_SOURCE}", 0)
    sock = peer_link(port, encode_meta(Identity(os.urandom(32))), source, timeout=10)
    sock.setblocking(False)
    return sock


class Keeper:
    """Sends a keepalive on every link each 0.5 s and drains what the node sent (unless stuffed)."""

    def __init__(self) -> None:
        self.socks: list[ssl.SSLSocket] = []
        self.reading = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            for sock in list(self.socks):
                if not self.reading:
                    continue
                try:
                    sock.sendall(KEEPALIVE)
                    while select.select([sock], [], [], 0)[0]:
                        if not sock.recv(65536):
                            break
                except (OSError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.socks:
            sock.close()


def links_up(node: Node) -> int:
    with HTTP(node.api) as http:
        peers = json.loads(http.request("GET", "/topology")[2])["peers"]
    return sum(1 for p in peers if p["up"] and p["inbound"])


def settle_rss(node: Node, seconds: float = 3.0) -> float:
    """The node's RSS after C{seconds} (the lowest of a few samples near the end)."""
    time.sleep(seconds)
    samples = []
    for _ in range(5):
        samples.append(node.rss_mb())
        time.sleep(0.2)
    return min(samples)


def open_links(node: Node, port: int, keeper: Keeper, first: int, n: int) -> None:
    for i in range(first, first + n):
        try:
            keeper.socks.append(open_link(port, i))
        except OSError:
            pass  # refused (the cap): counted through /topology


@benchmark("link_memory", "RSS per idle and per stuffed inbound TLS link; max_inbound_links holds")
def measure(opts: Options, links: int | None = None) -> list[Figure]:
    n = links or (40 if opts.quick else 200)
    workdir = tempfile.mkdtemp(prefix="axl-linkmem-")
    figures = []
    port = free_port()
    node = start_node(workdir, "hub", {"Listen": [f"tls://127.0.0.1:{port}"], "max_inbound_links": n + 1000})
    keeper = Keeper()
    try:
        before = settle_rss(node)
        open_links(node, port, keeper, 0, n)
        up = links_up(node)
        idle = settle_rss(node)
        figures.append(Figure("link_memory.idle_per_link", f"RSS per idle up inbound TLS link ({up} links)",
                              (idle - before) * 1024 / max(up, 1), "KiB", better="lower"))  # fmt: skip
        keeper.reading = False
        partial = uvarint_encode(PEER_MAX_MESSAGE_SIZE) + b"\x09" + bytes(PEER_MAX_MESSAGE_SIZE - 2048)
        for sock in keeper.socks:
            sock.setblocking(True)
            try:
                sock.sendall(partial)
            except OSError:
                pass
        stuffed = settle_rss(node, 0.5)  # before the node's 3 s read deadline drops them
        figures.append(Figure("link_memory.stuffed_per_link",
                              f"RSS per link holding a 128 KiB partial frame, not reading ({links_up(node)} up)",
                              (stuffed - before) * 1024 / max(up, 1), "KiB", better="lower"))  # fmt: skip
    finally:
        keeper.close()
        stop_nodes([node])
    port = free_port()
    node = start_node(workdir, "capped", {"Listen": [f"tls://127.0.0.1:{port}"], "max_inbound_links": n})
    keeper = Keeper()
    try:
        open_links(node, port, keeper, 0, n + 32)
        time.sleep(1.0)
        figures.append(Figure("link_memory.up_at_cap", f"links up of {n + 32} with max_inbound_links = {n}",
                              links_up(node), "links", better="lower", target=n))  # fmt: skip
    finally:
        keeper.close()
        stop_nodes([node])
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--links", type=int, default=200)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print_figures(measure(Options(quick=args.quick), links=None if args.quick else args.links))
