"""
The application-layer benchmark of issue 7: three twistd nodes on loopback, X -> relay -> Y
(the relay listens; X and Y peer to it), a fake MCP router behind Y.

 - bulk: 64 x 1 MiB /send X->Y (8 calls in flight) while Y's /recv is drained, until all are
   there (MiB/s);
 - latency: 200 times a 100-byte /send X->Y until Y's /recv returns it (p50/p95 ms);
 - MCP: 100 /mcp round trips X->Y's fake service (p50 ms);
 - RSS of each node at the end.

Run: /work/venv/bin/python bench/bench_bridge.py   (needs the whole stack wired in axl.service)
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from axl.client import request as http

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = "from twisted.scripts.twistd import run; run()"
BULK_CLIENTS = 8

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])



def start_node(
    workdir: str, name: str, config: dict[str, Any]
) -> tuple[subprocess.Popen[bytes], int]:
    api = free_port()
    path = os.path.join(workdir, f"{name}.json")
    with open(path, "w") as f:
        json.dump({**config, "api_port": api}, f)
    env = {**os.environ, "PYTHONPATH": ROOT}
    with open(os.path.join(workdir, f"{name}.log"), "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "axl", "--config", path],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if http("GET", f"http://127.0.0.1:{api}/topology")[0] == 200:
                return proc, api
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"node {name} did not start; see {workdir}/{name}.log")


def wait_for_route(api_x: int, api_y: int) -> tuple[str, str, str, dict[str, str]]:
    """
    Wait (60 s at most) until a probe /send from bridge C{api_x} reaches C{api_y}'s /recv.
    Returns Y's key, the /send and /recv URLs and the destination header.
    """
    key_y = json.loads(http("GET", f"http://127.0.0.1:{api_y}/topology")[2])["our_public_key"]
    send = f"http://127.0.0.1:{api_x}/send"
    recv = f"http://127.0.0.1:{api_y}/recv?wait=30"
    dest = {"X-Destination-Peer-Id": key_y}
    deadline = time.monotonic() + 60
    while http("POST", send, b"probe", dest)[0] != 200:
        if time.monotonic() > deadline:
            raise SystemExit("no route X->Y")
        time.sleep(0.5)
    assert http("GET", recv)[2] == b"probe"
    return key_y, send, recv, dest


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate C{procs}, then kill those still running after 5 s."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    workdir = tempfile.mkdtemp(prefix="axl-bench-")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        router_port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-c", ROUTER, str(router_port)]))
        listen = f"tls://127.0.0.1:{free_port()}"
        relay, _ = start_node(workdir, "relay", {"Listen": [listen]})
        x, api_x = start_node(workdir, "x", {"Peers": [listen]})
        y, api_y = start_node(
            workdir,
            "y",
            {
                "Peers": [listen],
                "router_addr": "http://127.0.0.1",
                "router_port": router_port,
            },
        )
        procs += [relay, x, y]
        key_y, send, recv, dest = wait_for_route(api_x, api_y)

        # Bulk.
        chunk = os.urandom(1024 * 1024)
        received: list[int] = []

        def drain() -> None:
            while len(received) < 64:
                code, _, body = http("GET", recv)
                if code == 200:
                    received.append(len(body))

        t0 = time.perf_counter()
        drainer = threading.Thread(target=drain)
        drainer.start()

        def sender(n: int) -> None:
            for _ in range(n):
                code, _, body = http("POST", send, chunk, dest)
                assert code == 200, (code, body)

        # 200 means "Y's TCP acknowledged it", so keep several /send calls in flight.
        senders = [threading.Thread(target=sender, args=(64 // BULK_CLIENTS,)) for _ in range(BULK_CLIENTS)]
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        drainer.join()
        bulk = 64 / (time.perf_counter() - t0)
        assert sum(received) == 64 * len(chunk)

        # Latency.
        small = b"x" * 100
        lat = []
        for _ in range(200):
            t = time.perf_counter()
            assert http("POST", send, small, dest)[0] == 200
            assert http("GET", recv)[2] == small
            lat.append((time.perf_counter() - t) * 1000)
        lat.sort()

        # MCP.
        rpc = json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        ).encode()
        mcp = []
        for _ in range(100):
            t = time.perf_counter()
            code, _, body = http(
                "POST",
                f"http://127.0.0.1:{api_x}/mcp/{key_y}/svc",
                rpc,
                {"Content-Type": "application/json"},
            )
            assert code == 200, (code, body)
            mcp.append((time.perf_counter() - t) * 1000)

        print(f"bulk 64 x 1 MiB X->relay->Y: {bulk:.1f} MiB/s")
        print(
            f"100-byte /send until /recv: p50 {statistics.median(lat):.2f} ms, p95 {lat[int(len(lat) * 0.95)]:.2f} ms"
        )
        print(f"/mcp round trip: p50 {statistics.median(mcp):.2f} ms")
        print(
            f"RSS: X {rss_mb(x.pid):.0f} MB, relay {rss_mb(relay.pid):.0f} MB, Y {rss_mb(y.pid):.0f} MB"
        )
    finally:
        stop_all(procs)


if __name__ == "__main__":
    main()
