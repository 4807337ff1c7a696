"""
Mixed-mesh benchmark (issue 19, item 3): real yggdrasil 0.5.14 nodes plus axl nodes on
127.0.0.1 in a random connected graph of degree ~3 over tls:// (L{tests.mixedmesh}; the axl nodes
run in this process on one reactor, the real ones as processes). For each size given:

 - convergence: start to every node's own root being the lowest key;
 - first delivery: C{/send} between every ordered pair of axl nodes, all first contacts (8 in
   flight), slowest and median;
 - remote requests: C{debug_remoteGetSelf} from 3 random real nodes to every axl node, answered
   (right after the sends, then again once the real nodes' filters can hold every key);
 - churn: kill the root and a quarter of the real nodes (graph kept connected), time to
   re-convergence, then first deliveries and remote requests again;
 - our nodes' RSS (this process, divided by the axl node count) and CPU seconds.

Needs ../shared/bin (or AXL_YGG_BIN). Run: python bench/bench_mixed_mesh.py [SIZE ...]
(default 48; one axl node per 6, at least 2).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from twisted.internet import task  # noqa: E402

from bench_mesh_sim import cpu_s, rss_mb  # noqa: E402

from tests.mixedmesh import MixedMesh  # noqa: E402


async def phase(mesh: MixedMesh, label: str) -> None:
    sends = await mesh.send_all_pairs()
    times = sorted(t for status, t in sends.values() if status == 200)
    failed = len(sends) - len(times)
    slowest = max(times) if times else float("nan")
    print(
        f"  {label}: /send {len(sends)} pairs, {failed} failed; first delivery median "
        f"{statistics.median(times) * 1000:.1f} ms, slowest {slowest * 1000:.1f} ms",
        flush=True,
    )
    reals = sorted(mesh.real)
    sources = mesh.rng.sample(reals, min(3, len(reals)))
    asks = await mesh.remote_get_self(sources)
    bad = {k: v for k, v in asks.items() if v[0] != "ok"}
    slow = max(t for _, t in asks.values()) if asks else 0.0
    print(
        f"  {label}: debug_remoteGetSelf {len(asks)} asked, {len(bad)} unanswered "
        f"(slowest {slow * 1000:.0f} ms){'; ' + repr(sorted(bad.items())[:3]) if bad else ''}",
        flush=True,
    )
    waited = await mesh.settle_filters_fully()
    asks = await mesh.remote_get_self(sources)
    bad = {k: v for k, v in asks.items() if v[0] != "ok"}
    print(
        f"  {label}: the same {len(asks)} again {waited:.0f} s later (filters settled): "
        f"{len(bad)} unanswered{'; ' + repr(sorted(bad.items())[:3]) if bad else ''}",
        flush=True,
    )


async def run(size: int, seed: int) -> None:
    n_axl = max(2, size // 6)
    n_real = size - n_axl
    print(f"{size} nodes: {n_real} real yggdrasil 0.5.14 + {n_axl} axl", flush=True)
    mesh = MixedMesh(n_real, n_axl, seed=seed)
    cpu0 = cpu_s()
    start = time.monotonic()
    try:
        await mesh.start()
        started = time.monotonic() - start
        took = await mesh.converge(120)
        print(
            f"  converged {started + took:.1f} s after start ({started:.1f} s to start the "
            f"processes); RSS {rss_mb():.0f} MB for {n_axl} axl nodes "
            f"({rss_mb() / n_axl:.1f} MB each)",
            flush=True,
        )
        await mesh.settle_filters()
        await phase(mesh, "before churn")
        victims = mesh.churn_victims()
        t0 = time.monotonic()
        for i in victims:
            d = mesh.stop_node(i)
            if d is not None:
                await d
        took = await mesh.converge(120)
        print(
            f"  killed the root and {len(victims) - 1} real nodes: re-converged in "
            f"{time.monotonic() - t0:.1f} s",
            flush=True,
        )
        await mesh.settle_filters()
        await phase(mesh, "after churn")
        cpu = cpu_s() - cpu0
        print(
            f"  our process: RSS {rss_mb():.0f} MB ({rss_mb() / n_axl:.1f} MB per axl node), "
            f"CPU {cpu:.1f} s over {time.monotonic() - start:.0f} s "
            f"({cpu / n_axl:.2f} s per axl node)",
            flush=True,
        )
    finally:
        await mesh.stop()


async def main(reactor: object, sizes: list[int], seed: int) -> None:
    for size in sizes:
        await run(size, seed)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("sizes", type=int, nargs="*", default=[48])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    task.react(lambda r: __import__("twisted.internet.defer").internet.defer.ensureDeferred(
        main(r, args.sizes, args.seed)))
