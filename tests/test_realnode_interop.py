# -*- test-case-name: tests.test_realnode_interop -*-
"""
More live interop with real Yggdrasil 0.5.12 and 0.5.14 (L{tests.realnode}), beyond the peering
of L{tests.test_realnode}: a link stays up past the peer timeout and keepalive period
(spec/yggdrasil-wire.md section 2), two axl nodes exchange messages only through a real node,
the real node's C{getNodeInfo} of us is answered (spec/yggdrasil-extras.md section 1.6), and the
Linux kernel's TCP, behind a real node's TUN in a network namespace, reaches our message port.
Everything runs on 127.0.0.1, over a UNIX socket, or inside a namespace the test creates; it is
skipped with the reason when ../shared/bin is missing (or, for the TUN test, without the
permission to make a network namespace and a TUN device).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue

from axl.link.core import KEEPALIVE_DELAY, PEER_TIMEOUT
from axl.mesh.router import TICK_S
from axl.node import Node
from axl.streams.framing import encode_message
from tests.inprocess import InProcessNodesTestCase, wait_until
from tests.realnode import VERSIONS, RealNode, require
from tests.test_realnode import up_links

#: Long enough for several keepalive periods and peer timeouts of both sides.
PAST_KEEPALIVE = 3 * (PEER_TIMEOUT + KEEPALIVE_DELAY)


async def sleep(seconds: float) -> None:
    await deferLater(reactor, seconds, lambda: None)


async def received(node: Node, timeout: float = 20.0) -> tuple[bytes, bytes]:
    """The next message in C{node}'s /recv queue: (sender key, payload)."""
    deadline = time.monotonic() + timeout
    while (message := node.recv_queue.get()) is None:
        if time.monotonic() > deadline:
            raise AssertionError("no message arrived")
        await sleep(0.05)
    return message.sender, message.payload


