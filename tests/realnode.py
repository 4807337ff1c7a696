"""
Real Yggdrasil nodes (the reference Go implementation, 0.5.12 and 0.5.14) as test peers.

The binaries are not part of the project: CI lays them read-only in C{<checkout>/../shared/bin}
(see its README). L{bin_dir} finds them (C{$AXL_YGG_BIN} first, then C{../shared/bin} beside the
checkout, then beside the main checkout when this is a git worktree); a test that needs them calls
L{require}, which skips with the reason when they are missing.

A L{RealNode} runs one C{yggdrasil -useconffile} process with no TUN (C{IfName: "none"}), no
multicast, its admin socket on a free C{127.0.0.1} port (spec/yggdrasil-extras.md section 1), and
its config and log in a temp dir. Every node a test starts is killed by PID in that test's cleanup
(L{RealNode.stop} is idempotent), so a failing test leaves no process behind::

    node = RealNode(self, "0.5.14", listen=["tls://127.0.0.1:0"])
    node.start()                      # returns once the admin socket answers
    node.admin("getPeers")            # the C{response} member, or AdminError
    yield node.admin_async("debug_remoteGetSelf", key=our_key.hex())  # from the reactor thread

C{admin} blocks (use it from plain code, benches, or tests whose nodes are other processes);
C{admin_async} runs it in the reactor's thread pool, for tests whose axl node runs in-process and
must keep answering while the real node waits on it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.vectors import shared_candidates
from tests.test_e2e_twistd import free_port

__all__ = [
    "VERSIONS",
    "AdminError",
    "RealNode",
    "bin_dir",
    "free_port",
    "require",
]

#: The versions shipped in ../shared/bin.
VERSIONS = ("0.5.12", "0.5.14")
#: How long a node may take until its admin socket answers.
START_TIMEOUT = 20.0
#: How long one admin request may take (the remote debug requests wait up to 6 s themselves).
ADMIN_TIMEOUT = 15.0


@cache
def bin_dir() -> Path | None:
    """The directory holding the yggdrasil binaries, or None when there is none."""
    for candidate in shared_candidates("bin", "AXL_YGG_BIN"):
        if (candidate / f"yggdrasil-{VERSIONS[-1]}").exists():
            return candidate
    return None


_copies: dict[str, str] = {}


def require(program: str = "yggdrasil", version: str = VERSIONS[-1]) -> str:
    """
    The path of an executable C{program-version} (C{yggdrasil} or C{yggdrasilctl}); skips the
    calling test when the binaries are missing. A copy without its run bit is copied once to a
    temp dir and made executable there.
    """
    where = bin_dir()
    if where is None:
        raise SkipTest(
            "real yggdrasil binaries not found (../shared/bin beside the checkout); set AXL_YGG_BIN"
        )
    path = where / f"{program}-{version}"
    if not path.exists():
        raise SkipTest(f"{path} not found")
    if os.access(path, os.X_OK):
        return str(path)
    name = path.name
    if name not in _copies:
        tmp = tempfile.mkdtemp(prefix="axl-ygg-bin-")
        copy = os.path.join(tmp, name)
        shutil.copyfile(path, copy)
        os.chmod(copy, stat.S_IRWXU)
        _copies[name] = copy
    return _copies[name]


class AdminError(Exception):
    """The admin socket answered C{status: "error"} (the message is its C{error})."""


def admin_request(port: int, request: str, timeout: float = ADMIN_TIMEOUT, **arguments: str) -> Any:
    """
    One admin request to C{127.0.0.1:port} (spec/yggdrasil-extras.md sections 1.2-1.4): send the
    JSON object, read one JSON value back; the C{response} member.

    @raise AdminError: the answer had C{status: "error"}.
    @raise OSError: no connection, or no whole answer within C{timeout}.
    """
    body = json.dumps({"request": request, "arguments": arguments}).encode() + b"\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(body)
        decoder = json.JSONDecoder()
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError(f"admin socket closed after {len(data)} bytes: {data[:200]!r}")
            data += chunk
            try:
                answer, _ = decoder.raw_decode(data.decode("utf-8").lstrip())
            except ValueError:
                continue
            break
    if answer.get("status") != "success":
        raise AdminError(answer.get("error", repr(answer)))
    return answer.get("response")


class RealNode:
    """
    One real yggdrasil process (see the module docstring).

    @ivar key: its 32-byte public key (known once constructed).
    @ivar admin_port: its admin socket port on 127.0.0.1.
    @ivar listen: its listen URIs with the ports filled in (C{:0} becomes a free port).
    @ivar config: the config it runs with (written at L{start}).
    """

    def __init__(
        self,
        test: SynchronousTestCase | None,
        version: str = VERSIONS[-1],
        listen: list[str] | None = None,
        peers: list[str] | None = None,
        private_key: str | None = None,
        directory: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """
        @param test: the test whose cleanup stops the node (None: the caller stops it).
        @param listen: listen URIs; a port C{0} is replaced by a free port.
        @param private_key: 128 hex digits; a fresh key when None.
        @param directory: where the config and log go (a new temp dir when None, removed at stop).
        @param extra: more config keys.
        """
        self.version = version
        self.binary = require("yggdrasil", version)
        self._own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="axl-ygg-")
        if test is not None:
            test.addCleanup(self.stop)
        generated = subprocess.run(
            [self.binary, "-genconf", "-json"], capture_output=True, check=True, timeout=30
        )
        config: dict[str, Any] = json.loads(generated.stdout)
        if private_key is not None:
            config["PrivateKey"] = private_key
        self.key = bytes.fromhex(config["PrivateKey"])[32:]
        self.admin_port = free_port()
        self.listen = [_fill_port(uri) for uri in listen or []]
        config.update(
            {
                "IfName": "none",
                "AdminListen": f"tcp://127.0.0.1:{self.admin_port}",
                "Listen": self.listen,
                "Peers": list(peers or []),
                "MulticastInterfaces": [],
            }
        )
        config.update(extra or {})
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = os.path.join(self.dir, "yggdrasil.log")

    def __repr__(self) -> str:
        return f"<RealNode {self.version} {self.key.hex()[:8]} admin={self.admin_port}>"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self, wait: bool = True) -> None:
        """Write the config, start the process and (unless told not to) wait for L{ready}."""
        path = os.path.join(self.dir, "yggdrasil.json")
        with open(path, "w") as f:
            json.dump(self.config, f)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "-useconffile", path, "-logto", "stdout"],
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait:
            self.ready()

    def start_async(self) -> Deferred[None]:
        """L{start}, waiting for the admin socket in the reactor's thread pool."""
        self.start(wait=False)
        return deferToThread(self.ready)

    def ready(self, timeout: float = START_TIMEOUT) -> None:
        """Block until the admin socket answers C{getSelf} (or fail, showing the log)."""
        deadline = time.monotonic() + timeout
        retries = 3
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                if retries and "Admin socket failed to listen" in self.log():
                    # Its free port was taken meanwhile (tests run in parallel): another one.
                    retries -= 1
                    self.admin_port = free_port()
                    self.config["AdminListen"] = f"tcp://127.0.0.1:{self.admin_port}"
                    self.start(wait=False)
                    continue
                raise AssertionError(f"{self!r} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.admin("getSelf", timeout=2.0)
                return
            except (OSError, AdminError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self!r}: admin socket not answering:\n{self.log()}")
                time.sleep(0.05)

    def admin(self, request: str, timeout: float = ADMIN_TIMEOUT, **arguments: str) -> Any:
        """One admin request (blocking); see L{admin_request}."""
        return admin_request(self.admin_port, request, timeout, **arguments)

    def admin_async(self, request: str, **arguments: str) -> Deferred[Any]:
        """L{admin} in the reactor's thread pool, for tests with in-process nodes."""
        return deferToThread(self.admin, request, **arguments)

    def ctl(self, *args: str) -> Any:
        """Run this version's C{yggdrasilctl -json} against the node; its decoded output."""
        ctl = require("yggdrasilctl", self.version)
        done = subprocess.run(
            [ctl, "-endpoint", f"tcp://127.0.0.1:{self.admin_port}", "-json", *args],
            capture_output=True,
            timeout=ADMIN_TIMEOUT,
        )
        if done.returncode != 0:
            raise AdminError(done.stderr.decode() or done.stdout.decode())
        return json.loads(done.stdout)

    def peer_keys(self) -> list[bytes]:
        """Keys of its peers whose links are up."""
        return [bytes.fromhex(p["key"]) for p in self.admin("getPeers")["peers"] if p["up"] and p["key"]]

    def root(self) -> bytes:
        """The root of its own parent chain, from C{getTree} (stale entries ignored)."""
        entries = {e["key"]: e["parent"] for e in self.admin("getTree")["tree"]}
        key = self.key.hex()
        seen = set()
        while key in entries and entries[key] != key and key not in seen:
            seen.add(key)
            key = entries[key]
        return bytes.fromhex(key)

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-8000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL), by PID; remove its temp dir. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def _fill_port(uri: str) -> str:
    """C{tls://127.0.0.1:0} -> the same with a free port."""
    if uri.endswith(":0"):
        return f"{uri[:-2]}:{free_port()}"
    return uri
