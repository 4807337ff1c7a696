#!/usr/bin/env python3
"""
A real MCP server made with the official `mcp` SDK, registered with the node's MCP router so
that other nodes can call it as service "weather".

    mcp_weather_service.py [--port 7100] [--router http://127.0.0.1:9003] [--name weather] [--stateful]

By default it is stateless with plain JSON replies: any client works, including a bare curl
POST of tools/call without an initialize first, and so does AXL's own router. --stateful runs
the SDK's defaults (sessions, SSE replies): MCP SDK clients reach it through axl's router, which
carries the session id and reads the event stream, but requests without a session are refused.
It registers itself at start (POST /register) and deregisters on Ctrl-C.
Needs: pip install mcp uvicorn (both come with `pip install -e '.[test]'`).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request

import uvicorn
from mcp.server.mcpserver import MCPServer

FORECASTS = {
    "dublin": ("light rain", 11),
    "london": ("overcast", 13),
    "paris": ("sunny", 17),
    "tokyo": ("humid", 24),
}


def make_server(name: str) -> MCPServer:
    server = MCPServer(name, instructions="Toy weather service reachable over an axl mesh.")

    @server.tool()
    def get_weather(city: str) -> str:
        """Current weather for a city (made-up data)."""
        sky, temp = FORECASTS.get(city.lower(), ("clear", 20))
        return f"{city}: {sky}, {temp} C"

    @server.tool()
    def list_cities() -> list[str]:
        """Cities with a known forecast."""
        return sorted(c.title() for c in FORECASTS)

    return server


def router_call(method: str, url: str, body: dict[str, str] | None = None) -> str:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=7100)
    parser.add_argument("--router", default="http://127.0.0.1:9003", help="the MCP router's base URL")
    parser.add_argument("--name", default="weather", help="service name to register")
    parser.add_argument("--stateful", action="store_true", help="the SDK defaults: sessions, SSE replies")
    args = parser.parse_args(argv)
    app = make_server(args.name).streamable_http_app(stateless_http=not args.stateful, json_response=not args.stateful)
    endpoint = f"http://127.0.0.1:{args.port}/mcp"
    print(router_call("POST", f"{args.router}/register", {"service": args.name, "endpoint": endpoint}))
    try:
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    finally:
        try:
            print(router_call("DELETE", f"{args.router}/register/{args.name}"))
        except OSError as e:
            print(f"could not deregister: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
