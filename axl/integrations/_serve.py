# -*- test-case-name: tests.test_integrations_cli -*-
"""
Serving a Klein resource on a TCP address, logging the real URL once the port is bound.
"""

from __future__ import annotations

from typing import Any, cast

from treq.client import HTTPClient
from twisted.application.internet import StreamServerEndpointService
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool, _HTTP11ClientFactory
from twisted.web.resource import IResource
from twisted.web.server import Site

__all__ = ["HTTPService", "http_service", "make_http_client"]


class _QuietFactory(_HTTP11ClientFactory):
    noisy = False


def make_http_client(reactor: Any) -> HTTPClient:
    """A treq client (one connection per request) that does not log every connection's factory."""
    pool = HTTPConnectionPool(reactor, persistent=False)
    pool._factory = _QuietFactory
    return HTTPClient(Agent(reactor, pool=pool))


class HTTPService(StreamServerEndpointService):
    """A server endpoint service that logs C{"<banner> listening on http://host:port"} once bound."""

    log = Logger()
    port: IListeningPort | None = None

    def __init__(self, endpoint: Any, site: Site, host: str, banner: str) -> None:
        super().__init__(endpoint, site)  # type: ignore[no-untyped-call]
        self._host, self._banner = host, banner
        self._raiseSynchronously = True

    def privilegedStartService(self) -> None:
        super().privilegedStartService()  # type: ignore[no-untyped-call]
        assert self._waitingForPort is not None  # set by privilegedStartService
        self._waitingForPort.addCallback(self._bound)

    def _bound(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        host = f"[{self._host}]" if ":" in self._host else self._host
        address = cast("IPv4Address | IPv6Address", port.getHost())  # a TCP endpoint's port
        self.log.info(
            "{banner} listening on http://{host}:{port}",
            banner=self._banner,
            host=host,
            port=address.port,
        )
        return port


def http_service(reactor: Any, host: str, port: int, resource: IResource, banner: str) -> HTTPService:
    """A service serving C{resource} over HTTP on C{host:port} (IPv4 or IPv6 literal)."""
    endpoint_type = TCP6ServerEndpoint if ":" in host else TCP4ServerEndpoint
    endpoint = endpoint_type(reactor, port, interface=host)
    return HTTPService(endpoint, Site(resource), host, banner)
