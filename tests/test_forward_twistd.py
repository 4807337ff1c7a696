# -*- test-case-name: tests.test_forward_twistd -*-
"""
The forwards from C{twistd} on loopback, as the README shows them: node A exposes a local web
server with C{--remote-tcp}, node B runs C{--socks} and C{--local-tcp}; curl (when installed)
and a plain socket reach A's server through B. A bad spec and a taken port stop the start with
exit status 1 and one line naming them.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import struct
import subprocess
import threading
import time

from tests.test_e2e_twistd import Twistd, TwistdTestCase, free_port
from tests.vectors import identity, keys


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello through the mesh"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def private_key(name: str) -> str:
    entry = keys()[name]
    return str(entry["seed"]) + identity(name).public_key.hex()


class TwistdForwardTests(TwistdTestCase):
    """twistd axl with forward options."""

    def web_server(self) -> int:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return int(server.server_address[1])

    def node(self, name: str, config: dict[str, object], *args: str) -> Twistd:
        api = free_port()
        self.config({**config, "PrivateKey": private_key(name), "api_port": api}, f"{name}.json")
        proc = Twistd(self, ["axl", "--config", f"{name}.json", *args], cwd=self.dir)
        proc.wait_for(rf"Listening on 127\.0\.0\.1:{api}\b")
        return proc

    def test_socks_and_local_tcp(self) -> None:
        """B's SOCKS proxy and B's local_tcp both reach the web server A exposes with --remote-tcp."""
        web = self.web_server()
        link, socks, local = free_port(), free_port(), free_port()
        a_key = identity("A").public_key.hex()
        a = self.node("A", {"Listen": [f"tls://127.0.0.1:{link}"]}, "--remote-tcp", f"80:127.0.0.1:{web}")
        a.wait_for(r"remote_tcp overlay port 80 -> 127\.0\.0\.1:\d+: listening")
        b = self.node("B", {"Peers": [f"tls://127.0.0.1:{link}"]}, "--socks", f"127.0.0.1:{socks}",
                      "--local-tcp", f"{local}:{a_key}.pk.ygg:80")  # fmt: skip
        b.wait_for(rf"socks 127\.0\.0\.1:{socks}: listening on 127\.0\.0\.1:{socks}")
        body = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            body = fetch(local)
            if body:
                break
            time.sleep(0.3)
        self.assertTrue(body.endswith(b"\r\n\r\nhello through the mesh"), body)
        s = socket.create_connection(("127.0.0.1", socks), timeout=10)
        name = f"{a_key}.pk.ygg".encode()
        s.sendall(b"\x05\x01\x00\x05\x01\x00\x03" + bytes((len(name),)) + name + struct.pack("!H", 80)
                  + b"GET / HTTP/1.0\r\n\r\n")  # fmt: skip
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        self.assertEqual(data[:4], b"\x05\x00\x05\x00")
        self.assertTrue(data.endswith(b"hello through the mesh"), data)
        if shutil.which("curl"):
            out = subprocess.run(["curl", "-sS", "--max-time", "20", "--socks5-hostname", f"127.0.0.1:{socks}",
                                  f"http://{a_key}.pk.ygg/"], capture_output=True, timeout=30)  # fmt: skip
            self.assertEqual(out.stdout, b"hello through the mesh", out.stderr)
        self.assertEqual(b.stop(), 0)
        self.assertEqual(a.stop(), 0)

    def test_bad_spec_stops_start(self) -> None:
        """A bad --local-tcp spec: exit status 1, one line naming the option and the spec."""
        self.config({}, "c.json")
        proc = Twistd(self, ["axl", "--config", "c.json", "--local-tcp", "8080:example.com:80"], cwd=self.dir)
        self.assert_clean_failure(
            proc,
            "axl: error: --local-tcp '8080:example.com:80': 'example.com' is neither an [ipv6] "
            "address in 200::/7 nor a <64 hex key>.pk.ygg name",
        )

    def test_port_in_use_stops_start(self) -> None:
        """A SOCKS port already taken: exit status 1, one line naming socks and the config file."""
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        self.addCleanup(taken.close)
        port = taken.getsockname()[1]
        self.config({"socks": f"127.0.0.1:{port}"}, "c.json")
        proc = Twistd(self, ["axl", "--config", "c.json"], cwd=self.dir)
        status = proc.finish()
        self.assertEqual(status, 1, proc.err)
        self.assertEqual(proc.err.decode().splitlines(), [
            f"axl: error: cannot listen on 127.0.0.1:{port} for socks 127.0.0.1:{port} (address already "
            "in use); change socks in c.json"])  # fmt: skip


def fetch(port: int) -> bytes:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        return b""
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except OSError:
        pass
    s.close()
    return data


