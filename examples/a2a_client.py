#!/usr/bin/env python3
"""
Talk A2A to a remote node's agent through our own node's bridge.

    a2a_client.py [--node URL] PEER                       # show the card, list the service's tools
    a2a_client.py [--node URL] PEER --service weather --tool get_weather --args '{"city": "Dublin"}'

The card comes from GET /a2a/{peer}; the call is an A2A v1.0 SendMessage whose text part is the
MCP envelope {"service": ..., "request": <JSON-RPC>} that the remote A2A server hands to its MCP
router. Standard library and axl.client only.
"""

from __future__ import annotations

import argparse
import json
import sys

from axl.client import DEFAULT_NODE_URL, NodeClient, NodeError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("peer", help="the remote node's public key (64 hex digits)")
    parser.add_argument("--node", default=DEFAULT_NODE_URL, help="our node's bridge URL")
    parser.add_argument("--service", help="MCP service to call (default: the card's first skill)")
    parser.add_argument("--tool", help="tool to call; without it the service's tools are listed")
    parser.add_argument("--args", default="{}", help="tool arguments as a JSON object")
    args = parser.parse_args(argv)
    node = NodeClient(args.node)
    try:
        card = node.a2a_card(args.peer)
        print(f"agent: {card.get('name')} - {card.get('description')}")
        skills = card.get("skills", [])
        for skill in skills:
            print(f"  skill {skill['id']}: {skill.get('name')}")
        service = args.service or (skills[0]["id"] if skills else None)
        if not service or service == "mcp_proxy":
            print("the remote router has no services registered")
            return 1
        if args.tool:
            request = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": args.tool, "arguments": json.loads(args.args)},
            }
        else:
            request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        reply = node.a2a_mcp(args.peer, service, request)
    except (NodeError, RuntimeError) as e:
        print(f"failed: {e}", file=sys.stderr)
        return 1
    result = reply.get("result") if isinstance(reply, dict) else None
    if isinstance(result, dict) and "tools" in result:
        for tool in result["tools"]:
            print(f"  tool {tool['name']}: {tool.get('description', '').strip()}")
    elif isinstance(result, dict) and result.get("content"):
        for item in result["content"]:
            print(item.get("text", json.dumps(item)))
    else:
        print(json.dumps(reply, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
