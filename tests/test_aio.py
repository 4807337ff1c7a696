# -*- test-case-name: tests.test_aio -*-
"""
Tests for L{axl.aio}: a node inside an asyncio program.

The unit tests run here, on a private asyncio loop and Twisted's fakes (no reactor, no sockets).
The end-to-end tests run each program of L{tests.aio_scenarios} in its own process under
C{asyncio.run()} (Twisted's asyncio reactor must be the process's reactor, and trial's is not),
with real nodes on 127.0.0.1, and assert on what it reports, including what was left on the loop
after the nodes stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.internet.error import ConnectionDone, ConnectionLost, TCPTimedOutError
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

import axl
from axl.aio import Node, _streams
from axl.aio._logging import StdlibObserver
from axl.aio._node import peer_key
from axl.errors import ConfigError
from axl.overlay_address import OverlayAddress
from tests.test_e2e_twistd import TwistdTestCase, free_port, get_topology
from tests.realnode import RealNode
from tests.vectors import identity, keys

ROOT = Path(axl.__file__).resolve().parent.parent
SCENARIOS = ROOT / "tests" / "aio_scenarios.py"
#: Bound on one scenario process (they finish in seconds; this only stops a hang).
SCENARIO_TIMEOUT = 180.0
CLEAN = {"tasks": [], "timers": [], "delayed_calls": [], "fds": [], "reactor_users": 0, "twisted_threads": []}


def run_scenario(test: SynchronousTestCase, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run scenario C{name} in a new process; its result (the last line of its stdout)."""
    env = {k: v for k, v in os.environ.items() if k != "AXL_CONFIG"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run(
        [sys.executable, str(SCENARIOS), name, json.dumps(args or {})],
        cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL, capture_output=True,
        timeout=SCENARIO_TIMEOUT,
    )
    out, err = proc.stdout.decode(), proc.stderr.decode()
    if proc.returncode != 0 or not out.strip():
        test.fail(f"scenario {name} exited {proc.returncode}:\n{out}\n{err}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


# ---------------------------------------------------------------------------------------------
# end to end, one asyncio program per test


class EmbeddedNodesTests(SynchronousTestCase):
    """Two embedded nodes peered over tcp on 127.0.0.1, each test one asyncio program."""

    def assert_clean(self, result: dict[str, Any]) -> None:
        """Nothing of ours left on the loop once the nodes stopped."""
        self.assertEqual(result["leftovers"], CLEAN)

    def test_send_recv(self) -> None:
        """
        send() returns the byte count once delivered; recv() returns Message(sender hex, data);
        50 sends in flight arrive in order; a message at our max_message_size goes and one byte
        more raises MessageRefused(limit) before sending; recv(timeout) raises TimeoutError;
        a recv cancelled after the message reached it loses nothing; sending to ourselves works;
        an unreachable key raises PeerTimedOut; a bad key ValueError;
        messages() iterates and ends when the node stops; a stopped node raises NodeStopped.
        B dials A by host name, which Twisted resolves in its thread pool: the pool is stopped
        with the last node (no thread left).
        """
        r = run_scenario(self, "send_recv")
        self.assertEqual(r["sent"], 5)
        self.assertEqual(r["first"], [True, "hello"])
        self.assertTrue(r["ordered"])
        self.assertTrue(r["big"])
        self.assertEqual(
            r["too_large"], ["Message too large: 1048577 bytes (max_message_size is 1048576)", 1048576]
        )
        self.assertGreaterEqual(r["timeout_after"], 0.2)
        self.assertTrue(r["nowait_empty"])
        self.assertEqual((r["cancelled_recv"], r["after_cancel"]), ("cancelled", "not lost"))
        self.assertEqual(r["self"], "me")
        self.assertEqual(r["unknown"][0], "PeerTimedOut")
        self.assertIn("invalid peer id 'xyz'", r["bad_key"])
        self.assertEqual(r["iterated"], ["it0", "it1", "it2"])
        self.assertEqual(r["iterator_ended"], "ended")
        self.assertIn("not running", r["stopped"])
        self.assert_clean(r)

    def test_streams(self) -> None:
        """
        open_connection/start_server give asyncio streams: 16 MiB each way at the same time
        arrive intact; peername is (hex key, port) on both ends. A server that does not read
        stalls the writer: drain() stays pending, the reader pauses at its limit (64 KiB: at
        most ~2 limits plus one delivery buffered there) and the rest stays in the writer's
        send buffer; once it reads, drain() returns and all 16 MiB arrive intact. A closed port
        raises ConnectionRefusedError, an unknown key TimeoutError, a port in use OSError.
        """
        r = run_scenario(self, "streams")
        self.assertTrue(r["client_peername"] and r["server_peername"])
        self.assertTrue(r["down_intact"])
        self.assertTrue(r["up_intact"])
        self.assertEqual((r["serving_before_close"], r["serving_after_close"]), (True, False))
        stalled = r["stalled"]
        self.assertFalse(stalled["drain_done"])
        self.assertTrue(stalled["reader_paused"])
        self.assertLessEqual(stalled["server_buffered"], 2 * 64 * 1024 + 4 * 1024 * 1024)
        # most of the 16 MiB is still on the writer's side: the overlay window is shut
        self.assertGreater(stalled["client_buffered"], 8 * 1024 * 1024)
        self.assertTrue(r["backpressure_intact"])
        self.assertTrue(r["refused"])
        self.assertTrue(r["timeout"])
        self.assertIn("port already in use", r["port_in_use"])
        self.assert_clean(r)

    def test_cancellation(self) -> None:
        """
        A writer task cancelled mid-transfer then aborted: the server's reader gets
        ConnectionResetError; a connection still open when its server's node stops is reset
        (its handler cancelled, although the server had been closed);
        a task cancelled inside `async with Node(...)` (even twice, while it stops) stops the
        node; afterwards no task, timer, delayed call or descriptor of ours is left.
        """
        r = run_scenario(self, "cancellation")
        self.assertTrue(r["pump_cancelled"])
        self.assertEqual(r["server_saw"], "ConnectionResetError")
        self.assertEqual(r["open_reader_at_stop"], "reset")
        self.assertTrue(r["user_cancelled"])
        self.assertTrue(r["cancelled_twice"])
        self.assertEqual(r["users_after"], 0)
        self.assert_clean(r)

    def test_lifecycle(self) -> None:
        """
        topology()/public_key/address agree; listening() shows the port bound for Listen port 0;
        a second start() is refused; bridge=True serves /topology; a second node on the
        same bridge port fails to start with the bridge's StartupError and is not running; a
        handler that raises resets its connection, is logged (with the traceback) to the
        standard logging module under the module's logger, and the node keeps working, as it
        does after garbage on its peer listener (that link is closed) and a Twisted callback
        that raises (logged with its traceback, never raised into the loop); a
        stopped node raises NodeStopped; a bad config raises ConfigError naming the key; standard
        output, standard error and warnings.showwarning are left as they were.
        """
        r = run_scenario(self, "lifecycle")
        self.assertEqual(r["topology"], [True, True])
        self.assertRegex(r["listening"][0], r"^tcp://127\.0\.0\.1:[1-9][0-9]*$")
        self.assertEqual(len(r["listening"]), 1)
        self.assertEqual(r["second_start"], "a Node starts once (it is running)")
        self.assertTrue(r["bridge_topology"])
        self.assertEqual(r["port_taken"][0], "StartupError")
        self.assertIn("for the HTTP bridge (address already in use)", r["port_taken"][1])
        self.assertFalse(r["other_running"])
        self.assertEqual(r["broken_handler_conn"], "reset")
        self.assertEqual(r["alive"], "still alive")
        self.assertTrue(r["garbage_link"])
        self.assertTrue(r["logged_callback_error"])
        self.assertTrue(r["logged_handler_failure"])
        self.assertIn("aio", r["logger_names"])
        self.assertEqual(r["stopped_topology"], "NodeStopped")
        self.assertEqual(r["std_untouched"], [True, True, True])
        self.assertEqual(r["config_error"][0], "ConfigError")
        self.assertIn("'api_port' must be an integer", r["config_error"][1])
        self.assert_clean(r)

    def test_mcp_a2a_not_enabled(self) -> None:
        """call_mcp/call_a2a to a node without router or A2A server raise RemoteError with its reason."""
        r = run_scenario(self, "mcp_a2a_disabled")
        self.assertEqual(r["mcp"], "mcp not enabled on this node")
        self.assertEqual(r["a2a"], "a2a not enabled on this node")
        self.assert_clean(r)

    def test_mcp_a2a(self) -> None:
        """
        call_mcp returns the remote service's JSON-RPC response (the service saw the request),
        None for a notification (which the service also saw); an unknown service raises
        RemoteError with the router's reason; call_a2a(None) returns the agent card (one skill
        per registered service) and a SendMessage comes back as a completed task carrying the
        MCP reply.
        """
        r = run_scenario(self, "mcp_a2a")
        self.assertEqual(r["reply"], {"jsonrpc": "2.0", "id": 7, "result": {"echo": {"x": 1}}})
        self.assertIsNone(r["notification"])
        self.assertEqual(r["unknown_service"], "router error: Service not found: nope")
        self.assertEqual(r["card_skills"], ["echo"])
        self.assertEqual(r["a2a_state"], "TASK_STATE_COMPLETED")
        self.assertEqual(r["a2a_artifact"], r["reply"])
        self.assertEqual(r["service_saw"], ["tools/call", "notifications/initialized", "tools/call"])
        self.assert_clean(r)

    def test_mcp_session(self) -> None:
        """
        A server with the mcp SDK's defaults (sessions, SSE replies) behind the peer's router:
        call_mcp without a session gets the server's refusal as RemoteError; an mcp_session
        initializes (agreeing a protocol version, taking the server's session id), sends the
        initialized notification, lists and calls the tool; closing it ends the server's
        session (its id is refused afterwards). The SDK server leaves a watcher task of its own
        on the loop; nothing of the node's is left.
        """
        r = run_scenario(self, "mcp_stateful")
        self.assertEqual(r["no_session"], ["RemoteError", "router error: Service error: 400"])
        self.assertEqual(r["init_version"], "2025-06-18")
        self.assertTrue(r["has_session"])
        self.assertIsNone(r["initialized"])
        self.assertEqual(r["tools"], ["get_weather"])
        self.assertEqual(r["called"], "Oslo: sunny")
        self.assertTrue(r["closed"])
        self.assertEqual(r["after_close"], ["RemoteError", "router error: Service error: 404"])
        left = r["leftovers"]
        self.assertEqual([t for t in left["tasks"] if "sse_starlette" not in t], [])
        self.assertEqual((left["delayed_calls"], left["fds"], left["reactor_users"], left["twisted_threads"]),
                         ([], [], 0, []))

    def test_another_reactor(self) -> None:
        """With Twisted's default reactor already installed, start() raises ReactorError saying what to do."""
        r = run_scenario(self, "reactor_error")
        self.assertEqual(r["reactor"], "EPollReactor")
        self.assertIn("needs Twisted's asyncio reactor, but twisted.internet.epollreactor.EPollReactor", r["error"])
        self.assertIn("asyncioreactor.install()", r["error"])
        self.assertFalse(r["running"])

    def test_reactor_on_another_running_loop(self) -> None:
        """The asyncio reactor running on another loop (another thread): ReactorError."""
        r = run_scenario(self, "reactor_other_loop")
        self.assertIn("runs on another asyncio event loop (in another thread)", r["error"])

    def test_reactor_installed_before_the_loop(self) -> None:
        """asyncioreactor.install() before asyncio.run(): the node moves it to the running loop."""
        r = run_scenario(self, "installed_early")
        self.assertEqual(r["got"], "early")
        self.assertEqual(r["leftovers"], CLEAN)

    def test_two_loops(self) -> None:
        """A node in each of two asyncio.run() calls in one process: both work, both leave nothing."""
        r = run_scenario(self, "two_loops")
        self.assertEqual((r["first"], r["second"]), ("first", "second"))
        self.assertEqual(r["leftovers_first"], CLEAN)
        self.assertEqual(r["leftovers_second"], CLEAN)


class ExampleTests(SynchronousTestCase):
    """examples/aio_agents.py runs as the README shows."""

    def test_agents(self) -> None:
        """
        Two embedded nodes in one asyncio program: the planner's call_mcp reaches the weather
        agent's MCP tool (official SDK server, through the node's MCP router), so does the SDK's
        client through the planner's embedded bridge; its message arrives, and a stream round
        trip works; the program exits 0 with no traceback.
        """
        env = {k: v for k, v in os.environ.items() if k != "AXL_CONFIG"}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
        proc = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "aio_agents.py"), "--city", "Paris"],
            cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL, capture_output=True,
            timeout=SCENARIO_TIMEOUT,
        )
        out, err = proc.stdout.decode(), proc.stderr.decode()
        self.assertEqual(proc.returncode, 0, out + err)
        lines = out.splitlines()
        self.assertEqual(lines[0], "weather says: Paris: sunny, 17 C")
        self.assertEqual(lines[1], "via the mcp SDK client: tools ['get_weather']; Paris: sunny, 17 C")
        self.assertEqual(lines[2], "stream answer: 24")
        self.assertRegex(lines[3], r'^weather got a message from [0-9a-f]{8}…: \{"plan": "picnic in Paris"\}$')
        self.assertNotIn("Traceback", err)


    def test_readme(self) -> None:
        """
        The README's axl.aio example, run as printed (with a free port for its listener):
        the message arrives from the right sender and the stream comes back upper-cased.
        """
        text = (ROOT / "README.md").read_text()
        section = text[text.index("## Using it from asyncio"):]
        code = section[section.index("```python\n") + 10 : section.index("\n```", section.index("```python"))]
        code = code.replace("9101", str(free_port()))
        path = os.path.abspath(self.mktemp() + ".py")
        with open(path, "w") as f:
            f.write(code)
        env = {k: v for k, v in os.environ.items() if k != "AXL_CONFIG"}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
        proc = subprocess.run(
            [sys.executable, path], cwd=str(ROOT), env=env, stdin=subprocess.DEVNULL,
            capture_output=True, timeout=SCENARIO_TIMEOUT,
        )
        out = proc.stdout.decode()
        self.assertEqual(proc.returncode, 0, out + proc.stderr.decode())
        self.assertEqual(out.splitlines(), ["True b'hello'", "b'OVER THE OVERLAY'"])


