# -*- test-case-name: tests.test_forward_e2e -*-
"""
The forwards of one node as one service: the SOCKS5 proxy, C{local_tcp}, C{remote_tcp},
C{local_udp} and C{remote_udp} from the node's config. It starts after the userspace TCP (and
before the bridge): every listener binds in C{startService}, and a port that cannot be bound
stops the start with a L{StartupError} naming the config key and the spec.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from axl.config import NodeConfig
from axl.errors import StartupError
from axl.forward.resolve import KeyResolver
from axl.forward.spec import HostPort, UnixPath
from axl.forward.splice import Forward
from axl.forward.tcp import (
    LocalTCPFactory,
    OverlayDialer,
    RemoteTCPFactory,
    SocksFactory,
    describe,
    server_endpoint,
)
from axl.forward.udp import start_udp_forwards
from axl.interfaces import IRouter
from axl.ipv6.rwc import IPv6Layer
from axl.ipv6.stack import Overlay
from axl.ipv6.udp import UDPLayer
from axl.listening import listen_now
from axl.logs import observer as log_observer
from axl.overlay_address import OverlayAddress
from axl.tcp.endpoints import OverlayServerEndpoint
from axl.tcp.stack import TCPStack

__all__ = ["ForwardsService", "build_forwards"]

log = Logger(observer=log_observer)


def _is_loopback(where: HostPort | UnixPath) -> bool:
    return isinstance(where, UnixPath) or ipaddress.ip_address(where.host).is_loopback


class ForwardsService(Service):
    """
    @ivar forwards: one L{Forward} per configured TCP forward, in config order (SOCKS first).
    @ivar ports: the local (or overlay) listening port of each TCP forward, then of each
        C{local_udp} forward.
    @ivar udp: the UDP forwards (L{axl.forward.udp}), once started.
    """

    name = "axl-forwards"

    def __init__(self, config: NodeConfig, reactor: Any, ipv6: IPv6Layer, send_lookup: Callable[[bytes], None],
                 tcp: TCPStack, udp: UDPLayer | None) -> None:  # fmt: skip
        self.config, self.reactor = config, reactor
        self._ipv6, self._send_lookup, self._tcp, self._udp = ipv6, send_lookup, tcp, udp
        self.forwards: list[Forward] = []
        self.ports: list[Any] = []
        self.udp: list[Any] = []

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        config, reactor = self.config, self.reactor
        resolver = KeyResolver(self._ipv6, self._send_lookup, reactor, config.connect_timeout_secs)
        dialer = OverlayDialer(self._tcp, resolver)
        if config.socks is not None:
            spec = config.socks
            forward = Forward(str(spec), spec.max_conns, spec.idle, reactor)
            creds = (spec.username, spec.password) if spec.username and spec.password else None
            factory: Factory = SocksFactory(forward, dialer, creds)
            self._listen("socks", forward, server_endpoint(reactor, spec.listen), factory, spec.listen,
                         str(spec.listen))  # fmt: skip
        for lspec in config.local_tcp:
            forward = Forward(str(lspec), lspec.max_conns, lspec.idle, reactor)
            factory = LocalTCPFactory(forward, dialer, lspec.remote)
            self._listen("local_tcp", forward, server_endpoint(reactor, lspec.listen), factory, lspec.listen,
                         str(lspec.listen))  # fmt: skip
        for rspec in config.remote_tcp:
            forward = Forward(str(rspec), rspec.max_conns, rspec.idle, reactor)
            factory = RemoteTCPFactory(forward, reactor, rspec.target, rspec.proxy_v2)
            endpoint = OverlayServerEndpoint(self._tcp, rspec.overlay_port)
            self._listen("remote_tcp", forward, endpoint, factory, None, f"overlay port {rspec.overlay_port}")
        if config.local_udp or config.remote_udp:
            if self._udp is None:
                raise StartupError("UDP forwards need the overlay's UDP layer, which this node lacks")
            self.udp = start_udp_forwards(self.ports, config, self._udp, reactor)

    def _listen(self, key: str, forward: Forward, endpoint: IStreamServerEndpoint, factory: Factory,
                local: HostPort | UnixPath | None, where: str) -> None:  # fmt: skip
        port = listen_now(endpoint, factory, f"{where} for {forward.name}",
                          f"change {key} in {self.config.source}")  # fmt: skip
        self.forwards.append(forward)
        self.ports.append(port)
        host = port.getHost()
        shown = describe(host) if not isinstance(host, OverlayAddress) else f"overlay port {host.port}"
        log.info("{fwd}: listening on {where}", fwd=forward.name, where=shown)
        if local is not None and not _is_loopback(local):
            log.warn("{fwd} listens on {where}, not loopback: anyone who can reach it can use this "
                     "node's identity on the mesh (no authentication unless socks has USER:PASS@)",
                     fwd=forward.name, where=shown)  # fmt: skip

    def stopService(self) -> Deferred[Any]:
        super().stopService()  # type: ignore[no-untyped-call]
        stops: list[Deferred[Any]] = []
        ports, self.ports = self.ports, []
        for port in ports:
            d = port.stopListening()
            if isinstance(d, Deferred):
                stops.append(d)
        for forward in self.forwards:
            forward.close_all()
        for flows in self.udp:
            flows.stop()
        return DeferredList(stops)


def build_forwards(config: NodeConfig, reactor: Any, overlay: Overlay, router: IRouter,
                   tcp: TCPStack) -> ForwardsService:  # fmt: skip
    """
    The forwards service of a node (it does nothing when the config asks for no forward).

    @param router: the node's router (its C{send_lookup} finds the key behind an address).
    """
    return ForwardsService(config, reactor, overlay.ipv6, router.send_lookup, tcp, overlay.udp)
