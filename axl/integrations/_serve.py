# -*- test-case-name: tests.test_integrations_cli -*-
"""
Serving a Klein resource on a TCP address (L{axl.listening}: listen now or fail with a clear
error), logging the real URL once the port is bound.
"""

from __future__ import annotations

from typing import Any, cast

from treq.client import HTTPClient
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool, _HTTP11ClientFactory
from twisted.web.resource import IResource
from twisted.web.server import Site

from axl.listening import ListeningService
from axl.logs import observer as log_observer

__all__ = ["HTTPService", "http_service", "make_http_client"]


class _QuietFactory(_HTTP11ClientFactory):
    noisy = False


def make_http_client(reactor: Any) -> HTTPClient:
    """A treq client (one connection per request) that does not log every connection's factory."""
    pool = HTTPConnectionPool(reactor, persistent=False)
    pool._factory = _QuietFactory
    return HTTPClient(Agent(reactor, pool=pool))


class HTTPService(ListeningService):
    """
    Serves a site on a TCP address: binds in C{startService} (a failure is a
    L{axl.errors.StartupError} naming the address) and logs C{"<banner> listening on
    http://host:port"} once bound.
    """

    log = Logger(observer=log_observer)

    def __init__(self, endpoint: IStreamServerEndpoint, site: Site, host: str, port: int, banner: str) -> None:
        shown = f"[{host}]" if ":" in host else host
        super().__init__(endpoint, site, f"http://{shown}:{port} for the {banner}", listening=self._bound)
        self._host, self._banner = shown, banner

    def _bound(self, port: IListeningPort) -> None:
        address = cast("IPv4Address | IPv6Address", port.getHost())  # a TCP endpoint's port
        self.log.info(
            "{banner} listening on http://{host}:{port}",
            banner=self._banner,
            host=self._host,
            port=address.port,
        )


def http_service(reactor: Any, host: str, port: int, resource: IResource, banner: str) -> HTTPService:
    """A service serving C{resource} over HTTP on C{host:port} (IPv4 or IPv6 literal)."""
    endpoint_type = TCP6ServerEndpoint if ":" in host else TCP4ServerEndpoint
    endpoint = endpoint_type(reactor, port, interface=host)
    return HTTPService(endpoint, Site(resource), host, port, banner)
