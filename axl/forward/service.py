# -*- test-case-name: tests.test_forward_e2e -*-
"""
The forwards of one node as one service: the SOCKS5 proxy, C{local_tcp}, C{remote_tcp},
C{local_udp} and C{remote_udp} from the node's config. It starts after the userspace TCP (and
before the bridge): every listener binds in C{startService}, and a port that cannot be bound
stops the start with a L{StartupError} naming the config key and the spec.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.python.failure import Failure

from axl.errors import StartupError
from axl.forward.resolve import KeyResolver
from axl.forward.spec import HostPort, UnixPath
from axl.forward.splice import Forward
from axl.forward.tcp import (
    LocalTCPFactory,
    OverlayDialer,
    RemoteTCPFactory,
    SocksFactory,
    server_endpoint,
)
from axl.tcp.endpoints import OverlayServerEndpoint

__all__ = ["ForwardsService", "add_forwards"]

log = Logger()


def _is_loopback(where: HostPort | UnixPath) -> bool:
    return isinstance(where, UnixPath) or ipaddress.ip_address(where.host).is_loopback


class ForwardsService(Service):
    """
    @ivar forwards: one L{Forward} per configured forward, in config order (SOCKS first).
    @ivar ports: the listening port of each, in the same order.
    @ivar udp: the UDP forwards (L{axl.forward.udp}), once started.
    """

    name = "axl-forwards"

    def __init__(self, node: Any, reactor: Any) -> None:
        self.node, self.reactor = node, reactor
        self.forwards: list[Forward] = []
        self.ports: list[Any] = []
        self.udp: list[Any] = []

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        node, reactor = self.node, self.reactor
        config = node.config
        resolver = KeyResolver(node.ipv6, node.router.send_lookup, reactor, config.connect_timeout_secs)
        dialer = OverlayDialer(node.tcp, resolver)
        if config.socks is not None:
            spec = config.socks
            forward = Forward(str(spec), spec.max_conns, spec.idle, reactor)
            creds = (spec.username, spec.password) if spec.username is not None else None
            factory: Factory = SocksFactory(forward, dialer, creds)
            self._listen("socks", forward, server_endpoint(reactor, spec.listen), factory, spec.listen)
        for lspec in config.local_tcp:
            forward = Forward(str(lspec), lspec.max_conns, lspec.idle, reactor)
            factory = LocalTCPFactory(forward, dialer, lspec.remote)
            self._listen("local_tcp", forward, server_endpoint(reactor, lspec.listen), factory, lspec.listen)
        for rspec in config.remote_tcp:
            forward = Forward(str(rspec), rspec.max_conns, rspec.idle, reactor)
            factory = RemoteTCPFactory(forward, reactor, rspec.target, rspec.proxy_v2)
            endpoint = OverlayServerEndpoint(node.tcp, rspec.overlay_port)
            self._listen("remote_tcp", forward, endpoint, factory, None)
        if config.local_udp or config.remote_udp:
            from axl.forward.udp import start_udp_forwards

            self.udp = start_udp_forwards(self, node, reactor)

    def _listen(self, key: str, forward: Forward, endpoint: IStreamServerEndpoint, factory: Factory,
                local: HostPort | UnixPath | None) -> None:  # fmt: skip
        outcome: list[Any] = []
        endpoint.listen(factory).addBoth(outcome.append)
        result = outcome[0] if outcome else Failure(RuntimeError("did not listen synchronously"))
        if isinstance(result, Failure):
            error = result.value
            reason = getattr(error, "socketError", None) or error
            raise StartupError(f"{forward.name}: cannot listen ({reason}); change {key} in "
                               f"{self.node.config.source}")  # fmt: skip
        self.forwards.append(forward)
        self.ports.append(result)
        where = result.getHost()
        shown = f"[{where.host}]:{where.port}" if ":" in str(getattr(where, "host", "")) else (
            f"{where.host}:{where.port}" if hasattr(where, "host") else str(where))
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


def add_forwards(top: MultiService, node: Any, reactor: Any) -> ForwardsService | None:
    """Add the forwards service when the config asks for any (sets C{node.forwards})."""
    config = node.config
    wanted = config.socks or config.local_tcp or config.remote_tcp or config.local_udp or config.remote_udp
    if not wanted or node.tcp is None:
        return None
    service = ForwardsService(node, reactor)
    service.setServiceParent(top)  # type: ignore[no-untyped-call]
    node.forwards = service
    return service
