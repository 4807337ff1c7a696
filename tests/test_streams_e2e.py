# -*- test-case-name: tests.test_streams_e2e -*-
"""
End-to-end on loopback: three C{twistd -n axl} nodes (A listens; B and C peer to A) and a tiny
fake MCP router / A2A server (a stdlib HTTP server subprocess) behind C. Checks C{/send} B->C of
0 B, 1 B, 1 MiB and C{max_message_size} bytes (8 MiB: a streamed /send), 1000 small messages in order, a reply to
C{X-From-Peer-Id}, C{/mcp} and C{/a2a} round trips, the queue-full path (nothing lost), and a
disabled stream answering at once (and not queueing the envelope).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from tests.test_e2e_twistd import Twistd, TwistdTestCase, free_port, get_topology
from axl.client import request as http
from tests.vectors import keys

MAX = 8 * 1024 * 1024  # over the bridge's STREAM_THRESHOLD: streamed
WAIT = 40.0

FAKE_SERVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def reply(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.reply({"name": "fake agent", "caller": self.headers.get("X-From-Peer-Id")})
    def do_POST(self):
        data = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
        if self.path == "/route":
            self.reply({"response": {"jsonrpc": "2.0", "id": data["request"].get("id"),
                        "result": {"service": data["service"], "from": data["from_peer_id"]}}, "error": None})
        else:
            self.reply({"jsonrpc": "2.0", "id": data.get("id"), "result": {
                "version": self.headers.get("A2A-Version"), "caller": self.headers.get("X-From-Peer-Id")}})

server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print("ready", flush=True)
server.serve_forever()
"""




