# -*- test-case-name: tests.test_listening -*-
"""
Tests for L{axl.listening}: the one "listen now or fail with a clear error" helper every server
of the node (bridge, message listener) and of the companion programs uses.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.trial.unittest import SynchronousTestCase

from axl.errors import StartupError
from axl.listening import ListeningService, listen_now


class _Port:
    stopped = 0

    def stopListening(self) -> Deferred[None]:
        self.stopped += 1
        return succeed(None)


class _Endpoint:
    def __init__(self, result: Any) -> None:
        self.result = result
        self.factories: list[Any] = []

    def listen(self, factory: Any) -> Any:
        self.factories.append(factory)
        return self.result


class ListenNowTests(SynchronousTestCase):
    def test_returns_port(self) -> None:
        """A successful listen returns the port, having listened with the given factory."""
        port, factory = _Port(), Factory()
        endpoint = _Endpoint(succeed(port))
        self.assertIs(listen_now(endpoint, factory, "x"), port)  # type: ignore[arg-type]
        self.assertEqual(endpoint.factories, [factory])

    def test_socket_error(self) -> None:
        """A CannotListenError names the address, the socket's reason (lower case) and the hint."""
        err = CannotListenError("127.0.0.1", 9002, OSError(98, "Address already in use"))
        with self.assertRaises(StartupError) as cm:
            listen_now(_Endpoint(fail(err)), Factory(), "127.0.0.1:9002 for the HTTP bridge", "set api_port")  # type: ignore[arg-type]
        self.assertEqual(
            str(cm.exception),
            "cannot listen on 127.0.0.1:9002 for the HTTP bridge (address already in use); set api_port",
        )

    def test_other_error(self) -> None:
        """Any other failure gives its message; without a hint there is no trailing clause."""
        with self.assertRaises(StartupError) as cm:
            listen_now(_Endpoint(fail(RuntimeError("Boom"))), Factory(), "overlay port 7000")  # type: ignore[arg-type]
        self.assertEqual(str(cm.exception), "cannot listen on overlay port 7000 (boom)")

    def test_not_at_once(self) -> None:
        """An endpoint that does not answer at once is an error too (the node would not know)."""
        with self.assertRaises(StartupError) as cm:
            listen_now(_Endpoint(Deferred()), Factory(), "x")  # type: ignore[arg-type]
        self.assertEqual(str(cm.exception), "cannot listen on x (the endpoint did not listen at once)")


class ListeningServiceTests(SynchronousTestCase):
    def test_start_and_stop(self) -> None:
        """startService binds and reports the port; stopService stops listening once."""
        port, seen = _Port(), []
        service = ListeningService(_Endpoint(succeed(port)), Factory(), "x", listening=seen.append)  # type: ignore[arg-type]
        service.startService()
        self.assertEqual((service.port, seen, service.running), (port, [port], 1))
        self.successResultOf(service.stopService())
        self.assertEqual((port.stopped, service.port), (1, None))
        self.assertIsNone(service.stopService())

    def test_failure_stops_the_start(self) -> None:
        """A failed bind raises StartupError from startService and leaves the service stopped."""
        service = ListeningService(_Endpoint(fail(OSError("nope"))), Factory(), "x", "change y")  # type: ignore[arg-type]
        self.assertRaises(StartupError, service.startService)
        self.assertEqual((service.running, service.port), (0, None))
