"""
Tests for C{AdminListen}: parsing (L{axl.admin.address}), the config key, and
L{axl.admin.service.AdminListenService} on real UNIX and 127.0.0.1 sockets (0660, stale socket
replaced, live one kept, file removed on stop).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from axl.admin.address import AdminAddress, parse_admin_listen
from axl.admin.commands import AdminHandler
from axl.admin.node import admin_service
from axl.admin.service import AdminFactory, AdminListenService
from axl.config import config_from_dict
from axl.errors import ConfigError, StartupError
from tests.test_admin_commands import FakeSource
from tests.test_e2e_twistd import Twistd, TwistdTestCase, free_port


class ParseTests(SynchronousTestCase):
    def test_forms(self) -> None:
        """Yggdrasil's forms (section 1.1)."""
        self.assertIsNone(parse_admin_listen(""))
        self.assertIsNone(parse_admin_listen("none"))
        self.assertEqual(parse_admin_listen("unix:///run/a.sock"),
                         AdminAddress("unix:///run/a.sock", path="/run/a.sock"))  # fmt: skip
        self.assertEqual(parse_admin_listen("unix://@abstract").path, "@abstract")  # type: ignore[union-attr]
        self.assertEqual(parse_admin_listen("tcp://127.0.0.1:9001"),
                         AdminAddress("tcp://127.0.0.1:9001", host="127.0.0.1", port=9001))  # fmt: skip
        self.assertEqual(parse_admin_listen("tcp://[::1]:9001"),
                         AdminAddress("tcp://[::1]:9001", host="::1", port=9001))  # fmt: skip
        self.assertEqual(parse_admin_listen("localhost:9001"),
                         AdminAddress("localhost:9001", host="localhost", port=9001))  # fmt: skip

    def test_bad(self) -> None:
        for value in ("unix://relative", "unix:///", "tcp://127.0.0.1", "tcp://h:99999",
                      "ws://127.0.0.1:1", "nonsense"):  # fmt: skip
            self.assertRaises(ConfigError, parse_admin_listen, value)

    def test_config_key(self) -> None:
        """AdminListen is a config key now: checked, kept, no 'ignored' warning; off by default."""
        self.assertEqual(config_from_dict({}).admin_listen, "")
        config = config_from_dict({"AdminListen": "tcp://127.0.0.1:9001"})
        self.assertEqual(config.admin_listen, "tcp://127.0.0.1:9001")
        self.assertEqual(config.warnings, ())
        self.assertEqual(config_from_dict({"adminlisten": "none"}).admin_listen, "")
        self.assertEqual(config_from_dict({"AdminListen": None}).admin_listen, "")

    def test_config_errors(self) -> None:
        """A bad AdminListen names the file and the key (checked when the node is built)."""
        config = config_from_dict({"AdminListen": "unix://x"}, source="n.json")
        with self.assertRaises(ConfigError) as e:
            admin_service(config, FakeSource(), MemoryReactorClock())
        self.assertEqual(str(e.exception),
                         "n.json: key 'AdminListen' 'unix://x': a UNIX socket is unix:///absolute/path")  # fmt: skip
        self.assertIsNone(admin_service(config_from_dict({}), FakeSource(), MemoryReactorClock()))
        with self.assertRaises(ConfigError) as e:
            config_from_dict({"AdminListen": 9001}, source="n.json")
        self.assertIn("n.json: key 'AdminListen' must be a string", str(e.exception))


