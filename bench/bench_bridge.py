"""
The whole-node benchmark: three twistd nodes on loopback, X -> relay -> Y (the relay listens; X
and Y peer to it), a fake MCP router behind Y, and a client (this process) that talks to the
bridges over keep-alive HTTP connections (L{bench.nodes.HTTP}).

 - first message: the first C{/send} X->Y once both links are up (lookup, session, overlay TCP
   connect), until it is answered 200;
 - latency: a 100-byte C{/send} on X until Y's C{/recv} returns it, one at a time (p50, p95);
 - MCP: C{/mcp} round trips from X to Y's fake service (p50);
 - bulk: 1 MiB C{/send}s X->Y, 8 in flight, while Y's C{/recv} is drained, until all are there;
   then each node's RSS;
 - rate: 8 concurrent senders, each sending 1 KiB messages one after another (a C{/send} waits
   for its 200), while one client drains Y's C{/recv}; every message is checked to arrive once
   and in order per sender. Two rounds; the RSS growth between them shows whether anything
   grows with the number of messages.

With C{--profile DIR} each node runs under cProfile (twistd C{--profiler=cprofile}); the stats
go to C{DIR/<node>.prof} and their top is printed at the end.

Run: python bench/bench_bridge.py [--quick] [--profile DIR]   (or: python -m bench --only bridge)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import Figure, Options, benchmark, run_standalone  # noqa: E402
from bench.nodes import HTTP, Node, free_port, launch_node, print_profiles, stop_nodes, wait_ready  # noqa: E402

SENDERS = 8

ROUTER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # one write per response, no Nagle/delayed-ACK stalls
    wbufsize = 65536
    def log_message(self, *a): pass
    def do_POST(self):
        data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps({"response": {"jsonrpc": "2.0", "id": data["request"].get("id"), "result": {}}, "error": None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(len(ordered) * p), len(ordered) - 1)]


def run_threads(targets: list[threading.Thread]) -> None:
    for t in targets:
        t.start()
    for t in targets:
        t.join()


class Drainer(threading.Thread):
    """Takes C{count} messages from a node's C{/recv}, handing each to C{check}."""

    def __init__(self, api: int, count: int, check=None) -> None:
        super().__init__(daemon=True)
        self.api, self.count, self.check = api, count, check
        self.bytes = 0
        self.error: BaseException | None = None
        self.done_at = 0.0

    def run(self) -> None:
        try:
            with HTTP(self.api) as http:
                got = 0
                while got < self.count:
                    code, _, body = http.request("GET", "/recv?wait=30")
                    if code == 200:
                        got += 1
                        self.bytes += len(body)
                        if self.check is not None:
                            self.check(body)
                    elif code != 204:
                        raise RuntimeError(f"/recv answered {code}: {body!r}")
            self.done_at = time.perf_counter()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            self.error = e


def send_many(api: int, dest: dict[str, str], payloads, errors: list[BaseException]) -> None:
    """POST each payload to C{/send}, one after another."""
    try:
        with HTTP(api) as http:
            for payload in payloads:
                code, _, body = http.request("POST", "/send", payload, dest)
                if code != 200:
                    raise RuntimeError(f"/send answered {code}: {body!r}")
    except BaseException as e:  # noqa: BLE001
        errors.append(e)


def rate_round(x: Node, y: Node, dest: dict[str, str], per_sender: int) -> float:
    """8 concurrent senders of 1 KiB messages; checks once and in order per sender; msgs/s."""
    next_seq = [0] * SENDERS
    problems: list[str] = []

    def check(body: bytes) -> None:
        sender, seq = int(body[:2]), int(body[2:10])
        if seq != next_seq[sender]:
            problems.append(f"sender {sender}: got #{seq}, expected #{next_seq[sender]}")
        next_seq[sender] = seq + 1

    drainer = Drainer(y.api, SENDERS * per_sender, check)
    errors: list[BaseException] = []
    senders = [
        threading.Thread(target=send_many, args=(
            x.api, dest, [b"%02d%08d" % (s, i) + b"." * 1014 for i in range(per_sender)], errors))
        for s in range(SENDERS)
    ]  # fmt: skip
    start = time.perf_counter()
    drainer.start()
    run_threads(senders)
    drainer.join(120)
    if errors:
        raise errors[0]
    if drainer.error is not None or drainer.is_alive():
        raise RuntimeError(f"draining /recv failed: {drainer.error or 'timed out'}")
    if problems:
        raise RuntimeError(f"messages lost, repeated or out of order: {problems[:5]}")
    if next_seq != [per_sender] * SENDERS:
        raise RuntimeError(f"messages missing: {next_seq}")
    return SENDERS * per_sender / (drainer.done_at - start)


