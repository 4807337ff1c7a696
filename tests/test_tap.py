# -*- test-case-name: tests.test_tap -*-
"""
Tests for L{axl.tap} (the twistd entry points) and the C{axl} twistd plugin.
"""

from __future__ import annotations

import io
import json
import os
import signal
from typing import Any

from twisted.application.service import IService, IServiceMaker, MultiService, Service
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python.usage import UsageError
from twisted.trial.unittest import SkipTest
from twisted.trial.unittest import SynchronousTestCase

from axl.errors import StartupError
from axl.tap import NodeRunner, Options, build_config, find_config, make_application, node_runner

KEY_B = "79b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664"
PRIV_B = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20" + KEY_B


class OptionsTests(SynchronousTestCase):
    """Parsing C{twistd axl} options."""

    def test_defaults(self) -> None:
        """No options: no config file named and no extra listeners."""
        options = Options()
        options.parseOptions([])
        self.assertEqual((options["config"], options["listen"]), (None, []))

    def test_config_and_listen(self) -> None:
        """--config names the file; --listen may be repeated and keeps its order."""
        options = Options()
        options.parseOptions(["--config", "c.json", "--listen", "tls://0.0.0.0:1", "-l", "tcp://[::1]:2"])
        self.assertEqual(options["config"], "c.json")
        self.assertEqual(options["listen"], ["tls://0.0.0.0:1", "tcp://[::1]:2"])

    def test_short_config(self) -> None:
        """-c is --config."""
        options = Options()
        options.parseOptions(["-c", "c.json"])
        self.assertEqual(options["config"], "c.json")

    def test_unknown_option(self) -> None:
        """An unknown option is a usage error."""
        self.assertRaises(UsageError, Options().parseOptions, ["--peer", "x"])

    def test_positional_arguments(self) -> None:
        """Positional arguments are a usage error."""
        self.assertRaises(UsageError, Options().parseOptions, ["c.json"])


class FindConfigTests(SynchronousTestCase):
    """Which config file is read."""

    def setUp(self) -> None:
        self.cwd = self.mktemp()
        os.mkdir(self.cwd)

    def test_explicit_wins(self) -> None:
        """--config wins over $AXL_CONFIG and ./node-config.json."""
        open(os.path.join(self.cwd, "node-config.json"), "w").close()
        self.assertEqual(find_config("a.json", {"AXL_CONFIG": "b.json"}, self.cwd), "a.json")

    def test_environment(self) -> None:
        """Without --config, $AXL_CONFIG wins over ./node-config.json."""
        open(os.path.join(self.cwd, "node-config.json"), "w").close()
        self.assertEqual(find_config(None, {"AXL_CONFIG": "b.json"}, self.cwd), "b.json")

    def test_cwd_file(self) -> None:
        """Without --config or $AXL_CONFIG, ./node-config.json is used when it exists."""
        open(os.path.join(self.cwd, "node-config.json"), "w").close()
        self.assertEqual(find_config(None, {"AXL_CONFIG": ""}, self.cwd), os.path.join(self.cwd, "node-config.json"))

    def test_embedded_default(self) -> None:
        """With none of them, the embedded default (None)."""
        self.assertIsNone(find_config(None, {}, self.cwd))

    def test_build_default(self) -> None:
        """build_config(None) is the embedded default, plus --listen URIs."""
        config = build_config(None, ["tls://127.0.0.1:1"])
        self.assertEqual((config.source, config.listen), ("<default>", ("tls://127.0.0.1:1",)))


