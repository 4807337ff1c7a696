"""
The real C{yggdrasilctl} 0.5.14 and 0.5.12 (from C{../shared/bin}) against twistd axl nodes,
every command, plain and C{-json}; and the same commands against a real yggdrasil 0.5.14 node
in the same mesh, compared member by member (spec/yggdrasil-extras.md sections 1.7 and 9).
Skipped when the binaries are missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

from tests.realnode import RealNode, require
from tests.test_e2e_twistd import TwistdTestCase, free_port, free_ports, get_topology

VERSIONS = ("0.5.14", "0.5.12")
COMMANDS = ("list", "getSelf", "getPeers", "getTree", "getPaths", "getSessions",
            "getMulticastInterfaces", "getTun")  # fmt: skip
REMOTE = ("getNodeInfo", "debug_remoteGetSelf", "debug_remoteGetPeers", "debug_remoteGetTree")


class CtlTestCase(TwistdTestCase):
    def setUp(self) -> None:
        super().setUp()
        for version in VERSIONS:
            require("yggdrasilctl", version)  # skips the test where they are missing

    def ctl(self, version: str, endpoint: str, *args: str) -> tuple[int, str]:
        proc = subprocess.run(
            [require("yggdrasilctl", version), "-endpoint", endpoint, *args],
            capture_output=True, timeout=30, text=True,
        )  # fmt: skip
        out = proc.stdout + proc.stderr
        self.assertNotIn("Fatal error", out, f"{args}: {out}")
        return proc.returncode, proc.stdout

    def ctl_json(self, version: str, endpoint: str, *args: str) -> Any:
        status, out = self.ctl(version, endpoint, "-json", *args)
        self.assertEqual(status, 0, out)
        return json.loads(out)

    def start_pair(self) -> tuple[str, str, str]:
        """Our A (tls listener) and B (peers A, admin on TCP). Returns A's listen URI, B's endpoint, A's key."""
        listen_port, admin_port = free_ports(2)
        listen = f"tls://127.0.0.1:{listen_port}"
        admin = f"tcp://127.0.0.1:{admin_port}"
        _, a_port = self.start("a", {"Listen": [listen]})
        _, b_port = self.start("b", {"Peers": [listen], "AdminListen": admin})
        a_key = get_topology(a_port)["our_public_key"]
        # A /send from B to A returns once A's TCP acknowledged it: the link, the tree, a path
        # and a session are all up (a lone packet sent while the tree settles can be lost).
        request = urllib.request.Request(f"http://127.0.0.1:{b_port}/send", data=b"hello",
                                         headers={"X-Destination-Peer-Id": a_key})  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:
            self.assertEqual(response.status, 200)
        return listen, admin, a_key


class YggdrasilctlTests(CtlTestCase):
    def test_every_command(self) -> None:
        """Both ctl versions render every command, plain and -json, without an error."""
        listen, admin, a_key = self.start_pair()
        for version in VERSIONS:
            for command in COMMANDS:
                status, out = self.ctl(version, admin, command)
                self.assertEqual(status, 0, f"{version} {command}: {out}")
                self.ctl_json(version, admin, command)
            for command in REMOTE:
                status, out = self.ctl(version, admin, command, f"key={a_key}")
                self.assertEqual(status, 0, f"{version} {command}: {out}")
                self.ctl_json(version, admin, command, f"key={a_key}")
            # Tables show the data.
            _, out = self.ctl(version, admin, "getPeers")
            self.assertIn(listen, out)
            self.assertIn("Up", out)
            _, out = self.ctl(version, admin, "getSelf")
            self.assertIn("Build name:", out)
            self.assertIn("axl", out)
            _, out = self.ctl(version, admin, "getNodeInfo", f"key={a_key}")
            self.assertIn('"buildname": "axl"', out)
            # Errors: exit 1 with the message.
            status, out = self.ctl(version, admin, "foo")
            self.assertEqual(status, 1)
            self.assertIn("unknown action 'foo', try 'list' for help", out)
            status, out = self.ctl(version, admin, "getNodeInfo", "key=zz")
            self.assertEqual(status, 1)
            self.assertIn("failed to decode public key", out)
            # addPeer / removePeer change the running node: {} in -json, nothing in tables.
            extra = f"tcp://127.0.0.1:{free_port()}"
            self.assertEqual(self.ctl_json(version, admin, "addPeer", f"uri={extra}"), {})
            peers = self.ctl_json(version, admin, "getPeers")["peers"]
            self.assertIn(extra, [p["remote"] for p in peers])
            status, out = self.ctl(version, admin, "removePeer", f"uri={extra}")
            self.assertEqual((status, out), (0, ""))
            status, out = self.ctl(version, admin, "removePeer", f"uri={extra}")
            self.assertEqual(status, 1)
            self.assertIn("peer is not configured", out)

    def test_json_output(self) -> None:
        """-json prints the response: our fields, types and units."""
        listen, admin, a_key = self.start_pair()
        self_info = self.ctl_json("0.5.14", admin, "getSelf")
        self.assertEqual(list(self_info), ["build_name", "build_version", "key", "address",
                                           "routing_entries", "subnet"])  # fmt: skip
        [peer] = self.ctl_json("0.5.14", admin, "getPeers", "sort=cost")["peers"]
        self.assertEqual(peer["remote"], listen)
        self.assertEqual(peer["key"], a_key)
        self.assertIsInstance(peer["latency"], int)
        remote = self.ctl_json("0.5.14", admin, "debug_remoteGetSelf", f"key={a_key}")
        [(address, inner)] = remote.items()
        self.assertEqual(inner["key"], a_key)
        self.assertIsInstance(inner["routing_entries"], str)

    def test_unix_socket(self) -> None:
        """AdminListen unix:///path: ctl connects; the file is 0660 and gone after a stop."""
        directory = tempfile.mkdtemp(prefix="axl-ctl-")
        self.addCleanup(os.rmdir, directory)
        path = os.path.join(directory, "admin.sock")
        proc, _ = self.start("u", {"AdminListen": "unix://" + path})
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o660)
        for version in VERSIONS:
            status, out = self.ctl(version, "unix://" + path, "getTun")
            self.assertEqual(status, 0)
            self.assertIn("TUN enabled:", out)
        self.assertEqual(proc.stop(), 0)
        self.assertFalse(os.path.exists(path))