class TwistdPeerTests(TwistdTestCase):
    """An embedded node and a twistd node."""

    def test_embedded_and_twistd(self) -> None:
        """
        An embedded node peered with a twistd node: its send() arrives at the twistd node's
        /recv, and the twistd node's /send arrives at its recv().
        """
        listen = f"tcp://127.0.0.1:{free_port()}"
        proc, port = self.start("t", {"Listen": [listen]})
        key = get_topology(port)["our_public_key"]
        r = run_scenario(self, "twistd_peer", {"listen": listen, "bridge_port": port, "key": key})
        self.assertEqual(r["twistd_got"], [200, "from asyncio"])
        self.assertEqual(r["twistd_send"], 200)
        self.assertEqual(r["we_got"], [True, "from twistd"])
        self.assertEqual(r["leftovers"], CLEAN)
        self.assertEqual(proc.stop(), 0)


class RealYggdrasilTests(SynchronousTestCase):
    """A real yggdrasil node (L{tests.realnode}) between two embedded nodes."""

    def relay(self, version: str) -> None:
        real = RealNode(self, version, listen=["tls://127.0.0.1:0"])
        real.start()
        r = run_scenario(self, "real_relay", {"uri": real.listen[0], "key": real.key.hex()})
        self.assertFalse(r["direct_link"])
        self.assertEqual(r["message"], [True, "via real yggdrasil"])
        self.assertTrue(r["stream_intact"])
        self.assertEqual(r["leftovers"], CLEAN)

    def test_relay_0_5_14(self) -> None:
        """
        Two embedded nodes peered only with a real yggdrasil 0.5.14 (no TUN, 127.0.0.1) reach
        each other through it: a message, and 4 MiB echoed over open_connection, intact.
        """
        self.relay("0.5.14")

    def test_relay_0_5_12(self) -> None:
        """The same through yggdrasil 0.5.12 (the version Go AXL embeds)."""
        self.relay("0.5.12")


