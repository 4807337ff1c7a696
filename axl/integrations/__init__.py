"""
Companion HTTP services of an axl node, drop-in replacements for AXL's Python integrations.

 - L{axl.integrations.mcp_router}: the MCP router (name -> URL registry of local MCP services,
   C{POST /route} forwards one JSON-RPC message to a service), default C{127.0.0.1:9003}.
 - L{axl.integrations.a2a_server}: the A2A server (agent card built from the router's registry,
   JSON-RPC C{SendMessage} mapped onto MCP calls through the router), default C{127.0.0.1:9004}.
 - L{axl.integrations.cli}: the C{mcp-router} and C{a2a-server} console scripts.
"""

__all__: list[str] = []
