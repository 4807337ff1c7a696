# -*- test-case-name: tests.test_link_quic -*-
"""
Peering over QUIC: C{quic://host:port}, listen and dial (spec/yggdrasil-extras.md section 3).

aioquic's C{QuicConnection} is sans-IO; L{QuicDriver} drives one from a Twisted UDP port and the
reactor's clock (no asyncio). QUIC v1, TLS 1.3 with the node's Ed25519 certificate, no ALPN, no
SNI, nothing verified. The dialer opens client bidirectional stream 0 as soon as the handshake is
done and the link writes its meta at once; the listener takes the first client bidirectional
stream that carries data as the link (concurrently for every connection). The stream is the
link's byte stream: meta handshake and ironwood framing are unchanged.

Closing: when the link ends we FIN the stream and close the QUIC connection (application error
0) once the peer's FIN is in or after L{CLOSE_GRACE}; a FIN or reset from the peer ends the link
and closes the connection (Go itself only FINs). Idle timeout 60 s, a PING after 20 s without
sending, 5 s for the handshake.

Flow control: received stream data is handed to the link as it arrives (the link consumes it at
once, so aioquic's receive window never holds more than it granted). Written data waits in
aioquic's send buffer until flow and congestion control let it out and the peer acknowledges it;
the link's transport is an C{IConsumer}, and the producer the link registers on it (its
L{axl.link.protocol.LinkProtocol}) is paused while more than L{SEND_BUFFER_HIGH} bytes wait
there, and resumed below a quarter of it. While paused, the link counts what it writes against
its own bound and the node's shared budget (L{axl.link.core.WriteBudget}), exactly as on TCP:
Traffic is dropped, a peer that does not read is dropped. Unlike TCP the link does not stop
reading: aioquic raises the peer's receive window by itself as data arrives, so holding the
data back would only move it into our memory; the answers it makes us write are what is bounded.

Receive windows (issue 12): aioquic doubles a stream's and the connection's receive window
whenever the highest offset received passes half of it, out-of-order data included, and keeps
the gap before out-of-order data as zero bytes: a peer sending one byte ever further ahead would
make it allocate without bound. L{BoundedQuicConnection} slides both windows instead, to
L{RECEIVE_WINDOW} past what has been delivered once the connection carries a link (and
L{INITIAL_WINDOW} before: a connection that has no link yet costs little), so a connection never
holds more than that of received data.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from typing import Any, Callable

from aioquic._buffer import Buffer
from aioquic.quic import events
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicPacketType, encode_quic_version_negotiation, pull_quic_header
from zope.interface import implementer

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectError, ConnectionDone, ConnectionLost, DNSLookupError
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IProtocol,
    IConsumer,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
    IResolutionReceiver,
    IStreamClientEndpoint,
    IStreamServerEndpoint,
    ITransport,
)
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from axl.link.tls import LinkTLS
from axl.logs import observer as log_observer

__all__ = [
    "IDLE_TIMEOUT",
    "KEEPALIVE_PERIOD",
    "HANDSHAKE_TIMEOUT",
    "CLOSE_GRACE",
    "STREAM_TIMEOUT",
    "SEND_BUFFER_HIGH",
    "RECEIVE_WINDOW",
    "INITIAL_WINDOW",
    "BoundedQuicConnection",
    "MAX_CONNECTIONS",
    "quic_configuration",
    "QuicDriver",
    "QuicLinkTransport",
    "QuicClientEndpoint",
    "QuicServerEndpoint",
    "QuicServerPort",
    "suitable_addresses",
]

IDLE_TIMEOUT = 60.0
KEEPALIVE_PERIOD = 20.0
HANDSHAKE_TIMEOUT = 5.0
# A server connection whose client sends nothing on a stream this long after the handshake is
# closed (the link's own meta deadline is as long), so silent connections cannot hold slots.
STREAM_TIMEOUT = 6.0
# After our FIN, how long we wait for the peer's before closing the QUIC connection anyway.
CLOSE_GRACE = 2.0
# Pause a registered producer while this much written data is still unacknowledged; resume below
# a quarter of it. It is part of each QUIC link's memory (issue 12): 1 MiB bulk /send over a
# quic:// loopback link as fast as 4 MiB (8-10 MiB/s both), 256 KiB cost about 40 %.
SEND_BUFFER_HIGH = 1024 * 1024
# Received data a connection with a link may hold beyond what it has delivered (each stream, and
# in all), and the same before the link stream is known (the windows the handshake announces).
RECEIVE_WINDOW = 1024 * 1024
INITIAL_WINDOW = 64 * 1024
# UDP socket buffers: bursts of datagrams must not overflow the kernel's default (~208 KiB)
# while the reactor is busy, or they are lost and QUIC's congestion control backs off.
SOCKET_BUFFER = 4 * 1024 * 1024
# QUIC connections one listener keeps at once (each costs a QuicConnection); more are dropped.
MAX_CONNECTIONS = 256

Address = tuple[Any, ...]


def quic_configuration(tls: LinkTLS, is_client: bool) -> QuicConfiguration:
    """Yggdrasil's QUIC settings (extras 3.1) with the node's certificate and key."""
    return QuicConfiguration(
        is_client=is_client,
        alpn_protocols=None,
        server_name=None,
        verify_mode=ssl.CERT_NONE,
        idle_timeout=IDLE_TIMEOUT,
        certificate=tls.certificate,
        private_key=tls.private_key,
        max_datagram_frame_size=None,
        max_data=INITIAL_WINDOW,
        max_stream_data=INITIAL_WINDOW,
    )


class BoundedQuicConnection(QuicConnection):
    """
    aioquic's C{QuicConnection} whose receive windows slide (C{window} past what was delivered,
    never less than already granted) instead of doubling without bound.

    @ivar window: L{INITIAL_WINDOW}; the driver raises it to L{RECEIVE_WINDOW} when the
        connection's link stream is known.
    """

    window = INITIAL_WINDOW

    def held(self) -> int:
        """Received bytes not delivered yet (out-of-order data and the gaps before it)."""
        return sum(len(stream.receiver._buffer) for stream in self._streams.values())

    def _write_connection_limits(self, builder: Any, space: Any) -> None:
        limit = self._local_max_data
        limit.value = max(limit.value, limit.used - self.held() + self.window)
        used, limit.used = limit.used, 0  # aioquic doubles the window when used > value / 2
        try:
            super()._write_connection_limits(builder, space)
        finally:
            limit.used = used

    def _write_stream_limits(self, builder: Any, space: Any, stream: Any) -> None:
        receiver = stream.receiver
        if stream.max_stream_data_local:
            stream.max_stream_data_local = max(
                stream.max_stream_data_local, receiver.starting_offset() + self.window
            )
        highest, receiver.highest_offset = receiver.highest_offset, 0  # as above, per stream
        try:
            super()._write_stream_limits(builder, space, stream)
        finally:
            receiver.highest_offset = highest


@implementer(ITransport, IConsumer, IPushProducer)
class QuicLinkTransport:
    """
    The link's stream transport: one bidirectional QUIC stream of one connection. As a
    consumer it pauses its producer while aioquic holds more than L{SEND_BUFFER_HIGH} bytes of
    the stream unacknowledged.
    """

    def __init__(self, driver: QuicDriver, stream_id: int) -> None:
        self._driver = driver
        self.stream_id = stream_id
        self._producer: Any = None
        self._paused = False
        self.disconnecting = False

    def write(self, data: bytes) -> None:
        if self.disconnecting or not data:
            return
        self._driver.connection.send_stream_data(self.stream_id, bytes(data))
        self._driver.transmit_soon()
        self._check_buffer()

    def writeSequence(self, data: Any) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        if not self.disconnecting:
            self.disconnecting = True
            self._driver.finish_stream(self.stream_id)

    def abortConnection(self) -> None:
        """Close the whole QUIC connection now (the link has one stream)."""
        self.disconnecting = True
        self._driver.close("link aborted")

    def getPeer(self) -> IPv4Address | IPv6Address:
        return self._driver.peer_address()

    def getHost(self) -> Any:
        return self._driver.host_address()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Pause C{producer} while more than C{SEND_BUFFER_HIGH} bytes are unacknowledged."""
        self._producer = producer
        self._check_buffer()

    def unregisterProducer(self) -> None:
        """Forget the producer."""
        self._producer = None

    def pauseProducing(self) -> None:  # IPushProducer: nothing to pause; we never buffer reads
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        self.abortConnection()

    def buffered(self) -> int:
        """Bytes written and not yet acknowledged by the peer."""
        return self._driver.unacked(self.stream_id)

    def _check_buffer(self) -> None:
        if self._producer is None:
            return
        size = self.buffered()
        if not self._paused and size > SEND_BUFFER_HIGH:
            self._paused = True
            self._producer.pauseProducing()
        elif self._paused and size < SEND_BUFFER_HIGH // 4:
            self._paused = False
            self._producer.resumeProducing()