# ---------------------------------------------------------------------------------------------
# units: no reactor, no sockets


class PeerKeyTests(SynchronousTestCase):
    def test_forms(self) -> None:
        """A peer is 64 hex digits (either case) or 32 bytes; anything else is ValueError."""
        key = bytes(range(32))
        self.assertEqual(peer_key(key.hex()), key)
        self.assertEqual(peer_key(key.hex().upper()), key)
        self.assertEqual(peer_key(key), key)
        for bad in ("ab" * 31, "zz" * 32, b"x" * 31, 42, key.hex() + "00", " ab" * 21 + "a"):
            self.assertRaises(ValueError, peer_key, bad)


class ConfigTests(SynchronousTestCase):
    def test_bad_config_at_construction(self) -> None:
        """Node(config) checks the config at once: a bad value is ConfigError naming key and source."""
        e = self.assertRaises(ConfigError, Node, {"tcp_port": 0.5})
        self.assertIn("'tcp_port'", str(e))
        self.assertIn("<dict>", str(e))

    def test_identity(self) -> None:
        """An identity given to Node is its key and address (the config's key is not loaded)."""
        ident = identity("B")
        node = Node({"PrivateKeyPath": "/nonexistent.pem"}, identity=ident)
        self.assertEqual(node.public_key, ident.public_key.hex())
        self.assertEqual(node.address, keys()["B"]["ipv6_address"])
        self.assertFalse(node.running)

    def test_path(self) -> None:
        """A path is read as node-config.json; a missing one is ConfigError naming it."""
        path = self.mktemp()
        with open(path, "w") as f:
            json.dump({"PrivateKey": keys()["A"]["private_key_64"]}, f)
        self.assertEqual(Node(path).public_key, keys()["A"]["public_key"])
        e = self.assertRaises(ConfigError, Node, path + ".missing")
        self.assertIn(".missing", str(e))


