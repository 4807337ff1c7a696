"""
Bulk /send over each peering transport (spec/yggdrasil-extras.md sections 3-5): two twistd nodes
on loopback, A listens on the transport, B peers to it (the only link); 64 x 1 MiB /send B->A
with 8 calls in flight while A's /recv is drained, until all are there (MiB/s). tls:// is the
reference.

Run: .venv/bin/python bench/bench_transports.py [tls ws quic ...]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from axl.client import request as http  # noqa: E402
from bench.common import Figure, Options, benchmark  # noqa: E402
from bench.nodes import free_port, stop_all, wait_for_route  # noqa: E402
from bench.nodes import start_node_process as start_node  # noqa: E402
from tests.transport_helpers import free_udp_port  # noqa: E402

MESSAGES = 64
BULK_CLIENTS = 8


def bench(scheme: str, messages: int = MESSAGES) -> float:
    workdir = tempfile.mkdtemp(prefix=f"axl-bench-{scheme}-")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        port = free_udp_port() if scheme == "quic" else free_port()
        listen = f"{scheme}://127.0.0.1:{port}"
        a, api_a = start_node(workdir, "a", {"Listen": [listen]})
        procs.append(a)
        b, api_b = start_node(workdir, "b", {"Peers": [listen]})
        procs.append(b)
        _, send, recv, dest = wait_for_route(api_b, api_a)
        chunk = os.urandom(1024 * 1024)
        received: list[int] = []

        def drain() -> None:
            while len(received) < messages:
                code, _, body = http("GET", recv)
                if code == 200:
                    received.append(len(body))

        def sender(n: int) -> None:
            for _ in range(n):
                code, _, body = http("POST", send, chunk, dest)
                assert code == 200, (code, body)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=drain)]
        threads += [threading.Thread(target=sender, args=(messages // BULK_CLIENTS,)) for _ in range(BULK_CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate = messages / (time.perf_counter() - t0)
        assert sum(received) == messages * len(chunk)
        return rate
    finally:
        stop_all(procs)


@benchmark("transports", "two twistd nodes whose only link is one transport: 1 MiB /send, 8 in flight")
def measure(opts: Options) -> list[Figure]:
    # --quick: ws:// only (tls:// is what the bridge benchmark's links use).
    schemes, messages = (["ws"], 16) if opts.quick else (["tcp", "tls", "ws", "quic"], MESSAGES)
    return [Figure(f"transports.{scheme}", f"bulk {messages} × 1 MiB /send over one {scheme}:// link",
                   bench(scheme, messages), "MiB/s") for scheme in schemes]


def main() -> None:
    for scheme in sys.argv[1:] or ["tls", "ws", "quic"]:
        print(f"bulk {MESSAGES} x 1 MiB /send over one {scheme}:// link: {bench(scheme):.1f} MiB/s", flush=True)


if __name__ == "__main__":
    main()
