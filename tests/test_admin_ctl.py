"""
Tests for C{axl ctl} (L{axl.admin.ctl}, L{axl.cli}): yggdrasilctl's table formats, the endpoint
from C{-endpoint} or the config, errors; and, where the real yggdrasilctl 0.5.14 is available,
byte-for-byte the same output as it for every command against one admin server.
"""

from __future__ import annotations

import io
import json
import os
import subprocess

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SynchronousTestCase, TestCase

from axl.admin.address import parse_admin_listen
from axl.admin.commands import AdminHandler, PathRow, PeerRow, SessionRow, TreeRow
from axl.admin.ctl import format_bytes, format_duration, render, render_table
from axl.admin.service import AdminFactory, AdminListenService
from axl.cli import main
from axl.link.multicast import MulticastInterfaceInfo
from tests.test_admin_commands import C_KEY, FakeSource, B
from tests.realnode import require
from tests.test_e2e_twistd import free_port


def rich_source() -> FakeSource:
    """A source whose tables exercise every formatting branch."""
    source = FakeSource()
    sizes = [0, 1, 27, 100, 600, 1023, 1536, 1048575, 1048576, 3 * 1024**3]
    uptimes = [0.4, 59.6, 61.0, 3599.0, 3661.0, 172805.0]
    latencies = [None, 0.00046, 0.0015, 2.5]
    source.peer_rows = [
        PeerRow(f"tls://h:{i}", True, i % 2 == 0, C_KEY, port=i, priority=i % 3, cost=i,
                bytes_recvd=n, bytes_sent=n, rate_recvd=n, rate_sent=n,
                uptime=uptimes[i % len(uptimes)], latency=latencies[i % len(latencies)])
        for i, n in enumerate(sizes)
    ] + [PeerRow("tcp://down:1", False, False, last_error="dial failed: boom", last_error_age=75.5)]  # fmt: skip
    source.tree_rows = [TreeRow(C_KEY, C_KEY, 1), TreeRow(B.public_key, C_KEY, 7)]
    source.path_rows = [PathRow(B.public_key, (1, 2, 3), 1796427190), PathRow(C_KEY, (), 5)]
    source.session_rows = [SessionRow(B.public_key, 328, 11, 16.9), SessionRow(C_KEY, 5, 2**20, 0.1)]
    source.multicast_rows = [MulticastInterfaceInfo("eth0", "[fe80::1]:1", True, False, True)]
    return source


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["ctl", *argv], out=out, err=err)
    return status, out.getvalue(), err.getvalue()


class FormatTests(SynchronousTestCase):
    def test_bytes(self) -> None:
        """The thresholds yggdrasilctl 0.5.14 uses (observed)."""
        cases = {0: "0B", 27: "27B", 99: "99B", 100: "0.1KB", 600: "0.6KB", 1048575: "1024.0KB",
                 1048576: "1.0MB", 3 * 1024**3: "3.0GB"}  # fmt: skip
        for n, text in cases.items():
            self.assertEqual(format_bytes(n), text)

    def test_duration(self) -> None:
        cases = {0.4: "0s", 59.6: "59s", 61: "1m1s", 3599: "59m59s", 3661: "1h1m1s", 172805: "48h0m5s"}
        for seconds, text in cases.items():
            self.assertEqual(format_duration(seconds), text)

    def test_table(self) -> None:
        """Box borders, centred headers, one space of padding (yggdrasilctl 0.5.14)."""
        got = render_table(["Name", "Listen Address"], [["eth0", "[fe80::1]:1"]])
        self.assertEqual(got, (
            "┌──────┬────────────────┐\n"
            "│ Name │ Listen Address │\n"
            "├──────┼────────────────┤\n"
            "│ eth0 │ [fe80::1]:1    │\n"
            "└──────┴────────────────┘\n"
        ))  # fmt: skip
        self.assertEqual(render_table(None, [["TUN enabled:", "false"]], borders=False),
                         " TUN enabled:  false \n")  # fmt: skip

    def test_node_info_and_debug(self) -> None:
        """getNodeInfo prints the inner object, debug commands the raw response, as ctl does."""
        self.assertEqual(render("getNodeInfo", {"k": {"a": 1}}), '{\n      "a": 1\n    }\n')
        self.assertEqual(render("debug_remoteGetSelf", {"200::1": {"key": "x"}}),
                         '{\n    "200::1": {\n      "key": "x"\n    }\n  }\n')  # fmt: skip
        self.assertEqual(render("addPeer", {}), "")