class LiveInteropTests(InProcessNodesTestCase):
    timeout = 90

    def live(self, version: str, scenario: str) -> Deferred[None]:
        require("yggdrasil", version)
        return ensureDeferred(getattr(self, scenario)(version))

    async def _linked(self, version: str) -> tuple[RealNode, Node]:
        """A real node listening on tls, and axl node A peered to it; once the tree settled."""
        real = RealNode(self, version, listen=["tls://127.0.0.1:0"], extra={"NodeInfo": {"real": True}})
        await real.start_async()
        node = self.start_node("A", {"Peers": real.listen, "NodeInfo": {"name": "axl-live", "n": 7}})
        await wait_until("the link up", lambda: len(up_links(node, real.key)) == 1)
        root = min(real.key, node.public_key)
        await wait_until("one root", lambda: real.root() == root and node.router.root() == root)
        await sleep(2 * TICK_S + 0.2)  # the Go node's bloom and tree ticks
        return real, node

    async def stays_up(self, version: str) -> None:
        """The same link is still up on both sides after several keepalive periods."""
        real, node = await self._linked(version)

        def theirs() -> float:
            [peer] = [p for p in real.admin("getPeers")["peers"] if p["up"] and p["key"] == node.public_key.hex()]
            return float(peer["uptime"])

        [before] = [p for p in node.topology()["peers"] if p["up"]]
        their_before = theirs()
        await sleep(PAST_KEEPALIVE)
        [after] = [p for p in node.topology()["peers"] if p["up"]]
        their_after = theirs()
        log = f"\nreal node's log:\n{real.log()}"
        self.assertEqual(after["uri"], before["uri"])
        # The same link on both sides: its uptime grew by the time waited (none was re-made).
        self.assertGreater(after["uptime"], before["uptime"] + PAST_KEEPALIVE - 1, log)
        self.assertGreater(their_after, their_before + PAST_KEEPALIVE - 1, log)

    async def node_info(self, version: str) -> None:
        """The real node's getNodeInfo of our key returns our NodeInfo with axl's build fields."""
        real, node = await self._linked(version)
        answer = await real.admin_async("getNodeInfo", key=node.public_key.hex())
        [info] = answer.values()
        self.assertEqual((info["name"], info["n"], info["buildname"]), ("axl-live", 7, "axl"))

    async def relay(self, version: str) -> None:
        """A and B peer only with the real node; /send works both ways through it."""
        real = RealNode(self, version, listen=["tls://127.0.0.1:0"])
        await real.start_async()
        a = self.start_node("A", {"Peers": real.listen})
        b = self.start_node("B", {"Peers": real.listen})
        await wait_until("both links up", lambda: up_links(a, real.key) and up_links(b, real.key))
        self.assertEqual(a.links.links()[0].remote_key, real.key)
        root = min(real.key, a.public_key, b.public_key)
        await wait_until("one root", lambda: a.router.root() == root and b.router.root() == root)
        await sleep(2 * TICK_S + 0.2)
        self.assertEqual(await a.sender.send(b.public_key, b"A to B"), 6)
        self.assertEqual(await received(b), (a.public_key, b"A to B"))
        self.assertEqual(await b.sender.send(a.public_key, b"B to A" * 10000), 60000)
        self.assertEqual(await received(a), (b.public_key, b"B to A" * 10000))
        # Only the real node links them.
        self.assertEqual({link.remote_key for link in a.links.links()}, {real.key})
        self.assertEqual({link.remote_key for link in b.links.links()}, {real.key})

    async def linux_tcp(self, version: str) -> None:
        """The kernel's TCP in a namespace, routed by a real node's TUN, reaches our port 7000."""
        ns = self._namespace()
        sock_dir = tempfile.mkdtemp(prefix="axl-live-")
        self.addCleanup(shutil.rmtree, sock_dir, True)
        listen = f"unix://{sock_dir}/axl.sock"
        node = self.start_node("A", {"Listen": [listen]})
        tun = f"axly{os.getpid() % 100000}"
        real = RealNode(self, version, peers=[listen], extra={"IfName": tun, "IfMTU": 65535, "AdminListen": "none"})
        path = os.path.join(real.dir, "yggdrasil.json")
        with open(path, "w") as f:
            json.dump(real.config, f)
        with open(real.log_path, "ab") as log:
            real.proc = subprocess.Popen(  # stopped by PID in cleanup (ip netns exec execs it)
                [shutil.which("ip") or "ip", "netns", "exec", ns, real.binary, "-useconffile", path, "-logto", "stdout"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        await wait_until("the real node's link", lambda: len(up_links(node, real.key)) == 1)
        await sleep(2 * TICK_S + 0.2)
        frame = encode_message(b"from the Linux kernel")
        client = (
            "import socket,sys\n"
            "s=socket.create_connection((sys.argv[1],7000),timeout=20)\n"
            "s.sendall(bytes.fromhex(sys.argv[2]))\n"
            "s.shutdown(socket.SHUT_WR)\n"
            "print('eof' if s.recv(1)==b'' else 'data')\n"
        )
        out, err, code = await getProcessOutputAndValue(
            shutil.which("ip") or "ip",
            ["netns", "exec", ns, sys.executable, "-c", client, node.identity.ipv6, frame.hex()],
            env=dict(os.environ),
        )
        self.assertEqual((code, out.strip()), (0, b"eof"), err + real.log().encode())
        self.assertEqual(await received(node), (real.key, b"from the Linux kernel"))

    def _namespace(self) -> str:
        if sys.platform != "linux" or shutil.which("ip") is None or not os.path.exists("/dev/net/tun"):
            raise self.skipTest("needs Linux with iproute2 and /dev/net/tun")  # type: ignore[misc]
        ns = f"axllive{os.getpid()}"
        made = subprocess.run(["ip", "netns", "add", ns], capture_output=True)
        if made.returncode != 0:
            raise self.skipTest(f"cannot create a network namespace: {made.stderr.decode().strip()}")  # type: ignore[misc]
        self.addCleanup(subprocess.run, ["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        return ns


for _version in VERSIONS:
    for _scenario in ("stays_up", "node_info", "relay", "linux_tcp"):

        def _test(self: LiveInteropTests, v: str = _version, s: str = _scenario) -> Deferred[None]:
            return self.live(v, s)

        _test.__doc__ = f"{getattr(LiveInteropTests, _scenario).__doc__} ({_version})"
        setattr(LiveInteropTests, f"test_{_scenario}_{_version.replace('.', '_')}", _test)
