# -*- test-case-name: tests.test_integrations_cli -*-
"""
C{twistd axl-mcp-router} / C{mcp-router}: run the MCP router (L{axl.integrations.mcp_router}).
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService
from twisted.python import usage
from twisted.python.filepath import FilePath

from axl.integrations.mcp_router import DEFAULT_ROUTER_PORT, FORWARD_TIMEOUT
from axl.integrations.options import check_host, check_port, check_timeout

__all__ = ["Options", "makeService", "router_service"]


class Options(usage.Options):
    """The options of C{mcp-router} and C{twistd axl-mcp-router}."""
    synopsis = "[--port 9003] [--host 127.0.0.1] [--state FILE]"
    longdesc = (
        "Run the MCP router: a registry of local MCP services (POST /register, "
        "DELETE /register/{service}, GET /services, GET /health) that forwards POST /route "
        "calls from the axl node to them."
    )
    optParameters = [
        ["port", "p", DEFAULT_ROUTER_PORT, "TCP port to listen on.", int],
        ["host", None, "127.0.0.1", "Address to bind (keep it loopback: there is no auth)."],
        ["state", None, None, "JSON file to keep registrations in across restarts."],
        ["timeout", None, FORWARD_TIMEOUT, "Seconds a service has to answer.", float],
    ]

    def postOptions(self) -> None:
        check_port(self["port"])
        check_host(self["host"])
        check_timeout(self["timeout"])


def router_service(
    reactor: Any, host: str = "127.0.0.1", port: int = DEFAULT_ROUTER_PORT, state: str | None = None,
    timeout: float = FORWARD_TIMEOUT,
) -> IService:
    """
    The MCP router as a service on C{host:port}, for C{makeService} and for a node that starts
    its router itself. C{state}: optional JSON file for the registrations.
    """
    from axl.integrations._serve import http_service, make_http_client
    from axl.integrations.mcp_router import MCPRouter
    from axl.integrations.registry import Registry

    registry = Registry(reactor, FilePath(state) if state else None)
    router = MCPRouter(registry, make_http_client(reactor), reactor, timeout)
    return http_service(reactor, host, port, router.app.resource(), "MCP Router")


def makeService(options: Options) -> IService:
    """The twistd plugin's service: the MCP router on the options' host and port."""
    from twisted.internet import reactor

    return router_service(reactor, options["host"], options["port"], options["state"], options["timeout"])