class QuicDriver:
    """
    Drives one C{QuicConnection}: datagrams in and out, the connection's timer on C{clock},
    its events to the link on the link stream.

    @param send: sends one datagram to an address (the UDP port's C{write}).
    @param on_link: called once with the link's stream id when the link stream is known
        (client: after the handshake; server: on the first client stream with data); returns
        the link protocol, or None to refuse (the connection is then closed).
    @param on_closed: called once when the connection is gone.
    """

    log = Logger(observer=log_observer)

    def __init__(
        self,
        connection: QuicConnection,
        clock: IReactorTime,
        send: Callable[[bytes, Address], None],
        peer: Address,
        host: Any,
        on_link: Callable[[QuicDriver, int], IProtocol | None],
        on_closed: Callable[[QuicDriver, str], None],
    ) -> None:
        self.connection = connection
        self._clock = clock
        self._send = send
        self._peer = peer
        self._host = host
        self._on_link = on_link
        self._on_closed = on_closed
        self.link: IProtocol | None = None
        self.link_transport: QuicLinkTransport | None = None
        self.stream_id: int | None = None
        self.handshake_done = False
        self.closed = False
        self.close_reason = ""
        self._timer: IDelayedCall | None = None
        self._handshake_timer: IDelayedCall | None = self._clock.callLater(
            HANDSHAKE_TIMEOUT, self._handshake_timeout
        )
        self._keepalive: IDelayedCall | None = None
        self._grace: IDelayedCall | None = None
        self._soon: IDelayedCall | None = None
        self._ping_id = 0
        self._peer_finished = False

    # -- addresses -------------------------------------------------------------------------

    def peer_address(self) -> IPv4Address | IPv6Address:
        """The remote UDP address, as a Twisted address."""
        host, port = self._peer[0], self._peer[1]
        if ":" in host:
            return IPv6Address("UDP", host, port)
        return IPv4Address("UDP", host, port)

    def host_address(self) -> Any:
        """Our UDP port's address."""
        return self._host

    # -- inputs ----------------------------------------------------------------------------

    def connect(self) -> None:
        """Client: start the handshake."""
        self.connection.connect(self._peer, now=self._clock.seconds())
        self.transmit()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        """Feed one UDP datagram from C{addr} to the connection and act on its events."""
        if self.closed:
            return
        self.connection.receive_datagram(data, addr, now=self._clock.seconds())
        self._process_events()
        self.transmit_soon()

    def finish_stream(self, stream_id: int) -> None:
        """Our side of the link is done: FIN the stream, close the connection soon."""
        if self.closed:
            return
        self.connection.send_stream_data(stream_id, b"", end_stream=True)
        self.transmit()
        if self._peer_finished:
            self.close("link closed")
        elif self._grace is None:
            self._grace = self._clock.callLater(CLOSE_GRACE, self.close, "link closed")

    def close(self, reason: str, clean: bool = True) -> None:
        """Close the QUIC connection (application error 0) and end the link."""
        if self.closed:
            return
        self.connection.close(error_code=0, reason_phrase="")
        self.transmit()
        self._terminated(reason, clean)

    def unacked(self, stream_id: int) -> int:
        """Bytes written to stream C{stream_id} and not yet acknowledged by the peer."""
        stream = self.connection._streams.get(stream_id)  # aioquic has no public accessor
        if stream is None:
            return 0
        return len(stream.sender._buffer)

    # -- output ----------------------------------------------------------------------------

    def transmit_soon(self) -> None:
        """
        L{transmit} once the reactor is done with what it is doing: a burst of link writes or of
        received datagrams (Twisted reads many per wake-up) then costs one packet-building pass
        instead of one each.
        """
        if self._soon is None and not self.closed:
            self._soon = self._clock.callLater(0, self.transmit)

    def transmit(self) -> None:
        """Send whatever aioquic has for the network, then re-arm its timer."""
        if self._soon is not None:
            if self._soon.active():
                self._soon.cancel()
            self._soon = None
        now = self._clock.seconds()
        sent = False
        for data, addr in self.connection.datagrams_to_send(now=now):
            self._send(data, addr)
            sent = True
        if sent and self.handshake_done and not self.closed:
            self._arm_keepalive()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        when = self.connection.get_timer()
        if when is not None and not self.closed:
            self._timer = self._clock.callLater(max(0.0, when - now), self._timer_fired)
        if self.link_transport is not None:
            self.link_transport._check_buffer()

    def _timer_fired(self) -> None:
        self._timer = None
        self.connection.handle_timer(now=self._clock.seconds())
        self._process_events()
        self.transmit()

    def _arm_keepalive(self) -> None:
        if self._keepalive is not None and self._keepalive.active():
            self._keepalive.reset(KEEPALIVE_PERIOD)
        else:
            self._keepalive = self._clock.callLater(KEEPALIVE_PERIOD, self._send_ping)

    def _send_ping(self) -> None:
        self._keepalive = None
        if self.closed:
            return
        self._ping_id += 1
        self.connection.send_ping(self._ping_id)
        self.transmit()

    def _no_stream(self) -> None:
        self._handshake_timer = None
        if self.stream_id is None:
            self.close(f"no link stream within {STREAM_TIMEOUT:g} s of the QUIC handshake", clean=False)

    def _handshake_timeout(self) -> None:
        self._handshake_timer = None
        if not self.handshake_done:
            self.close(f"QUIC handshake not finished within {HANDSHAKE_TIMEOUT:g} s", clean=False)

    # -- events ----------------------------------------------------------------------------

    def _process_events(self) -> None:
        while not self.closed:
            event = self.connection.next_event()
            if event is None:
                return
            if isinstance(event, events.HandshakeCompleted):
                self.handshake_done = True
                if self._handshake_timer is not None and self._handshake_timer.active():
                    self._handshake_timer.cancel()
                self._handshake_timer = None
                if self.connection._is_client:
                    self._start_link(self.connection.get_next_available_stream_id())
                elif self.stream_id is None:
                    self._handshake_timer = self._clock.callLater(STREAM_TIMEOUT, self._no_stream)
            elif isinstance(event, events.StreamDataReceived):
                self._stream_data(event)
            elif isinstance(event, events.StreamReset):
                if event.stream_id == self.stream_id:
                    self.close("the peer reset the link stream", clean=False)
            elif isinstance(event, events.ConnectionTerminated):
                reason = event.reason_phrase or f"error {event.error_code:#x}"
                self._terminated(f"QUIC connection closed ({reason})", event.error_code == 0)

    def _stream_data(self, event: events.StreamDataReceived) -> None:
        sid = event.stream_id
        if self.stream_id is None:
            # Server: the first client-initiated bidirectional stream with data is the link.
            if self.connection._is_client or sid % 4 != 0:
                return
            self._start_link(sid)
            if self.closed:
                return
        if sid != self.stream_id:
            return  # other streams are never read (extras 3.2)
        if event.data and self.link is not None:
            self.link.dataReceived(event.data)
        if event.end_stream and not self.closed:
            self._peer_finished = True
            if self.link_transport is not None and self.link_transport.disconnecting:
                self.close("link closed")
            else:
                self.close("the peer finished the link stream")

    def _start_link(self, stream_id: int) -> None:
        self.stream_id = stream_id
        if isinstance(self.connection, BoundedQuicConnection):
            self.connection.window = RECEIVE_WINDOW
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        self._handshake_timer = None
        link = self._on_link(self, stream_id)
        if link is None:
            self.close("link refused", clean=False)
            return
        self.link = link
        self.link_transport = QuicLinkTransport(self, stream_id)
        link.makeConnection(self.link_transport)

    def _terminated(self, reason: str, clean: bool) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        for timer in (self._timer, self._handshake_timer, self._keepalive, self._grace, self._soon):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._handshake_timer = self._keepalive = self._grace = self._soon = None
        link, self.link = self.link, None
        if link is not None:
            link.connectionLost(Failure(ConnectionDone(reason) if clean else ConnectionLost(reason)))
        self._on_closed(self, reason)