class NodeRunnerTests(SynchronousTestCase):
    """node_runner and NodeRunner: exit status and error lines."""

    def write_config(self, obj: object) -> str:
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump(obj, f)
        return path

    def test_builds_node(self) -> None:
        """A good config gives a runner holding the node, with --listen in front."""
        path = self.write_config({"PrivateKey": PRIV_B, "Listen": ["tls://0.0.0.0:2"]})
        runner = node_runner(path, ["tls://127.0.0.1:1"], MemoryReactorClock(), io.StringIO())
        self.assertEqual(runner.node.public_key.hex(), KEY_B)
        self.assertEqual(runner.node.config.listen, ("tls://127.0.0.1:1", "tls://0.0.0.0:2"))

    def test_config_error_exits_1(self) -> None:
        """A config error writes one line naming the file and key to stderr and exits with status 1."""
        path = self.write_config({"api_port": "x"})
        err = io.StringIO()
        with self.assertRaises(SystemExit) as cm:
            node_runner(path, [], MemoryReactorClock(), err)
        self.assertEqual(cm.exception.code, 1)
        self.assertEqual(err.getvalue(), f"axl: error: {path}: key 'api_port' must be an integer, got a string \"x\"\n")

    def test_missing_file_exits_1(self) -> None:
        """A missing config file exits with status 1 and names it."""
        path = self.mktemp()
        err = io.StringIO()
        with self.assertRaises(SystemExit) as cm:
            node_runner(path, [], MemoryReactorClock(), err)
        self.assertEqual(cm.exception.code, 1)
        self.assertEqual(err.getvalue(), f"axl: error: {path}: config file not found\n")

    def test_bad_listen_exits_1(self) -> None:
        """A malformed --listen URI exits with status 1."""
        err = io.StringIO()
        with self.assertRaises(SystemExit):
            node_runner(None, ["nonsense"], MemoryReactorClock(), err)
        self.assertEqual(err.getvalue(), "axl: error: --listen 'nonsense' is not a URI such as tls://host:port\n")

    def test_startup_error_exits_1(self) -> None:
        """A StartupError while starting (bridge port taken) becomes one stderr line and status 1."""

        class Failing(Service):
            def startService(self) -> None:
                raise StartupError("cannot listen on 127.0.0.1:9002")

        inner = MultiService()
        inner.node = None  # type: ignore[attr-defined]
        Failing().setServiceParent(inner)
        err = io.StringIO()
        runner = NodeRunner(inner, MemoryReactorClock(), err)
        with self.assertRaises(SystemExit) as cm:
            runner.startService()
        self.assertEqual(cm.exception.code, 1)
        self.assertEqual(err.getvalue(), "axl: error: cannot listen on 127.0.0.1:9002\n")

    def test_signal_exit_status_zero(self) -> None:
        """After SIGTERM or SIGINT the runner clears the reactor's exit signal, so twistd exits 0."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            reactor: Any = MemoryReactorClock()
            runner = node_runner(None, [], reactor, io.StringIO())
            runner.startService()
            reactor._exitSignal = sig
            runner.stopService()
            self.assertIsNone(reactor._exitSignal)

    def test_late_signal_cleared_after_shutdown(self) -> None:
        """A signal that arrives after stopService is cleared by the after-shutdown trigger."""
        reactor: Any = MemoryReactorClock()
        runner = node_runner(None, [], reactor, io.StringIO())
        runner.startService()
        runner.stopService()
        reactor._exitSignal = signal.SIGTERM
        for callable_, args, kwargs in reactor.triggers["after"]["shutdown"]:
            callable_(*args, **kwargs)
        self.assertIsNone(reactor._exitSignal)

    def test_other_signal_untouched(self) -> None:
        """A stop without SIGTERM/SIGINT leaves the reactor alone."""
        reactor: Any = MemoryReactorClock()
        reactor._exitSignal = signal.SIGHUP
        runner = node_runner(None, [], reactor, io.StringIO())
        runner.startService()
        runner.stopService()
        self.assertEqual(reactor._exitSignal, signal.SIGHUP)


class EntryPointTests(SynchronousTestCase):
    """The plugin and the .tac builder."""

    def test_plugin_listed(self) -> None:
        """twistd finds an 'axl' service maker whose options are axl.tap's."""
        makers = {m.tapname: m for m in getPlugins(IServiceMaker)}
        self.assertIn("axl", makers)
        self.assertIsInstance(makers["axl"].options(), Options)

    def test_make_application(self) -> None:
        """make_application reads $AXL_CONFIG and parents the node to an Application."""
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump({"PrivateKey": PRIV_B}, f)
        application = make_application({"AXL_CONFIG": path})
        (runner,) = list(IService(application))
        self.assertIsInstance(runner, NodeRunner)
        self.assertEqual(runner.node.config.source, path)
        self.assertEqual(runner.node.public_key.hex(), KEY_B)


class HeapTests(SynchronousTestCase):
    def test_mmap_threshold_set(self) -> None:
        """On glibc the node fixes malloc's mmap threshold, so big message buffers go back to the system."""
        import ctypes.util
        import platform

        from axl.tap import limit_heap_fragmentation

        if platform.libc_ver()[0] != "glibc" or ctypes.util.find_library("c") is None:
            raise SkipTest("not glibc: mallopt(M_MMAP_THRESHOLD) is glibc's")
        self.assertTrue(limit_heap_fragmentation())