class _Collect(Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:  # noqa: B008
        self.done.callback(self.data)


class ListenTests(TestCase):
    """Real sockets: a UNIX socket in a temp dir and TCP on 127.0.0.1."""

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="axl-admin-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "admin.sock")
        self.factory = AdminFactory(AdminHandler(FakeSource()))

    def service(self, text: str) -> AdminListenService:
        address = parse_admin_listen(text)
        assert address is not None
        service = AdminListenService(reactor, address, self.factory, "set another AdminListen in n.json")
        return service

    @inlineCallbacks
    def ask(self, endpoint: object, request: bytes):  # type: ignore[no-untyped-def]
        proto = _Collect()
        yield connectProtocol(endpoint, proto)  # type: ignore[arg-type]
        proto.transport.write(request)  # type: ignore[union-attr]
        data = yield proto.done
        return json.loads(data)

    @inlineCallbacks
    def test_unix_mode_and_removal(self):  # type: ignore[no-untyped-def]
        """The socket file is mode 0660, answers, and is removed on stop."""
        service = self.service("unix://" + self.path)
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        mode = os.stat(self.path).st_mode
        self.assertTrue(stat.S_ISSOCK(mode))
        self.assertEqual(stat.S_IMODE(mode), 0o660)
        doc = yield self.ask(UNIXClientEndpoint(reactor, self.path), b'{"request":"getTun"}')
        self.assertEqual(doc["response"], {"enabled": False})
        yield service.stopService()
        self.assertFalse(os.path.exists(self.path))

    @inlineCallbacks
    def test_stale_socket_replaced(self):  # type: ignore[no-untyped-def]
        """A socket file nobody serves (a crashed run) is replaced."""
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(self.path)
        stale.close()  # the file stays, nobody listens
        self.assertTrue(os.path.exists(self.path))
        service = self.service("unix://" + self.path)
        service.startService()
        doc = yield self.ask(UNIXClientEndpoint(reactor, self.path), b'{"request":"getTun"}')
        self.assertEqual(doc["status"], "success")
        yield service.stopService()

    def test_live_socket_kept(self) -> None:
        """A socket another process serves is left alone and the start fails."""
        live = socket.socket(socket.AF_UNIX)
        self.addCleanup(live.close)
        live.bind(self.path)
        live.listen(1)
        service = self.service("unix://" + self.path)
        with self.assertRaises(StartupError) as e:
            service.startService()
        self.assertIn("already exists and is in use by another process", str(e.exception))
        self.assertTrue(os.path.exists(self.path))

    def test_not_a_socket(self) -> None:
        with open(self.path, "w") as f:
            f.write("precious")
        with self.assertRaises(StartupError) as e:
            self.service("unix://" + self.path).startService()
        self.assertIn("is not a socket", str(e.exception))
        with open(self.path) as f:
            self.assertEqual(f.read(), "precious")

    @inlineCallbacks
    def test_tcp(self):  # type: ignore[no-untyped-def]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        service = self.service(f"tcp://127.0.0.1:{port}")
        service.startService()
        doc = yield self.ask(TCP4ClientEndpoint(reactor, "127.0.0.1", port), b'{"request":"list"}')
        self.assertEqual(doc["response"]["list"][0]["command"], "addpeer")
        yield service.stopService()

    def test_tcp_port_taken(self) -> None:
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with self.assertRaises(StartupError) as e:
            self.service(f"tcp://127.0.0.1:{port}").startService()
        self.assertEqual(str(e.exception), f"cannot listen on AdminListen tcp://127.0.0.1:{port} "
                         "(address already in use); set another AdminListen in n.json")  # fmt: skip


class PublicTCPWarningTests(SynchronousTestCase):
    def test_warns(self) -> None:
        """Binding the admin socket beyond loopback is allowed but logged loudly."""
        from twisted.logger import capturedLogs

        address = parse_admin_listen("tcp://0.0.0.0:9001")
        assert address is not None
        service = AdminListenService(MemoryReactorClock(), address, AdminFactory(AdminHandler(FakeSource())))
        with capturedLogs() as events:
            service.startService()
        self.assertTrue(any("no authentication" in e.get("log_format", "") for e in events))
        service.stopService()


class TwistdStartTests(TwistdTestCase):
    """A twistd node whose AdminListen is unusable does not start: status 1 and one line."""

    def test_bad_value(self) -> None:
        self.config({"AdminListen": "unix://relative.sock", "api_port": free_port()})
        proc = Twistd(self, ["axl", "--config", "c.json"], cwd=self.dir)
        self.assert_clean_failure(
            proc, "axl: error: c.json: key 'AdminListen' 'unix://relative.sock': "
            "a UNIX socket is unix:///absolute/path",
        )  # fmt: skip

    def test_port_taken(self) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            self.config({"AdminListen": f"tcp://127.0.0.1:{port}", "api_port": free_port()})
            proc = Twistd(self, ["axl", "--config", "c.json"], cwd=self.dir)
            self.assert_clean_failure(
                proc, f"axl: error: cannot listen on AdminListen tcp://127.0.0.1:{port} "
                "(address already in use); set another AdminListen in c.json",
            )  # fmt: skip