# ---------------------------------------------------------------------------------------------
# Twisted: the UDP ports.


def _enlarge_buffers(port: Any) -> None:
    """Ask for L{SOCKET_BUFFER}-sized kernel buffers on a listening UDP port (best effort)."""
    sock = getattr(port, "socket", None)
    if sock is None:
        return
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        except OSError:
            pass


class _ClientPort(DatagramProtocol):
    """The UDP socket of one outgoing connection (a fresh one per dial, as Go does)."""

    def __init__(self) -> None:
        self.driver: QuicDriver | None = None

    def datagramReceived(self, datagram: bytes, addr: Address) -> None:
        if self.driver is not None:
            self.driver.datagram_received(datagram, addr)

    def send(self, data: bytes, addr: Address) -> None:
        if self.transport is not None:
            try:
                self.transport.write(data, addr)
            except OSError:
                pass  # lost like any datagram; QUIC retransmits or times out


@implementer(IResolutionReceiver)
class _Addresses:
    """Collects a host name's addresses (extras 2.1: no unspecified, multicast or 200::/7)."""

    def __init__(self) -> None:
        self.addresses: list[str] = []
        self.done: Deferred[list[str]] = Deferred()

    def resolutionBegan(self, resolution: Any) -> None:
        pass

    def addressResolved(self, address: Any) -> None:
        self.addresses.append(address.host)

    def resolutionComplete(self) -> None:
        self.done.callback(self.addresses)


