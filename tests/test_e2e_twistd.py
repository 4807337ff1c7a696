# -*- test-case-name: tests.test_e2e_twistd -*-
"""
End-to-end tests: real C{twistd} processes on 127.0.0.1 (spec/axl-node.md sections 1-3).

Each test starts C{twistd -n axl ...} or C{twistd -ny axl.tac} as a subprocess of this checkout,
waits (bounded) for its log lines, talks HTTP to its bridge, and stops it; every process is killed
in cleanup if a test fails half-way.
"""

from __future__ import annotations

import base64
import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

import axl
from axl.crypto.address import addr_for_key, format_address
from tests.vectors import keys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(axl.__file__)))
TAC = os.path.join(ROOT, "axl.tac")
DATA = os.path.join(os.path.dirname(__file__), "data")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
TWISTD = "from twisted.scripts.twistd import run; run()"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    """C{n} different TCP ports free on 127.0.0.1 right now (two L{free_port} calls may agree)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()



def pem_of_seed(seed: bytes) -> bytes:
    der = bytes.fromhex("302e020100300506032b657004220420") + seed
    return b"-----BEGIN PRIVATE KEY-----\n" + base64.encodebytes(der) + b"-----END PRIVATE KEY-----\n"


class Twistd:
    """One twistd subprocess, with its output collected."""

    def __init__(self, test: SynchronousTestCase, args: list[str], cwd: str, env: dict[str, str] | None = None):
        environ = {k: v for k, v in os.environ.items() if k != "AXL_CONFIG"}
        environ["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [environ.get("PYTHONPATH")] if p])
        environ.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-c", TWISTD, "-n", "--pidfile=", *args],
            cwd=cwd, env=environ, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.out = b""
        self.err = b""
        test.addCleanup(self.kill)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=STOP_TIMEOUT)

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """Read stdout until a line matches C{pattern} (or fail when the process ends or time runs out)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while True:
                match = regex.search(self.out.decode("utf-8", "replace"))
                if match:
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out waiting for {pattern!r}; output so far:\n{self.out.decode()}")
                if sel.select(remaining):
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        raise AssertionError(
                            f"twistd ended before {pattern!r}:\n{self.out.decode()}\n{self.proc.stderr.read().decode()}"  # type: ignore[union-attr]
                        )
                    self.out += chunk

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send C{sig} and wait (bounded) for the exit status."""
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=STOP_TIMEOUT)
        self.out += out
        self.err += err
        return self.proc.returncode

    def finish(self) -> int:
        """Wait (bounded) for a process that should end by itself."""
        out, err = self.proc.communicate(timeout=START_TIMEOUT)
        self.out += out
        self.err += err
        return self.proc.returncode


def get_topology(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/topology", timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())  # type: ignore[no-any-return]


class TwistdTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.mkdir(self.dir)

    def write(self, name: str, data: bytes | str, mode: int = 0o600) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(path, mode)
        return path

    def config(self, obj: dict[str, Any], name: str = "c.json") -> str:
        return self.write(name, json.dumps(obj))

    def start(self, name: str, config: dict[str, Any]) -> tuple[Twistd, int]:
        """Start node C{name} (config file C{<name>.json}, a free bridge port) and wait for it."""
        port = free_port()
        self.config({**config, "api_port": port}, f"{name}.json")
        proc = Twistd(self, ["axl", "--config", f"{name}.json"], cwd=self.dir)
        proc.wait_for(rf"Listening on 127\.0\.0\.1:{port}\b")
        return proc, port

    def assert_clean_failure(self, proc: Twistd, line: str) -> None:
        """The process exited 1 with exactly C{line} on stderr and no traceback anywhere."""
        status = proc.finish()
        self.assertEqual(status, 1, proc.err)
        self.assertEqual(proc.err.decode().splitlines(), [line])
        self.assertNotIn(b"Traceback", proc.out + proc.err)
        self.assertNotIn(b"Listening on", proc.out)


class RunningNodeTests(TwistdTestCase):
    """Nodes that start, answer /topology and stop cleanly."""

    def test_openssl_key(self) -> None:
        """
        With an openssl-made PEM, twistd -n axl --config logs and serves the public key
        `openssl pkey -pubout` reports and its derived address; SIGTERM exits 0 within 5 s.
        """
        openssl = shutil.which("openssl")
        if openssl is None:
            raise self.skipTest("no openssl binary")  # type: ignore[misc]
        key = os.path.join(self.dir, "private.pem")
        subprocess.run([openssl, "genpkey", "-algorithm", "ed25519", "-out", key], check=True, timeout=30)
        der = subprocess.run(
            [openssl, "pkey", "-in", key, "-pubout", "-outform", "DER"], check=True, capture_output=True, timeout=30
        ).stdout
        expected = der[-32:].hex()
        port = free_port()
        self.config({"PrivateKeyPath": "private.pem", "api_port": port})
        proc = Twistd(self, ["axl", "--config", "c.json"], cwd=self.dir)
        logged = proc.wait_for(r"Our Public Key: ([0-9a-f]{64})").group(1)
        proc.wait_for(rf"Listening on 127\.0\.0\.1:{port}\b")
        topo = get_topology(port)
        address = format_address(addr_for_key(bytes.fromhex(expected)))
        self.assertEqual(logged, expected)
        tree = topo.pop("tree")
        self.assertEqual(topo, {"our_ipv6": address, "our_public_key": expected, "peers": []})
        # Alone, the node is its own tree root: one entry, its own parent.
        self.assertEqual([(e["public_key"], e["parent"]) for e in tree], [(expected, expected)])
        self.assertIn(f"Our IPv6: {address}", proc.out.decode())
        self.assertEqual(proc.stop(signal.SIGTERM), 0)
        self.assertNotIn(b"Traceback", proc.out + proc.err)

    def test_vector_key(self) -> None:
        """
        The PEM of vector key A gives the address the vectors predict; --listen is reported; the
        log lines come in AXL's order after binding; SIGINT exits 0.
        """
        vector = keys()["A"]
        self.write("a.pem", pem_of_seed(bytes.fromhex(vector["seed"])))
        port = free_port()
        self.config({"PrivateKeyPath": "a.pem", "api_port": port})
        proc = Twistd(self, ["axl", "--config", "c.json", "--listen", "tls://127.0.0.1:0"], cwd=self.dir)
        proc.wait_for(rf"Listening on 127\.0\.0\.1:{port}\b")
        topo = get_topology(port)
        self.assertEqual((topo["our_public_key"], topo["our_ipv6"]), (vector["public_key"], vector["ipv6_address"]))
        text = proc.out.decode()
        self.assertIn("Configured listener: tls://127.0.0.1:0", text)
        order = [text.index(f"Our Public Key: {vector['public_key']}"), text.index(f"Our IPv6: {vector['ipv6_address']}"),
                 text.index(f"Listening on 127.0.0.1:{port}")]
        self.assertEqual(order, sorted(order))
        self.assertEqual(proc.stop(signal.SIGINT), 0)

    def test_tac_with_local_config(self) -> None:
        """twistd -ny axl.tac reads ./node-config.json (here with PrivateKey B) and serves /topology."""
        vector = keys()["B"]
        port = free_port()
        self.config({"PrivateKey": vector["private_key_64"], "api_port": port}, "node-config.json")
        proc = Twistd(self, ["-y", TAC], cwd=self.dir)
        proc.wait_for(rf"Listening on 127\.0\.0\.1:{port}\b")
        self.assertEqual(get_topology(port)["our_ipv6"], vector["ipv6_address"])
        self.assertIn("Loaded node config from node-config.json", proc.out.decode())
        self.assertEqual(proc.stop(), 0)

    def test_tac_with_environment(self) -> None:
        """twistd -ny axl.tac prefers $AXL_CONFIG; without a key it runs on an ephemeral one and says so."""
        port = free_port()
        path = self.config({"api_port": port}, "elsewhere.json")
        self.config({"api_port": "not used"}, "node-config.json")
        proc = Twistd(self, ["-y", TAC], cwd=self.dir, env={"AXL_CONFIG": path})
        proc.wait_for(rf"Listening on 127\.0\.0\.1:{port}\b")
        topo = get_topology(port)
        self.assertEqual(topo["our_ipv6"], format_address(addr_for_key(bytes.fromhex(topo["our_public_key"]))))
        self.assertIn("will change on restart", proc.out.decode())
        self.assertEqual(proc.stop(), 0)


class FailingStartTests(TwistdTestCase):
    """Starts that must fail with status 1 and one clear line."""

    def test_missing_config(self) -> None:
        """--config naming a missing file exits 1, naming the file."""
        proc = Twistd(self, ["axl", "--config", "nope.json"], cwd=self.dir)
        self.assert_clean_failure(proc, "axl: error: nope.json: config file not found")

    def test_bad_value(self) -> None:
        """A wrong-typed value exits 1, naming the file and the key."""
        self.config({"api_port": "9002"})
        proc = Twistd(self, ["axl", "--config", "c.json"], cwd=self.dir)
        self.assert_clean_failure(proc, "axl: error: c.json: key 'api_port' must be an integer, got a string \"9002\"")

    def test_bad_json(self) -> None:
        """JSON with an HJSON comment exits 1 with line and column."""
        self.write("c.json", '{\n  // no\n}')
        proc = Twistd(self, ["axl", "--config", "c.json"], cwd=self.dir)
        self.assert_clean_failure(
            proc,
            "axl: error: c.json: invalid JSON at line 2, column 3: Expecting property name enclosed in double "
            "quotes (comments are not allowed: the file must be plain JSON, not HJSON)",
        )

    def test_missing_key_file(self) -> None:
        """A missing PrivateKeyPath exits 1, naming the key file and how to create it."""
        self.config({"PrivateKeyPath": "private.pem"})
        proc = Twistd(self, ["axl", "--config", "c.json"], cwd=self.dir)
        key = os.path.join(self.dir, "private.pem")
        self.assert_clean_failure(
            proc,
            f"axl: error: c.json: PrivateKeyPath {key} does not exist; create one with `axl keygen {key}` "
            f"or `openssl genpkey -algorithm ed25519 -out {key}`",
        )

    def test_wrong_key_type(self) -> None:
        """An RSA key file exits 1, naming the file, the key type and how to create a key."""
        key = os.path.join(self.dir, "rsa.pem")
        shutil.copy(os.path.join(DATA, "rsa-pkcs8.pem"), key)
        self.config({"PrivateKeyPath": "rsa.pem"})
        proc = Twistd(self, ["axl", "--config", "c.json"], cwd=self.dir)
        self.assert_clean_failure(
            proc,
            f"axl: error: c.json: PrivateKeyPath {key} holds an RSA key, but the node key must be ed25519; "
            f"create one with `axl keygen {key}` or `openssl genpkey -algorithm ed25519 -out {key}`",
        )

    def test_bad_listen_flag(self) -> None:
        """A malformed --listen URI exits 1, naming the option."""
        proc = Twistd(self, ["axl", "--listen", "0.0.0.0:9001"], cwd=self.dir)
        self.assert_clean_failure(proc, "axl: error: --listen '0.0.0.0:9001' is not a URI such as tls://host:port")

    def test_port_taken(self) -> None:
        """A bridge port already in use exits 1, naming the address and the config keys."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            self.config({"api_port": port})
            proc = Twistd(self, ["axl", "--config", "c.json"], cwd=self.dir)
            self.assert_clean_failure(
                proc,
                f"axl: error: cannot listen on 127.0.0.1:{port} for the HTTP bridge (address already in use); "
                "set another api_port or bridge_addr in c.json",
            )
