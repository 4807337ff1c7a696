# -*- test-case-name: tests.test_integrations_cli -*-
"""
C{twistd axl-a2a} / C{a2a-server}: run the A2A server (L{axl.integrations.a2a_server}).
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from axl.integrations.a2a_server import DEFAULT_A2A_PORT, ROUTER_TIMEOUT
from axl.integrations.options import check_host, check_port, check_timeout, check_url

__all__ = ["Options", "makeService", "a2a_service"]


class Options(usage.Options):
    """The options of C{a2a-server} and C{twistd axl-a2a}."""
    synopsis = "[--port 9004] [--host 127.0.0.1] [--router URL] [--node-url URL]"
    longdesc = (
        "Run the A2A server: an A2A v1.0 JSON-RPC agent whose skills are the MCP services "
        "registered with the router; SendMessage is forwarded to the router's /route."
    )
    optParameters = [
        ["port", "p", DEFAULT_A2A_PORT, "TCP port to listen on.", int],
        ["host", None, "127.0.0.1", "Address to bind."],
        ["router", None, "http://127.0.0.1:9003", "Base URL of the MCP router."],
        ["node-url", None, "http://127.0.0.1:9002", "Base URL of the axl node's HTTP bridge."],
        ["timeout", None, ROUTER_TIMEOUT, "Seconds the router has to answer.", float],
    ]

    def postOptions(self) -> None:
        check_port(self["port"])
        check_host(self["host"])
        check_url("--router", self["router"])
        check_url("--node-url", self["node-url"])
        check_timeout(self["timeout"])


def a2a_service(
    reactor: Any,
    host: str = "127.0.0.1",
    port: int = DEFAULT_A2A_PORT,
    router_url: str = "http://127.0.0.1:9003",
    node_url: str = "http://127.0.0.1:9002",
    timeout: float = ROUTER_TIMEOUT,
) -> IService:
    """The A2A server as a service on C{host:port}, for C{makeService} and for a node that starts it."""
    from axl.integrations._serve import http_service, make_http_client
    from axl.integrations.a2a_server import A2AServer

    server = A2AServer(make_http_client(reactor), reactor, router_url, node_url, timeout=timeout)
    return http_service(reactor, host, port, server.app.resource(), "A2A server")


def makeService(options: Options) -> IService:
    """The twistd plugin's service: the A2A server on the options' host and port."""
    from twisted.internet import reactor

    return a2a_service(
        reactor, options["host"], options["port"], options["router"], options["node-url"], options["timeout"]
    )