class StreamsE2ETests(TwistdTestCase):
    def start(self, name: str, config: dict[str, Any]) -> tuple[Twistd, int]:
        proc, port = super().start(name, {**config, "max_message_size": MAX})
        self.drain(proc)
        return proc, port

    @staticmethod
    def drain(proc: Twistd) -> None:
        """Keep reading the node's output (the bridge logs every request; a full pipe blocks it)."""

        def read() -> None:
            stream = proc.proc.stdout
            assert stream is not None
            while True:
                chunk = os.read(stream.fileno(), 65536)
                if not chunk:
                    return
                proc.out += chunk

        threading.Thread(target=read, daemon=True).start()

    def fake_services(self) -> int:
        port = free_port()
        script = self.write("fake.py", FAKE_SERVER)
        proc = subprocess.Popen(
            [sys.executable, script, str(port)], stdout=subprocess.PIPE
        )
        self.addCleanup(lambda: (proc.kill(), proc.wait(5)))
        assert proc.stdout is not None
        self.assertEqual(proc.stdout.readline().strip(), b"ready")
        return port

    def test_three_nodes(self) -> None:
        """/send, /recv, /mcp and /a2a across A (hub), B and C on loopback, as the issue lists."""
        services = self.fake_services()
        a, b, c = keys()["A"], keys()["B"], keys()["C"]
        listen = f"tls://127.0.0.1:{free_port()}"
        hub, _ = self.start(
            "a", {"PrivateKey": a["private_key_64"], "Listen": [listen]}
        )
        nb, api_b = self.start(
            "b", {"PrivateKey": b["private_key_64"], "Peers": [listen]}
        )
        nc, api_c = self.start(
            "c",
            {
                "PrivateKey": c["private_key_64"],
                "Peers": [listen],
                "router_addr": "http://127.0.0.1",
                "router_port": services,
                "a2a_addr": "http://127.0.0.1",
                "a2a_port": services,
            },
        )
        procs = [hub, nb, nc]
        key_b, key_c = (
            get_topology(api_b)["our_public_key"],
            get_topology(api_c)["our_public_key"],
        )
        send_b = f"http://127.0.0.1:{api_b}/send"
        recv_c = f"http://127.0.0.1:{api_c}/recv"

        # Wait for the mesh: the first message that gets through.
        deadline = time.monotonic() + WAIT
        while True:
            code, _, body = http(
                "POST", send_b, b"probe", {"X-Destination-Peer-Id": key_c}
            )
            if code == 200:
                break
            if time.monotonic() > deadline:
                self.fail(
                    f"no route B->C: {code} {body!r}\n"
                    + "\n".join(p.out.decode() for p in procs)
                )
            time.sleep(0.5)
        self.assertEqual(http("GET", recv_c + "?wait=10")[2], b"probe")

        # Sizes, intact, with the full sender key.
        for size in (0, 1, 1024 * 1024, MAX):
            payload = os.urandom(size)
            code, headers, _ = http(
                "POST", send_b, payload, {"X-Destination-Peer-Id": key_c}
            )
            self.assertEqual(
                (code, headers.get("X-Sent-Bytes")), (200, str(size)), size
            )
            code, headers, body = http("GET", recv_c + "?wait=10")
            self.assertEqual(
                (code, headers.get("X-From-Peer-Id"), body == payload),
                (200, key_b, True),
                size,
            )
        self.assertEqual(
            http("POST", send_b, b"x" * (MAX + 1), {"X-Destination-Peer-Id": key_c})[0],
            413,
        )

        # 1000 small messages in order: 10 clients, each sending 100 one after the other (each
        # /send waits for C's TCP to acknowledge, so one client alone would mostly measure the
        # receiver's delayed ACK); every client's messages must arrive in its order.
        codes: list[int] = []

        def client(c: int) -> None:
            for i in range(100):
                codes.append(
                    http(
                        "POST",
                        send_b,
                        b"%d:%d" % (c, i),
                        {"X-Destination-Peer-Id": key_c},
                    )[0]
                )

        clients = [threading.Thread(target=client, args=(c,)) for c in range(10)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(60)
        self.assertEqual(codes, [200] * 1000)
        got = [http("GET", recv_c + "?wait=10")[2] for _ in range(1000)]
        for c in range(10):
            mine = [m for m in got if m.startswith(b"%d:" % c)]
            self.assertEqual(mine, [b"%d:%d" % (c, i) for i in range(100)])

        # Reply to X-From-Peer-Id.
        self.assertEqual(
            http(
                "POST",
                f"http://127.0.0.1:{api_c}/send",
                b"pong",
                {"X-Destination-Peer-Id": key_b},
            )[0],
            200,
        )
        code, headers, body = http("GET", f"http://127.0.0.1:{api_b}/recv?wait=10")
        self.assertEqual(
            (code, body, headers.get("X-From-Peer-Id")), (200, b"pong", key_c)
        )

        # /mcp and /a2a round trips to C's fake services.
        rpc = json.dumps(
            {"jsonrpc": "2.0", "method": "tools/list", "id": 1, "params": {}}
        ).encode()
        code, _, body = http(
            "POST",
            f"http://127.0.0.1:{api_b}/mcp/{key_c}/weather",
            rpc,
            {"Content-Type": "application/json"},
        )
        self.assertEqual(
            (code, json.loads(body)["result"]),
            (200, {"service": "weather", "from": key_b}),
        )
        code, _, body = http("GET", f"http://127.0.0.1:{api_b}/a2a/{key_c}")
        self.assertEqual(
            (code, json.loads(body)), (200, {"name": "fake agent", "caller": key_b})
        )
        send = json.dumps(
            {"jsonrpc": "2.0", "method": "SendMessage", "id": 5, "params": {}}
        ).encode()
        code, _, body = http(
            "POST",
            f"http://127.0.0.1:{api_b}/a2a/{key_c}",
            send,
            {"Content-Type": "application/json"},
        )
        self.assertEqual(
            (code, json.loads(body)["result"]),
            (200, {"version": "1.0", "caller": key_b}),
        )

        # Queue full: 48 x 1 MiB is more than C's /recv queue (32 MiB) and TCP buffer hold, so
        # the later /send calls wait until C drains; nothing is lost.
        blobs = [bytes([i]) * (1024 * 1024) for i in range(48)]
        results: list[int] = []

        def push(part: list[bytes]) -> None:
            for blob in part:
                results.append(
                    http("POST", send_b, blob, {"X-Destination-Peer-Id": key_c})[0]
                )

        threads = [threading.Thread(target=push, args=(blobs[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(3)
        self.assertLess(len(results), 48, "a full queue should hold some senders back")
        arrived = set()
        while len(arrived) < 48:
            code, _, body = http("GET", recv_c + "?wait=20")
            self.assertEqual(code, 200, f"only {len(arrived)} of 48 arrived")
            arrived.add(body[:1])
        for t in threads:
            t.join(30)
        self.assertEqual(results, [200] * 48)
        self.assertEqual(arrived, {bytes([i]) for i in range(48)})

        # B has no router: C's /mcp call to B is answered at once with an error.
        started = time.monotonic()
        code, _, body = http(
            "POST",
            f"http://127.0.0.1:{api_c}/mcp/{key_b}/weather",
            rpc,
            {"Content-Type": "application/json"},
        )
        self.assertEqual(
            (code, json.loads(body)["error"]["message"]),
            (200, "mcp not enabled on this node"),
        )
        self.assertLess(time.monotonic() - started, 2)
        # ... and its /a2a call (B has no A2A server) with 502 and a JSON-RPC error.
        started = time.monotonic()
        code, _, body = http(
            "POST", f"http://127.0.0.1:{api_c}/a2a/{key_b}", rpc, {"Content-Type": "application/json"}
        )
        self.assertEqual(
            (code, json.loads(body)["error"]["message"]), (502, "a2a not enabled on this node")
        )
        self.assertLess(time.monotonic() - started, 2)
        # Neither envelope strayed into B's /recv.
        self.assertEqual(http("GET", f"http://127.0.0.1:{api_b}/recv")[0], 204)

        for proc in procs:
            self.assertEqual(proc.stop(signal.SIGTERM), 0)
            self.assertNotIn(b"Traceback", proc.out + proc.err)
