#!/usr/bin/env python3
"""
Call a remote node's MCP service with the official `mcp` SDK client, through our own node:
the node's /mcp/{peer}/{service} is an ordinary Streamable HTTP MCP endpoint.

    mcp_client.py [--node URL] PEER [--service weather] [--city Dublin] [--legacy]

--legacy uses the initialize handshake (protocol 2025-06-18 and earlier); the default lets the
SDK negotiate. Needs: pip install mcp.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from mcp import Client


async def run(url: str, city: str, mode: str) -> None:
    async with Client(url, mode=mode) as client:
        tools = await client.list_tools()
        for tool in tools.tools:
            print(f"tool {tool.name}: {tool.description}")
        result = await client.call_tool("get_weather", {"city": city})
        print(result.content[0].text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("peer", help="the remote node's public key (64 hex digits)")
    parser.add_argument("--node", default="http://127.0.0.1:9002", help="our node's bridge URL")
    parser.add_argument("--service", default="weather")
    parser.add_argument("--city", default="Dublin")
    parser.add_argument("--legacy", action="store_true", help="use the initialize handshake")
    args = parser.parse_args(argv)
    for noisy in ("httpx", "httpx2", "mcp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    url = f"{args.node.rstrip('/')}/mcp/{args.peer}/{args.service}"
    asyncio.run(run(url, args.city, "legacy" if args.legacy else "auto"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