class ErrorMappingTests(SynchronousTestCase):
    def test_connection_lost(self) -> None:
        """Twisted loss reasons become the built-in exceptions asyncio sockets give; a clean close None."""
        self.assertIsNone(_streams.asyncio_error(Failure(ConnectionDone())))
        self.assertIsInstance(_streams.asyncio_error(Failure(ConnectionLost())), ConnectionResetError)
        self.assertIsInstance(_streams.asyncio_error(Failure(TCPTimedOutError())), TimeoutError)
        self.assertIsInstance(_streams.asyncio_error(Failure(RuntimeError("x"))), ConnectionError)


class LoggingTests(SynchronousTestCase):
    def test_namespace_and_level(self) -> None:
        """A Twisted event goes to the logging logger of its namespace at its level, formatted."""
        records: list[logging.LogRecord] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                records.append(record)

        logger = logging.getLogger("axl.test_aio_ns")
        handler = Keep()
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        self.addCleanup(logger.removeHandler, handler)
        observer = StdlibObserver()
        observer({"log_namespace": "axl.test_aio_ns", "log_level": LogLevel.warn,
                  "log_format": "peer {key} down", "key": "ab12…"})
        observer({"log_namespace": "axl.test_aio_ns", "log_level": LogLevel.debug,
                  "log_format": "not shown"})
        try:
            1 / 0
        except ZeroDivisionError:
            failure = Failure()
        observer({"log_namespace": "axl.test_aio_ns", "log_level": LogLevel.critical,
                  "log_format": "bug", "log_failure": failure})
        self.assertEqual([(r.levelno, r.getMessage()) for r in records],
                         [(logging.WARNING, "peer ab12… down"), (logging.CRITICAL, "bug")])
        self.assertIs(records[1].exc_info[1], failure.value)  # type: ignore[index]