class ParityTests(CtlTestCase):
    """A real yggdrasil 0.5.14 node and ours in one mesh answer with the same members."""

    def start_real(self, peer: str) -> str:
        """A real yggdrasil 0.5.14 peering with C{peer}; its admin endpoint."""
        node = RealNode(self, "0.5.14", peers=[peer])
        node.start()
        return f"tcp://127.0.0.1:{node.admin_port}"

    def test_same_members(self) -> None:
        listen, ours, a_key = self.start_pair()
        real = self.start_real(listen)
        deadline = time.monotonic() + 20
        while not any(p["up"] for p in self.ctl_json("0.5.14", real, "getPeers")["peers"]):
            self.assertLess(time.monotonic(), deadline, "the real node never peered with A")
            time.sleep(0.2)

        # A real node also loses a lone packet sent while the tree settles (its first
        # getNodeInfo times out, as ours would): ask until the path and session exist.
        for attempt in range(4):
            status, _ = self.ctl("0.5.14", real, "getNodeInfo", f"key={a_key}")
            if status == 0:
                break
        self.assertEqual(status, 0, "the real node never reached A")

        def shape(value: Any) -> Any:
            if isinstance(value, dict):
                return {k: shape(v) for k, v in value.items()}
            if isinstance(value, list):
                return [shape(value[0])] if value else []
            return type(value).__name__

        for command in ("list", "getTun", "getMulticastInterfaces"):
            self.assertEqual(self.ctl_json("0.5.14", ours, command),
                             self.ctl_json("0.5.14", real, command), command)  # fmt: skip
        self.assertEqual(shape(self.ctl_json("0.5.14", ours, "getSelf")),
                         shape(self.ctl_json("0.5.14", real, "getSelf")))  # fmt: skip
        ours_peer = self.ctl_json("0.5.14", ours, "getPeers")["peers"][0]
        real_peer = self.ctl_json("0.5.14", real, "getPeers")["peers"][0]
        for member in ("rate_recvd", "rate_sent"):  # omitted when 0: timing-dependent
            ours_peer.pop(member, None)
            real_peer.pop(member, None)
        self.assertEqual(shape(ours_peer), shape(real_peer))
        self.assertEqual(shape(self.ctl_json("0.5.14", ours, "getTree")),
                         shape(self.ctl_json("0.5.14", real, "getTree")))  # fmt: skip
        for command in REMOTE:
            mine = self.ctl_json("0.5.14", ours, command, f"key={a_key}")
            theirs = self.ctl_json("0.5.14", real, command, f"key={a_key}")
            self.assertEqual(shape(mine), shape(theirs), command)
            if command != "getNodeInfo":
                self.assertEqual(list(mine), list(theirs), command)  # keyed by the same address
        self.assertEqual(shape(self.ctl_json("0.5.14", ours, "getSessions")),
                         shape(self.ctl_json("0.5.14", real, "getSessions")))  # fmt: skip
        self.assertEqual(shape(self.ctl_json("0.5.14", ours, "getPaths")),
                         shape(self.ctl_json("0.5.14", real, "getPaths")))  # fmt: skip
