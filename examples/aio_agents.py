#!/usr/bin/env python3
"""
Two agents in one asyncio program, each with its own embedded axl node (axl.aio): no twistd.
The "weather" agent serves an MCP tool made with the official `mcp` SDK; the "planner" agent
calls that tool across the mesh by the weather agent's public key, first with `call_mcp` (no
HTTP on its side), then with the SDK's own client through its node's bridge (`bridge=True`, for
code that already speaks MCP over HTTP), and sends it a plain message and opens a stream to it.

    aio_agents.py [--city Dublin] [--listen tcp://127.0.0.1:0]

The weather agent's MCP server (the SDK's Streamable HTTP app, stateless, JSON replies) and the
MCP router its node forwards to run in this same process on free loopback ports, chosen here.
In a real deployment each agent is its own program on its own machine; only the node configs
change (`Peers` pointing at a public node or each other). Needs: pip install mcp uvicorn (both
come with `pip install -e '.[test]'`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
from typing import Any

import httpx
import uvicorn
from mcp import Client
from mcp.server.mcpserver import MCPServer

import axl.aio

FORECASTS = {"dublin": ("light rain", 11), "paris": ("sunny", 17), "tokyo": ("humid", 24)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def weather_server() -> MCPServer:
    """The weather agent's MCP server: one tool."""
    server = MCPServer("weather", instructions="Toy weather service on an axl mesh.")

    @server.tool()
    def get_weather(city: str) -> str:
        """Current weather for a city (made-up data)."""
        sky, temp = FORECASTS.get(city.lower(), ("clear", 20))
        return f"{city}: {sky}, {temp} C"

    return server


async def serve_weather(node: axl.aio.Node, router_port: int) -> tuple[uvicorn.Server, asyncio.Task[None], Any]:
    """
    Run the weather agent's MCP server and the MCP router its node forwards to (both in this
    process, on the node's loop), and register the tool's service as "weather".
    """
    from twisted.internet import reactor  # Twisted's asyncio reactor, installed by the node

    from axl.integrations.router_tap import router_service

    router = router_service(reactor, "127.0.0.1", router_port)
    router.startService()
    tool_port = free_port()
    app = weather_server().streamable_http_app(stateless_http=True, json_response=True)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=tool_port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start
        await asyncio.sleep(0.01)
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"http://127.0.0.1:{router_port}/register",
            json={"service": "weather", "endpoint": f"http://127.0.0.1:{tool_port}/mcp"},
        )
        response.raise_for_status()
    return server, task, router


async def planner(node: axl.aio.Node, weather_key: str, city: str) -> None:
    """The planner agent: call the weather tool over the mesh, then message and stream."""
    request = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "get_weather", "arguments": {"city": city}},
    }
    reply = await node.call_mcp(weather_key, "weather", request)
    print("weather says:", reply["result"]["content"][0]["text"])

    # The same tool with the official SDK client, through our node's bridge (bridge=True).
    url = f"http://127.0.0.1:{node.config.api_port}/mcp/{weather_key}/weather"
    async with Client(url) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool("get_weather", {"city": city})
        print(f"via the mcp SDK client: tools {tools}; {result.content[0].text}")  # type: ignore[union-attr]

    await node.send(weather_key, json.dumps({"plan": f"picnic in {city}"}).encode())
    reader, writer = await node.open_connection(weather_key, 8080)
    writer.write(b"how many bytes is this?\n")
    await writer.drain()
    print("stream answer:", (await reader.readline()).decode().strip())
    writer.close()
    await writer.wait_closed()


async def main(city: str, listen: str) -> None:
    router_port = free_port()
    weather_config = {"Listen": [listen], "router_addr": "http://127.0.0.1", "router_port": router_port}
    async with axl.aio.Node(weather_config) as weather:
        # the planner peers with the weather agent's node (any path through the mesh would do)
        planner_config = {"Peers": weather.listening(), "api_port": free_port()}
        async with axl.aio.Node(planner_config, bridge=True) as me:
            server, task, router = await serve_weather(weather, router_port)

            async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                line = await reader.readline()
                writer.write(b"%d\n" % len(line))
                await writer.drain()
                writer.close()

            await weather.start_server(count, 8080)
            try:
                await planner(me, weather.public_key, city)
                message = await weather.recv(timeout=10)
                print(f"weather got a message from {message.sender[:8]}…: {message.data.decode()}")
            finally:
                server.should_exit = True
                await task
                await router.stopService().asFuture(asyncio.get_running_loop())  # a Twisted Deferred


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--city", default="Dublin")
    parser.add_argument("--listen", default="tcp://127.0.0.1:0", help="the weather node's peer listener")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("axl.identity").setLevel(logging.ERROR)  # ephemeral keys are fine here
    for noisy in ("httpx", "httpx2", "mcp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(main(args.city, args.listen))
    sys.exit(0)
