"""
Simulation at scale (issue 19, item 4): N routers (default 1000) in one process, in a random
connected graph (a random tree plus N/2 extra links, 1 ms per link), all started at once on a
simulated clock (L{axl.mesh.sim.SimNetwork}). Prints:

 - convergence: simulated seconds until every node's own root is the lowest key, and the wall
   time and CPU it took;
 - per-node memory (RSS growth of this process / N) and CPU per received announce;
 - first delivery between random pairs (never contacted before; simulated ms until the packet
   arrives, no re-sends) and path stretch (hops taken / shortest hops).

Run: python bench/bench_mesh_sim.py [--nodes N] [--pairs P] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import Figure, Options, benchmark  # noqa: E402

from axl.mesh.sim import SimNetwork  # noqa: E402
from axl.mesh.wire import FRAME_ANNOUNCE, FRAME_TRAFFIC  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@benchmark("mesh_sim", "simulated routers in one process (1,000; --quick: 200), random graph, 1 ms per link")
def measure(opts: Options) -> list[Figure]:
    n = 200 if opts.quick else 1000
    r = simulate(argparse.Namespace(nodes=n, pairs=50 if opts.quick else 200, seed=1, limit=120.0))
    return [
        Figure("mesh_sim.converged", f"{n} nodes: simulated seconds to converge", r["sim"], "s", better="lower"),
        Figure("mesh_sim.announce_cpu", f"{n} nodes: CPU per announce received", r["announce_us"], "µs",
               better="lower"),
        Figure("mesh_sim.kib_per_node", f"{n} nodes: memory per node", r["kib_per_node"], "KiB", better="lower"),
        Figure("mesh_sim.first_median", f"{n} nodes: first delivery between random pairs, median (simulated)",
               r["first_median_ms"], "ms", better="lower"),
        Figure("mesh_sim.stretch", f"{n} nodes: path stretch, mean", r["stretch"], "×", better="lower"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=float, default=120.0, help="simulated seconds at most")
    simulate(parser.parse_args())


def simulate(args: argparse.Namespace) -> dict[str, float]:
    """Build, converge and probe the network; print and return the figures."""
    base = rss_mb()
    net = SimNetwork(seed=args.seed, latency=0.001)
    nodes = net.random_graph(args.nodes, args.nodes // 2)
    built = rss_mb()
    wall0, cpu0 = time.perf_counter(), cpu_s()
    sim = 0.0
    while not net.converged():
        if sim > args.limit:
            raise SystemExit(f"not converged after {args.limit} simulated s")
        net.advance(0.25)
        sim += 0.25
    wall, cpu = time.perf_counter() - wall0, cpu_s() - cpu0
    announces = net.frames[FRAME_ANNOUNCE]
    print(
        f"{args.nodes} nodes, {len(net.wires)} links: converged after {sim:.2f} simulated s "
        f"({wall:.1f} s wall, {cpu:.1f} s CPU); {announces} announces received, "
        f"{cpu / max(1, announces) * 1e6:.0f} us CPU per announce (all work included)",
        flush=True,
    )
    net.advance(5.0)  # let the filters settle
    after = rss_mb()
    print(
        f"memory: {(after - base) / args.nodes * 1024:.0f} KiB per node "
        f"(RSS {base:.0f} MB empty, {built:.0f} MB built, {after:.0f} MB converged)",
        flush=True,
    )
    firsts, stretch, lost = [], [], 0
    rng = net.rng
    for _ in range(args.pairs):
        a, b = rng.sample(nodes, 2)
        before = len(b.received)
        start = net.clock.seconds()
        t_frames = net.frames[FRAME_TRAFFIC]
        net._event(lambda a=a, b=b: a.router.send(b.public_key, b"first"))
        waited = 0.0
        while len(b.received) == before and waited < 5.0:
            net.advance(0.001)
            waited += 0.001
        if len(b.received) == before:
            lost += 1
            continue
        firsts.append(net.clock.seconds() - start)
        hops = net.frames[FRAME_TRAFFIC] - t_frames
        shortest = net.shortest_hops(a, b)
        if shortest > 0:
            stretch.append(hops / shortest)
    print(
        f"first delivery over {args.pairs} random pairs: {lost} not delivered within 5 s; "
        f"median {statistics.median(firsts) * 1000:.1f} ms, max {max(firsts) * 1000:.1f} ms "
        f"(simulated, 1 ms per link)",
        flush=True,
    )
    print(
        f"stretch: mean {statistics.mean(stretch):.2f}, median {statistics.median(stretch):.2f}, "
        f"max {max(stretch):.2f}",
        flush=True,
    )
    net.stop()
    return {
        "sim": sim, "announce_us": cpu / max(1, announces) * 1e6,
        "kib_per_node": (after - base) / args.nodes * 1024,
        "first_median_ms": statistics.median(firsts) * 1000, "stretch": statistics.mean(stretch),
    }  # fmt: skip


if __name__ == "__main__":
    main()