@benchmark("bridge", "three twistd nodes X → relay → Y on loopback, a client on X's and Y's bridges", profiles=True)
def measure(opts: Options) -> list[Figure]:
    quick = opts.quick
    n_latency, n_mcp, n_bulk, per_sender = (50, 30, 16, 100) if quick else (300, 200, 64, 500)
    workdir = tempfile.mkdtemp(prefix="axl-bench-")
    nodes: list[Node] = []
    router = None
    figures: list[Figure] = []
    try:
        router_port = free_port()
        router = subprocess.Popen([sys.executable, "-c", ROUTER, str(router_port)])
        listen = f"tls://127.0.0.1:{free_port()}"
        relay = launch_node(workdir, "relay", {"Listen": [listen]}, opts.profile)
        x = launch_node(workdir, "x", {"Peers": [listen]}, opts.profile)
        y = launch_node(workdir, "y", {"Peers": [listen], "router_addr": "http://127.0.0.1",
                                        "router_port": router_port}, opts.profile)  # fmt: skip
        nodes = [relay, x, y]
        for n in nodes:
            wait_ready(workdir, n)
        cx, cy, crelay = HTTP(x.api), HTTP(y.api), HTTP(relay.api)
        key_y = json.loads(cy.request("GET", "/topology")[2])["our_public_key"]
        dest = {"X-Destination-Peer-Id": key_y}
        deadline = time.monotonic() + 60
        while len(json.loads(crelay.request("GET", "/topology")[2])["peers"]) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("X and Y did not peer with the relay")
            time.sleep(0.05)

        # First message to a new peer.
        attempts = 0
        start = time.perf_counter()
        while True:
            attempts += 1
            code, _, body = cx.request("POST", "/send", b"first", dest)
            if code == 200:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no route X->Y: {code} {body!r}")
            time.sleep(0.05)
        first = (time.perf_counter() - start) * 1000
        assert cy.request("GET", "/recv?wait=30")[2] == b"first"
        opts.log(f"first message: {first:.1f} ms, {attempts} attempt(s)")
        figures.append(Figure("bridge.first_send", "first /send to a new peer (lookup, session, TCP connect)",
                              first, "ms", better="lower"))

        # Latency.
        small = b"x" * 100
        lat = []
        for _ in range(n_latency):
            t = time.perf_counter()
            assert cx.request("POST", "/send", small, dest)[0] == 200
            assert cy.request("GET", "/recv?wait=30")[2] == small
            lat.append((time.perf_counter() - t) * 1000)
        figures += [
            Figure("bridge.latency_p50", "100 B /send on X until Y's /recv returns it, p50",
                   statistics.median(lat), "ms", better="lower", target=1.5),
            Figure("bridge.latency_p95", "100 B /send on X until Y's /recv returns it, p95",
                   percentile(lat, 0.95), "ms", better="lower"),
        ]

        # MCP.
        rpc = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}).encode()
        mcp = []
        for _ in range(n_mcp):
            t = time.perf_counter()
            code, _, body = cx.request("POST", f"/mcp/{key_y}/svc", rpc, {"Content-Type": "application/json"})
            assert code == 200, (code, body)
            mcp.append((time.perf_counter() - t) * 1000)
        figures.append(Figure("bridge.mcp_p50", "/mcp round trip X → Y's MCP service, p50",
                              statistics.median(mcp), "ms", better="lower", target=4.0))

        # Bulk.
        chunk = os.urandom(1024 * 1024)
        drainer = Drainer(y.api, n_bulk)
        errors: list[BaseException] = []
        senders = [threading.Thread(target=send_many, args=(x.api, dest, [chunk] * (n_bulk // SENDERS), errors))
                   for _ in range(SENDERS)]
        t0 = time.perf_counter()
        drainer.start()
        run_threads(senders)
        drainer.join(120)
        if errors or drainer.error or drainer.bytes != n_bulk * len(chunk):
            raise RuntimeError(f"bulk failed: {errors or drainer.error}, {drainer.bytes} bytes")
        bulk = n_bulk / (drainer.done_at - t0)
        rss = {n.name: n.rss_mb() for n in nodes}
        opts.log("RSS after bulk: " + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items()))
        figures += [
            Figure("bridge.bulk", f"bulk: {n_bulk} × 1 MiB /send X → Y, {SENDERS} in flight",
                   bulk, "MiB/s", target=100),
            Figure("bridge.rss_after_bulk", "largest node RSS after the bulk run",
                   max(rss.values()), "MB", better="lower", target=70),
        ]

        # Rate, twice: the second round also shows whether memory grows with messages.
        r1 = rate_round(x, y, dest, per_sender)
        before = {n.name: n.rss_mb() for n in nodes}
        r2 = rate_round(x, y, dest, per_sender)
        growth = max(n.rss_mb() - before[n.name] for n in nodes)
        opts.log(f"rate rounds: {r1:.0f}, {r2:.0f} msgs/s; RSS growth in round 2: {growth:.2f} MB")
        figures += [
            Figure("bridge.rate_1k", f"1 KiB /send → /recv, {SENDERS} concurrent senders "
                   "(each delivered once, in order)", (r1 + r2) / 2, "msgs/s", target=2000),
            Figure("bridge.rss_growth", f"largest node RSS growth over {SENDERS * per_sender} more 1 KiB messages",
                   growth, "MB", better="lower"),
        ]
        for c in (cx, cy, crelay):
            c.close()
    finally:
        stop_nodes(nodes)
        if router is not None:
            router.terminate()
            router.wait()
    if opts.profile:
        print_profiles(nodes)
    return figures


if __name__ == "__main__":
    run_standalone(measure)