class FakeOverlayTransport(StringTransport):
    """An overlay transport as the stream adapter sees it: a producer/consumer with a send buffer."""

    def __init__(self) -> None:
        super().__init__(
            hostAddress=OverlayAddress(b"\x01" * 32, 40000),  # type: ignore[arg-type]
            peerAddress=OverlayAddress(b"\x02" * 32, 8080),  # type: ignore[arg-type]
        )
        self.reading = True
        self.half_closed = False
        self.aborted = False
        self.conn = None

    def pauseProducing(self) -> None:
        self.reading = False

    def resumeProducing(self) -> None:
        self.reading = True

    def loseWriteConnection(self) -> None:
        self.half_closed = True

    def abortConnection(self) -> None:
        self.aborted = True


class StreamAdapterTests(SynchronousTestCase):
    """The asyncio streams adapter over a fake overlay transport, on a private asyncio loop."""

    def setUp(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.addCleanup(self.loop.close)
        self.factory = _streams.StreamFactory(self.loop, limit=16)
        self.transport = FakeOverlayTransport()
        self.bridge = self.factory.buildProtocol(None)
        self.bridge.makeConnection(self.transport)
        self.reader, self.writer = _streams.client_streams(self.factory, self.bridge)

    def wait(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def test_write_and_drain(self) -> None:
        """
        Writes reach the overlay transport; it registered the adapter as a streaming producer,
        and while it is paused drain() waits; resuming releases it.
        """
        self.assertIs(self.transport.producer, self.bridge)
        self.assertTrue(self.transport.streaming)
        self.writer.write(b"abc")
        self.writer.writelines([b"d", b"e"])
        self.assertEqual(self.transport.value(), b"abcde")
        self.bridge.pauseProducing()
        drain = self.loop.create_task(self.writer.drain())
        self.wait(asyncio.sleep(0))
        self.wait(asyncio.sleep(0))
        self.assertFalse(drain.done())
        self.bridge.resumeProducing()
        self.wait(drain)
        self.assertTrue(drain.done())

    def test_read_pauses_and_resumes(self) -> None:
        """
        Past twice its limit the reader pauses the overlay transport (closing the window);
        reading resumes it, on the next loop turn (not inside the read).
        """
        self.bridge.dataReceived(b"x" * 40)
        self.assertFalse(self.transport.reading)
        read = self.reader.read(30)
        with self.assertRaises(StopIteration) as done:  # data is there: read() never suspends
            read.send(None)
        self.assertEqual(done.exception.value, b"x" * 30)
        self.assertFalse(self.transport.reading)  # resumed later, not inside read()
        self.wait(asyncio.sleep(0))
        self.assertTrue(self.transport.reading)

    def test_eof_and_close(self) -> None:
        """
        The peer's FIN is EOF for the reader; write_eof() half-closes; close() unregisters the
        producer and closes after what is written; connectionLost wakes wait_closed().
        """
        self.bridge.readConnectionLost()
        self.assertEqual(self.wait(self.reader.read()), b"")
        self.writer.write_eof()
        self.assertTrue(self.transport.half_closed)
        self.assertIsNone(self.transport.producer)
        self.assertRaises(RuntimeError, self.writer.write, b"late")
        self.writer.close()
        self.assertTrue(self.transport.disconnecting)
        self.bridge.connectionLost(Failure(ConnectionDone()))
        self.wait(self.writer.wait_closed())

    def test_reset(self) -> None:
        """A reset connection fails a pending read with ConnectionResetError; abort() resets ours."""
        read = self.loop.create_task(self.reader.read(10))
        self.wait(asyncio.sleep(0))
        self.bridge.connectionLost(Failure(ConnectionLost("reset by peer")))
        self.assertRaises(ConnectionResetError, self.wait, read)
        self.writer.transport.abort()
        self.assertTrue(self.transport.aborted)

    def test_extra_info(self) -> None:
        """peername/sockname are (64-hex key, port); peer_key the 32 bytes."""
        self.assertEqual(self.writer.get_extra_info("peername"), ("02" * 32, 8080))
        self.assertEqual(self.writer.get_extra_info("sockname"), ("01" * 32, 40000))
        self.assertEqual(self.writer.get_extra_info("peer_key"), b"\x02" * 32)
        self.assertIsNone(self.writer.get_extra_info("nothing"))
