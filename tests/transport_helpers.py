"""
Shared helpers for the transport tests (quic, ws, socks, multicast): a SOCKS5 proxy to dial
through, a bulk C{/send} between two in-process nodes, and bounded polling on the real reactor.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path
from typing import Any, Callable

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import HostnameEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.trial.unittest import TestCase
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure

from axl.node import Node
from tests import realnode
from tests.inprocess import wait_until

__all__ = ["assert_link_and_bulk", "Socks5Proxy", "wait_for", "send_bulk", "BULK_SIZE", "RealNode", "real_binary", "free_udp_port"]

BULK_SIZE = 16 * 1024 * 1024


class _Relay(Protocol):
    def __init__(self, other: Protocol) -> None:
        self.other = other

    def dataReceived(self, data: bytes) -> None:
        assert self.other.transport is not None
        self.other.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.other.transport is not None:
            self.other.transport.loseConnection()


class _ProxyProtocol(Protocol):
    """A minimal SOCKS5 server (RFC 1928 CONNECT, RFC 1929 auth) for tests."""

    def __init__(self, proxy: Socks5Proxy) -> None:
        self.proxy = proxy
        self.buf = b""
        self.stage = "greeting"
        self.peer: _Relay | None = None

    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        if self.peer is not None:
            assert self.peer.transport is not None
            self.peer.transport.write(data)
            return
        self.buf += data
        self.proxy.received.append(data)
        while self._step():
            pass

    def _step(self) -> bool:
        assert self.transport is not None
        b = self.buf
        if self.stage == "greeting" and len(b) >= 2 and len(b) >= 2 + b[1]:
            methods = b[2 : 2 + b[1]]
            self.buf = b[2 + b[1] :]
            if self.proxy.auth is not None:
                if 2 not in methods:
                    self.transport.write(b"\x05\xff")
                    self.transport.loseConnection()
                    return False
                self.transport.write(b"\x05\x02")
                self.stage = "auth"
            else:
                self.transport.write(b"\x05\x00")
                self.stage = "connect"
            return True
        if self.stage == "auth" and len(b) >= 2 and len(b) >= 3 + b[1]:
            ulen = b[1]
            plen = b[2 + ulen]
            if len(b) < 3 + ulen + plen:
                return False
            user, password = b[2 : 2 + ulen].decode(), b[3 + ulen : 3 + ulen + plen].decode()
            self.buf = b[3 + ulen + plen :]
            if (user, password) != self.proxy.auth:
                self.transport.write(b"\x01\x01")
                self.transport.loseConnection()
                return False
            self.transport.write(b"\x01\x00")
            self.stage = "connect"
            return True
        if self.stage == "connect" and len(b) >= 5:
            atyp = b[3]
            if atyp == 1:
                size, host = 10, ".".join(str(x) for x in b[4:8])
            elif atyp == 3:
                size, host = 7 + b[4], b[5 : 5 + b[4]].decode()
            else:
                size, host = 22, "::1"
            if len(b) < size:
                return False
            (port,) = struct.unpack("!H", b[size - 2 : size])
            self.buf = b[size:]
            self.proxy.requests.append((atyp, host, port))
            self.stage = "dialling"
            self.transport.pauseProducing()  # type: ignore[attr-defined]
            relay = _Relay(self)
            d = HostnameEndpoint(reactor, host, port).connect(Factory.forProtocol(lambda: relay))
            d.addCallbacks(self._connected, self._refused)
            return False
        return False

    def _connected(self, relay: _Relay) -> None:
        assert self.transport is not None and relay.transport is not None
        self.peer = relay
        self.transport.write(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x00")
        if self.buf:
            relay.transport.write(self.buf)
        self.buf = b""
        self.transport.resumeProducing()  # type: ignore[attr-defined]

    def _refused(self, failure: Failure) -> None:
        assert self.transport is not None
        self.transport.write(b"\x05\x05\x00\x01\x00\x00\x00\x00\x00\x00")
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.loseConnection()


class Socks5Proxy:
    """
    A SOCKS5 proxy on 127.0.0.1 for tests; records the raw bytes of each exchange and the
    (ATYP, host, port) of each CONNECT.
    """

    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self.auth = auth
        self.received: list[bytes] = []
        self.requests: list[tuple[int, str, int]] = []
        self.port: IListeningPort | None = None

    @inlineCallbacks
    def start(self) -> Any:
        self.port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(lambda: _ProxyProtocol(self))
        )
        return self.port.getHost().port  # type: ignore[union-attr]

    def stop(self) -> Deferred[None] | None:
        return self.port.stopListening() if self.port is not None else None  # type: ignore[return-value]


def wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> Deferred[float]:
    """L{tests.inprocess.wait_until} as a Deferred, for C{inlineCallbacks} code."""
    return Deferred.fromCoroutine(wait_until(what, check, timeout))


@inlineCallbacks
def assert_link_and_bulk(test: TestCase, receiver: Node, sender: Node, scheme: str) -> Any:
    """
    Wait until C{sender} and C{receiver} have their link, check the receiver lists it as
    C{scheme://127.0.0.1:…}, then L{send_bulk} and check the payload and the sender id.
    """
    yield wait_for(f"the {scheme} link", lambda: bool(sender.links.links()) and bool(receiver.links.links()))
    test.assertTrue(receiver.links.entries()[0].uri.startswith(f"{scheme}://127.0.0.1:"))
    sent, got, sender_id = yield send_bulk(sender, receiver)
    test.assertEqual(len(got), BULK_SIZE)
    test.assertTrue(got == sent, "payload corrupted")
    test.assertEqual(sender_id, sender.identity.public_key.hex())


@inlineCallbacks
def send_bulk(sender: Node, receiver: Node, size: int = BULK_SIZE, timeout: float = 120.0) -> Any:
    """
    POST C{size} random bytes to C{sender}'s C{/send} for C{receiver}, then read them from
    C{receiver}'s C{/recv}; return (sent payload, received payload, sender id header).
    """
    payload = os.urandom(size)
    key = receiver.identity.public_key.hex()
    base_s = f"http://127.0.0.1:{sender.config.api_port}"
    base_r = f"http://127.0.0.1:{receiver.config.api_port}"
    response = yield treq.post(
        f"{base_s}/send", data=payload, headers={"X-Destination-Peer-Id": key}, timeout=timeout,
        persistent=False,
    )
    body = yield response.content()
    if response.code != 200:
        raise AssertionError(f"/send answered {response.code}: {body!r}")
    got = yield treq.get(f"{base_r}/recv?wait=30", timeout=timeout, persistent=False)
    data = yield got.content()
    return payload, data, got.headers.getRawHeaders("X-From-Peer-Id", [""])[0]


# ---------------------------------------------------------------------------------------------
# Real Yggdrasil nodes (../shared/bin, found by tests.realnode), on 127.0.0.1 only.


def real_binary(name: str) -> Path:
    """
    The executable C{name} (C{yggdrasil-0.5.14}, C{yggdrasilctl-0.5.12}, ...) as
    L{tests.realnode.require} finds it; skips the test when the binaries are missing.
    """
    program, version = name.rsplit("-", 1)
    return Path(realnode.require(program, version))


class RealNode:
    """
    A L{tests.realnode.RealNode} started from the reactor (L{start} returns a Deferred), with
    the waits the transport tests need; stopped by PID in the test's cleanup.
    """

    def __init__(self, test: TestCase, version: str = "0.5.14") -> None:
        self.test = test
        self.version = version
        self.key = b""

    @inlineCallbacks
    def start(self, listen: list[str] = (), peers: list[str] = (), **extra: Any) -> Any:  # type: ignore[assignment]
        self.node = realnode.RealNode(None, self.version, listen=list(listen), peers=list(peers), extra=extra)
        self.key = self.node.key
        # Stopped off the reactor's thread, so the reactor keeps turning while the process ends
        # (the links' close timers, e.g. autobahn's, run out before the test's reactor check).
        self.test.addCleanup(deferToThread, self.node.stop)
        yield self.node.start_async()
        return self

    def admin(self, request: str) -> Deferred[Any]:
        """One admin request, answered in the reactor's thread pool."""
        return self.node.admin_async(request)

    @inlineCallbacks
    def up_peers(self) -> Any:
        """The real node's getPeers entries that are up."""
        result = yield self.admin("getPeers")
        return [p for p in result.get("peers") or [] if p.get("up")]

    @inlineCallbacks
    def wait_peer_up(self, key: bytes, timeout: float = 30.0) -> Any:
        """Wait until the real node lists C{key} up; return its getPeers entry."""
        waited = 0.0
        while waited < timeout:
            for peer in (yield self.up_peers()):
                if peer.get("key") == key.hex():
                    return peer
            yield deferLater(reactor, 0.25, lambda: None)
            waited += 0.25
        raise AssertionError(f"real node never listed {key.hex()[:8]} up; log:\n{self.log()}")

    def log(self) -> str:
        return self.node.log()


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
