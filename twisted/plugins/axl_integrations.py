# -*- test-case-name: tests.test_integrations_cli -*-
"""
twistd plugins for the node's companion services: C{twistd -n axl-mcp-router --port 9003} and
C{twistd -n axl-a2a --port 9004 --router URL --node-url URL}. Cheap to import.
"""

from twisted.application.service import ServiceMaker

axl_mcp_router = ServiceMaker(
    "axl MCP router",
    "axl.integrations.router_tap",
    "Registry of local MCP services, forwarding the axl node's MCP calls to them.",
    "axl-mcp-router",
)

axl_a2a = ServiceMaker(
    "axl A2A server",
    "axl.integrations.a2a_tap",
    "A2A agent exposing the MCP router's services as skills.",
    "axl-a2a",
)
