"""
First contact (issue 19, item 1): the first C{/send} to a never-contacted peer on a 3-node
loopback line X - L - Y of C{twistd} nodes (tls links; X and Y peer to L).

Each run starts three fresh nodes, waits until all three agree on the root (each node's own
parent chain in C{/topology}), then times at once the first C{POST /send} X -> Y (one 100-byte
message; C{200} means Y's TCP acknowledged it), and then a second one. No retries by the bench:
a first send that waits for a lookup retransmission shows up as ~1 s, 3 s, 7 s.

Run: python bench/bench_mesh_first.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from axl.client import request as http  # noqa: E402
from bench.common import Figure, Options, benchmark  # noqa: E402
from bench.nodes import free_port, stop_all  # noqa: E402
from bench.nodes import start_node_process as start_node  # noqa: E402


def topology(api: int) -> dict[str, object]:
    return json.loads(http("GET", f"http://127.0.0.1:{api}/topology")[2])  # type: ignore[no-any-return]


def own_root(topo: dict[str, object]) -> str:
    """Where the node's own parent chain ends in its C{/topology} tree."""
    parents = {e["public_key"]: e["parent"] for e in topo["tree"]}  # type: ignore[attr-defined, index]
    key = str(topo["our_public_key"])
    for _ in range(len(parents) + 1):
        parent = parents.get(key)
        if parent is None or parent == key:
            return key
        key = parent
    return key


def one_run(workdir: str) -> tuple[float, float, float]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        listen = f"tls://127.0.0.1:{free_port()}"
        t_start = time.monotonic()
        relay, api_l = start_node(workdir, "l", {"Listen": [listen]})
        x, api_x = start_node(workdir, "x", {"Peers": [listen]})
        y, api_y = start_node(workdir, "y", {"Peers": [listen]})
        procs += [relay, x, y]
        apis = (api_x, api_l, api_y)
        keys = [str(topology(a)["our_public_key"]) for a in apis]
        low = min(keys)
        deadline = time.monotonic() + 60
        while not all(own_root(topology(a)) == low for a in apis):
            if time.monotonic() > deadline:
                raise SystemExit("the line did not converge")
            time.sleep(0.01)
        converged = time.monotonic() - t_start
        dest = {"X-Destination-Peer-Id": keys[2]}
        send = f"http://127.0.0.1:{api_x}/send"
        t0 = time.perf_counter()
        code = http("POST", send, b"x" * 100, dest)[0]
        first = time.perf_counter() - t0
        assert code == 200, code
        t0 = time.perf_counter()
        code = http("POST", send, b"y" * 100, dest)[0]
        second = time.perf_counter() - t0
        assert code == 200, code
        return converged, first, second
    finally:
        stop_all(procs)


@benchmark("mesh_first", "first /send to a never-contacted peer right after the tree converged, X – L – Y twistd nodes")
def measure(opts: Options) -> list[Figure]:
    firsts = runs(1 if opts.quick else 3)
    return [
        Figure("mesh_first.median", "first /send X → Y right after convergence, median of runs",
               statistics.median(firsts) * 1000, "ms", better="lower", target=50),
        Figure("mesh_first.max", "first /send X → Y right after convergence, slowest run",
               max(firsts) * 1000, "ms", better="lower"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    firsts = runs(args.runs)
    print(
        f"first /send X->Y: median {statistics.median(firsts) * 1000:.1f} ms, "
        f"max {max(firsts) * 1000:.1f} ms over {len(firsts)} runs"
    )


def runs(count: int) -> list[float]:
    """C{count} fresh lines, each timing its first C{/send}: the seconds each took."""
    firsts = []
    for i in range(count):
        with tempfile.TemporaryDirectory(prefix="axl-bench-first-") as workdir:
            converged, first, second = one_run(workdir)
        firsts.append(first)
        print(
            f"run {i + 1}: converged after start {converged:.2f} s; "
            f"first /send {first * 1000:.1f} ms, second {second * 1000:.1f} ms",
            flush=True,
        )
    return firsts


if __name__ == "__main__":
    main()