def suitable_addresses(hosts: list[str]) -> list[str]:
    """Drop unspecified, multicast and Yggdrasil (200::/7) addresses, keeping the order."""
    out = []
    for host in hosts:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        if ip.is_unspecified or ip.is_multicast:
            continue
        if ip.version == 6 and ip in ipaddress.ip_network("200::/7"):
            continue
        out.append(host)
    return out


@implementer(IStreamClientEndpoint)
class QuicClientEndpoint:
    """Dials C{quic://host:port}; fires with the link protocol once its stream is open."""

    def __init__(self, reactor: Any, host: str, port: int, tls: LinkTLS) -> None:
        self._reactor, self._host, self._port, self._tls = reactor, host, port, tls

    def _resolve(self) -> Deferred[list[str]]:
        try:
            ipaddress.ip_address(self._host.split("%", 1)[0])
        except ValueError:
            receiver = _Addresses()
            self._reactor.nameResolver.resolveHostName(receiver, self._host, self._port)
            return receiver.done
        return succeed([self._host])

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[Any]:
        state: dict[str, Any] = {}

        def cancel(d: Deferred[Any]) -> None:
            driver = state.get("driver")
            state["cancelled"] = True
            if driver is not None:
                driver.close("dial cancelled")

        result: Deferred[Any] = Deferred(cancel)

        def resolved(hosts: list[str]) -> None:
            if state.get("cancelled"):
                return
            hosts = suitable_addresses(hosts)
            if not hosts:
                result.errback(Failure(DNSLookupError(f"{self._host}: peer has no suitable addresses")))
                return
            self._dial(hosts[0], protocolFactory, result, state)

        self._resolve().addCallbacks(resolved, result.errback)
        return result

    def _dial(self, host: str, factory: IProtocolFactory, result: Deferred[Any], state: dict[str, Any]) -> None:
        udp = _ClientPort()
        port = self._reactor.listenUDP(0, udp, interface="::" if ":" in host else "0.0.0.0")
        _enlarge_buffers(port)
        peer = (host, self._port)

        def on_link(driver: QuicDriver, stream_id: int) -> IProtocol | None:
            link = factory.buildProtocol(driver.peer_address())
            if link is not None and not result.called:
                self._reactor.callLater(0, result.callback, link)
            return link

        def on_closed(driver: QuicDriver, reason: str) -> None:
            port.stopListening()
            if not result.called and not state.get("cancelled"):
                result.errback(Failure(ConnectError(f"quic://{host}:{self._port}: {reason}")))

        driver = QuicDriver(
            BoundedQuicConnection(configuration=quic_configuration(self._tls, is_client=True)),
            self._reactor, udp.send, peer, port.getHost(), on_link, on_closed,
        )  # fmt: skip
        state["driver"] = driver
        udp.driver = driver
        driver.connect()


