# -*- test-case-name: tests.test_listening -*-
"""
Listen now or fail with a clear error: the one way every server the node (and its companion
programs) starts is bound.

A node must not claim to run while one of its servers is not listening, so binding happens in
C{startService}, synchronously (TCP and overlay endpoints listen at once), and a failure is a
L{StartupError} whose one-line message names the address, the reason and what to change
(C{axl.tap} turns it into exit status 1; spec/axl-node.md section 3).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import (
    IListeningPort,
    IProtocolFactory,
    IReactorTCP,
    IStreamServerEndpoint,
)
from twisted.python.failure import Failure

from axl.errors import StartupError

__all__ = ["ListeningService", "listen_now", "tcp_server_endpoint"]


def tcp_server_endpoint(reactor: IReactorTCP, host: str, port: int) -> IStreamServerEndpoint:
    """A TCP server endpoint on C{host} (IPv4 or IPv6 literal, or a name) and C{port}."""
    try:
        is_v6 = ipaddress.ip_address(host.split("%", 1)[0]).version == 6
    except ValueError:
        is_v6 = False  # a host name: bound as IPv4, resolved by the socket layer
    if is_v6:
        return TCP6ServerEndpoint(reactor, port, interface=host)
    return TCP4ServerEndpoint(reactor, port, interface=host)


def _reason(failure: Failure) -> str:
    """Why a listen failed, in lower case: the socket error's text when there is one."""
    error = failure.value
    if isinstance(error, CannotListenError):
        error = error.socketError
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return text[0].lower() + text[1:]


def listen_now(
    endpoint: IStreamServerEndpoint, factory: IProtocolFactory, what: str, hint: str = ""
) -> IListeningPort:
    """
    Listen on C{endpoint} with C{factory} and return the port, or raise.

    @param what: the server and its address, e.g. C{"127.0.0.1:9002 for the HTTP bridge"}.
    @param hint: what the operator can change, e.g. C{"set another api_port ... in c.json"}.
    @raise StartupError: C{"cannot listen on <what> (<reason>); <hint>"}, also when the endpoint
        does not listen at once (every endpoint the node uses does).
    """
    outcome: list[IListeningPort | Failure] = []
    endpoint.listen(factory).addBoth(outcome.append)
    suffix = f"; {hint}" if hint else ""
    if not outcome:
        raise StartupError(f"cannot listen on {what} (the endpoint did not listen at once){suffix}")
    result = outcome[0]
    if isinstance(result, Failure):
        raise StartupError(f"cannot listen on {what} ({_reason(result)}){suffix}")
    return result


class ListeningService(Service):
    """
    A service that binds C{endpoint} in C{startService} with L{listen_now} (so a failure stops
    the start, with its error) and stops listening in C{stopService}.

    @ivar port: the listening port while running, else None.
    """

    def __init__(
        self,
        endpoint: IStreamServerEndpoint,
        factory: IProtocolFactory,
        what: str,
        hint: str = "",
        listening: Callable[[IListeningPort], None] | None = None,
    ) -> None:
        """
        @param what: the server and its address, for the error (see L{listen_now}).
        @param hint: what to change when it fails, for the error.
        @param listening: called with the port once bound (e.g. to log the address).
        """
        self.endpoint = endpoint
        self.factory = factory
        self.what = what
        self.hint = hint
        self._listening = listening
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        """Bind now; raise L{StartupError} if that fails."""
        self.port = listen_now(self.endpoint, self.factory, self.what, self.hint)
        super().startService()  # type: ignore[no-untyped-call]
        if self._listening is not None:
            self._listening(self.port)

    def stopService(self) -> Deferred[None] | None:
        """Stop listening (connections already accepted are not affected)."""
        super().stopService()  # type: ignore[no-untyped-call]
        port, self.port = self.port, None
        if port is not None:
            return port.stopListening()
        return None