def serve(test: TestCase, source: FakeSource) -> str:
    """Serve C{source} on a free 127.0.0.1 port until C{test} ends; its endpoint."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    address = parse_admin_listen(endpoint)
    assert address is not None
    service = AdminListenService(reactor, address, AdminFactory(AdminHandler(source)))
    service.startService()
    test.addCleanup(service.stopService)
    return endpoint


class CommandLineTests(TestCase):
    """axl ctl against an admin server on 127.0.0.1 (the client blocks, so it runs in a thread)."""

    def setUp(self) -> None:
        self.source = rich_source()
        self.endpoint = serve(self, self.source)

    @inlineCallbacks
    def test_json(self):  # type: ignore[no-untyped-def]
        status, out, err = yield deferToThread(run, "-endpoint", self.endpoint, "-json", "getTun")
        self.assertEqual((status, out, err), (0, '{\n  "enabled": false\n}\n', ""))

    @inlineCallbacks
    def test_table_and_arguments(self):  # type: ignore[no-untyped-def]
        status, out, _ = yield deferToThread(run, "-endpoint", self.endpoint, "getpeers", "sort=cost")
        self.assertEqual(status, 0)
        lines = out.splitlines()
        self.assertTrue(lines[1].startswith("│     URI      │ State │ Dir │"), lines[1])
        self.assertIn("1m16s ago: dial failed: boom", out)
        self.assertIn("tcp://down:1 ", lines[3], "sort=cost: cost 0 first, then key")
        self.assertIn("tls://h:0 ", lines[4])
        status, _, _ = yield deferToThread(run, "-endpoint", self.endpoint, "addPeer", "uri=tls://x:1")
        self.assertEqual(self.source.added, [("tls://x:1", "")])

    @inlineCallbacks
    def test_endpoint_from_config(self):  # type: ignore[no-untyped-def]
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump({"AdminListen": self.endpoint}, f)
        status, out, _ = yield deferToThread(run, "-config", path, "getSelf")
        self.assertEqual(status, 0)
        self.assertIn("│ Build name:         │ axl", out)

    @inlineCallbacks
    def test_error_reply(self):  # type: ignore[no-untyped-def]
        status, out, err = yield deferToThread(run, "-endpoint", self.endpoint, "foo")
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(err, "Admin socket returned an error: unknown action 'foo', try 'list' for help\n")
        status, _, err = yield deferToThread(run, "-endpoint", self.endpoint, "-json", "getNodeInfo", "key=zz")
        self.assertEqual(status, 1)
        self.assertIn("failed to decode public key", err)


class ErrorTests(SynchronousTestCase):
    def test_bad_argument(self) -> None:
        status, _, err = run("-endpoint", "tcp://127.0.0.1:1", "getNodeInfo", "novalue")
        self.assertEqual((status, err), (2, "axl ctl: argument 'novalue' is not key=value\n"))

    def test_cannot_connect(self) -> None:
        """Unlike yggdrasilctl (exit 0), a failed connection is exit 1 with the reason."""
        port = free_port()
        status, out, err = run("-endpoint", f"tcp://127.0.0.1:{port}", "getSelf")
        self.assertEqual((status, out), (1, ""))
        self.assertIn(f"axl ctl: cannot connect to tcp://127.0.0.1:{port}", err)
        self.assertIn("refused", err)

    def test_no_endpoint(self) -> None:
        empty = self.mktemp()
        os.mkdir(empty)
        cwd = os.getcwd()
        os.chdir(empty)
        self.addCleanup(os.chdir, cwd)
        self.patch(os, "environ", {k: v for k, v in os.environ.items() if k != "AXL_CONFIG"})
        status, _, err = run("getSelf")
        self.assertEqual(status, 1)
        self.assertIn("no -endpoint given and no config file found", err)
        with open("node-config.json", "w") as f:
            f.write("{}")
        status, _, err = run("getSelf")
        self.assertEqual((status, err), (1, "axl ctl: node-config.json has no AdminListen; set it, or pass -endpoint\n"))

    def test_bad_endpoint(self) -> None:
        status, _, err = run("-endpoint", "ws://x:1", "getSelf")
        self.assertEqual(status, 1)
        self.assertEqual(err, "axl ctl: -endpoint 'ws://x:1': use unix:///path, tcp://host:port or none\n")
        status, _, err = run("-endpoint", "none", "getSelf")
        self.assertEqual(status, 1)
        self.assertIn("is off", err)

    def test_bad_config(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('{"AdminListen": "unix://rel"}')
        status, _, err = run("-config", path, "getSelf")
        self.assertEqual((status, err), (1, f"axl ctl: {path}: key 'AdminListen' 'unix://rel': "
                                            "a UNIX socket is unix:///absolute/path\n"))  # fmt: skip
        with open(path, "w") as f:
            f.write('{"AdminListen": 5}')
        status, _, err = run("-config", path, "getSelf")
        self.assertEqual(status, 1)
        self.assertIn(f"{path}: key 'AdminListen' must be a string", err)


class SameAsYggdrasilctlTests(TestCase):
    """axl ctl prints exactly what the real yggdrasilctl 0.5.14 prints, for every command."""

    def setUp(self) -> None:
        self.ctl = require("yggdrasilctl", "0.5.14")  # skips where the binaries are missing
        self.source = rich_source()
        self.endpoint = serve(self, self.source)

    def theirs(self, *args: str) -> tuple[int, str]:
        proc = subprocess.run([self.ctl, "-endpoint", self.endpoint, *args],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
        return proc.returncode, proc.stdout

    @inlineCallbacks
    def test_every_command(self):  # type: ignore[no-untyped-def]
        key = f"key={C_KEY.hex()}"
        cases = [["list"], ["getSelf"], ["getPeers"], ["getPeers", "sort=uptime"], ["getTree"],
                 ["getPaths"], ["getSessions"], ["getMulticastInterfaces"], ["getTun"],
                 ["getNodeInfo", key], ["debug_remoteGetSelf", key], ["debug_remoteGetPeers", key]]  # fmt: skip
        for flags in ([], ["-json"], ["-borders=false"]):
            for case in cases:
                args = [*flags, *case]
                d_theirs = deferToThread(self.theirs, *args)
                d_ours = deferToThread(run, "-endpoint", self.endpoint, *args)
                if case[0] in ("getNodeInfo", "debug_remoteGetSelf", "debug_remoteGetPeers"):
                    yield self.answer_remote(2)
                status, expected = yield d_theirs
                mine, out, err = yield d_ours
                self.assertEqual((status, mine, err), (0, 0, ""), args)
                self.assertEqual(out, expected, args)
            for case in (["addPeer", "uri=tls://h:9"], ["removePeer", "uri=tls://h:9"]):
                status, expected = yield deferToThread(self.theirs, *flags, *case)
                self.assertEqual(status, 0)
            for case in (["addPeer", "uri=tls://h:9"], ["removePeer", "uri=tls://h:9"]):
                mine, out, err = yield deferToThread(run, "-endpoint", self.endpoint, *flags, *case)
                self.assertEqual((mine, out, err), (0, expected, ""), case)

    @inlineCallbacks
    def answer_remote(self, count: int):  # type: ignore[no-untyped-def]
        """Answer the next C{count} remote requests (from both clients) once they arrive."""
        from twisted.internet.task import deferLater

        answers = {"nodeinfo": {"name": "<n>", "buildname": "axl"},
                   "self": {"key": C_KEY.hex(), "routing_entries": "3"},
                   "peers": [B.public_key, C_KEY], "tree": [C_KEY]}  # fmt: skip
        answered = 0
        for _ in range(400):
            while self.source.requests:
                kind, _, d = self.source.requests.pop(0)
                d.callback(answers[kind])
                answered += 1
            if answered >= count:
                return
            yield deferLater(reactor, 0.02, lambda: None)
        self.fail("the clients never sent their requests")
