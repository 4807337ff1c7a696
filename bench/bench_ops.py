"""
Operations endpoints: the cost of answering admin requests (sans-IO, decode to envelope bytes)
and of rendering C{/metrics}, for a node with many peers and sessions.

Run: .venv/bin/python bench/bench_ops.py [peers]
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.task import Clock  # noqa: E402

from axl.admin.codec import AdminDecoder  # noqa: E402
from axl.admin.commands import AdminHandler, PathRow, PeerRow, SessionRow, TreeRow  # noqa: E402
from axl.bridge.metrics import NodeMetrics  # noqa: E402
from bench.common import Figure, Options, benchmark  # noqa: E402
from tests.test_bridge_metrics import FakeMetricsSource  # noqa: E402


def _source(n: int) -> FakeMetricsSource:
    source = FakeMetricsSource()
    keys = [hashlib.sha256(str(i).encode()).digest() for i in range(n)]
    source.peer_rows = [
        PeerRow(f"tls://10.0.{i // 256}.{i % 256}:9001", True, i % 2 == 0, k, port=i + 1, cost=1,
                bytes_recvd=i * 1000, bytes_sent=i * 900, uptime=100.0 + i, latency=0.001)
        for i, k in enumerate(keys)
    ]  # fmt: skip
    source.tree_rows = [TreeRow(k, keys[0], 1) for k in keys]
    source.path_rows = [PathRow(k, (1, 2, 3), 1) for k in keys]
    source.session_rows = [SessionRow(k, 1000, 2000, 10.0) for k in keys]
    return source


def _rate(name: str, run: Callable[[], object], seconds: float = 1.0) -> float:
    """Run C{run} for C{seconds}; print and return milliseconds per call."""
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run()
        n += 1
    elapsed = time.perf_counter() - start
    print(f"{name:44s} {n / elapsed:10.0f}/s  {elapsed / n * 1e3:8.3f} ms each")
    return elapsed / n * 1e3


def run(peers: int, seconds: float = 1.0) -> list[Figure]:
    source = _source(peers)
    handler = AdminHandler(source)
    figures = []
    for command in ("getSelf", "getPeers", "getTree", "getSessions"):
        raw = f'{{"request":"{command}","arguments":{{}}}}\n'.encode()

        def answer(raw: bytes = raw) -> object:
            [value] = AdminDecoder().feed(raw)
            return handler.answer(value)

        ms = _rate(f"admin {command} ({peers} peers), decode+answer", answer, seconds)
        figures.append(Figure(f"ops.{command}", f"admin {command}, {peers} peers, decode + answer", ms, "ms",
                              better="lower"))
    metrics = NodeMetrics(source, Clock())
    size = len(metrics.render())
    ms = _rate(f"/metrics render ({peers} peers, {size} bytes)", metrics.render, seconds)
    figures.append(Figure("ops.metrics", f"/metrics rendered, {peers} peers", ms, "ms", better="lower"))
    return figures


@benchmark("ops", "admin requests answered (sans-IO) and /metrics rendered for a node with 100 peers")
def measure(opts: Options) -> list[Figure]:
    return run(100, 0.2 if opts.quick else 1.0)


def main() -> None:
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 100)


if __name__ == "__main__":
    main()