class QuicServerPort(DatagramProtocol):
    """One UDP listener: routes datagrams to connections by destination connection id."""

    log = Logger(observer=log_observer)

    def __init__(
        self, reactor: Any, tls: LinkTLS, factory: IProtocolFactory,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:  # fmt: skip
        self._reactor = reactor
        self._config = quic_configuration(tls, is_client=False)
        self._factory = factory
        self.max_connections = max_connections
        self._refused = 0
        self.drivers: dict[bytes, QuicDriver] = {}
        self._count = 0

    def datagramReceived(self, datagram: bytes, addr: Address) -> None:
        try:
            header = pull_quic_header(
                Buffer(data=datagram), host_cid_length=self._config.connection_id_length
            )
        except ValueError:
            return
        if (
            header.packet_type != QuicPacketType.VERSION_NEGOTIATION
            and header.version is not None
            and header.version not in self._config.supported_versions
        ):
            self.send(encode_quic_version_negotiation(
                source_cid=header.destination_cid, destination_cid=header.source_cid,
                supported_versions=self._config.supported_versions), addr)  # fmt: skip
            return
        driver = self.drivers.get(header.destination_cid)
        if (
            driver is None
            and len(datagram) >= SMALLEST_MAX_DATAGRAM_SIZE
            and header.packet_type == QuicPacketType.INITIAL
        ):
            if self._count >= self.max_connections:
                self._refused += 1
                if self._refused == 1 or self._refused % 1000 == 0:
                    self.log.warn("dropping new QUIC connections: {n} already open "
                                  "({count} initial packets dropped so far)",
                                  n=self._count, count=self._refused)  # fmt: skip
                return
            connection = BoundedQuicConnection(
                configuration=self._config,
                original_destination_connection_id=header.destination_cid,
            )
            assert self.transport is not None  # datagrams only arrive on a bound port
            driver = QuicDriver(connection, self._reactor, self.send, addr, self.transport.getHost(),
                                self._on_link, self._on_closed)  # fmt: skip
            self._count += 1
            self.drivers[header.destination_cid] = driver
            self.drivers[connection.host_cid] = driver
        if driver is not None:
            driver.datagram_received(datagram, addr)
            self._track_cids(driver)

    def _track_cids(self, driver: QuicDriver) -> None:
        if driver.closed:
            return
        for cid in driver.connection._host_cids:  # aioquic issues and retires these itself
            self.drivers.setdefault(cid.cid, driver)

    def _on_link(self, driver: QuicDriver, stream_id: int) -> IProtocol | None:
        return self._factory.buildProtocol(driver.peer_address())

    def _on_closed(self, driver: QuicDriver, reason: str) -> None:
        for cid in [c for c, d in self.drivers.items() if d is driver]:
            del self.drivers[cid]
        self._count -= 1

    def send(self, data: bytes, addr: Address) -> None:
        """Send one datagram to C{addr}; a failed send is dropped, as QUIC retransmits."""
        if self.transport is not None:
            try:
                self.transport.write(data, addr)
            except OSError:
                pass

    def close_all(self) -> None:
        """Close every connection of this listener."""
        for driver in set(self.drivers.values()):
            driver.close("listener stopped")


@implementer(IListeningPort)
class _QuicListeningPort:
    def __init__(self, port: Any, server: QuicServerPort) -> None:
        self._port, self._server = port, server

    def startListening(self) -> None:
        pass

    def stopListening(self) -> Deferred[None] | None:
        self._server.close_all()
        return self._port.stopListening()  # type: ignore[no-any-return]

    def getHost(self) -> Any:
        return self._port.getHost()


@implementer(IStreamServerEndpoint)
class QuicServerEndpoint:
    """Listens for QUIC on C{host:port} (UDP); each connection's link stream goes to the factory."""

    def __init__(self, reactor: Any, port: int, host: str, tls: LinkTLS) -> None:
        self._reactor, self._port, self._host, self._tls = reactor, port, host, tls

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        server = QuicServerPort(self._reactor, self._tls, protocolFactory)
        try:
            port = self._reactor.listenUDP(self._port, server, interface=self._host or "")
        except Exception as e:
            return fail(e)
        _enlarge_buffers(port)
        return succeed(_QuicListeningPort(port, server))
