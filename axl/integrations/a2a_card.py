# -*- test-case-name: tests.test_integrations_a2a -*-
"""
Pure builders for the A2A server's JSON: the agent card (A2A v1.0 protobuf-JSON names, plus the
v0.3 compatibility keys that a2a-sdk 1.x servers add) and task/message objects.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "build_agent_card",
    "skill_for_service",
    "agent_message",
    "PROTOCOL_VERSION",
    "card_url",
]

PROTOCOL_VERSION = "1.0"
_NAME = "MCP Router A2A Agent"
_DESCRIPTION = (
    "A2A agent of an axl node: each skill is an MCP service registered with the node's router; "
    "send a message whose text is {\"service\": name, \"request\": <MCP JSON-RPC request>}."
)
_MODES = ["text", "application/json"]


def card_url(node_key: str) -> str:
    """The interface URL AXL advertises: a path relative to the caller's own bridge."""
    return f"/a2a/{node_key}"


def skill_for_service(name: str) -> dict[str, Any]:
    """The agent card's skill for the MCP service C{name}, with an example request."""
    example = {"service": name, "request": {"jsonrpc": "2.0", "method": "tools/list", "id": 1}}
    return {
        "id": name,
        "name": f"{name.title()} Service",
        "description": f"MCP service: {name}. Forward JSON-RPC requests to this service.",
        "tags": [name, "mcp"],
        "examples": [json.dumps(example)],
    }


_DEFAULT_SKILL = {
    "id": "mcp_proxy",
    "name": "MCP Proxy",
    "description": "Forwards MCP JSON-RPC requests to the services registered with this node.",
    "tags": ["mcp", "proxy"],
    "examples": [],
}


def build_agent_card(services: list[str], node_key: str) -> dict[str, Any]:
    """
    The agent card for a node whose router has C{services} registered. C{streaming} is false:
    an axl node carries one JSON reply per request, not an event stream.
    """
    url = card_url(node_key)
    skills = [skill_for_service(name) for name in services] or [dict(_DEFAULT_SKILL)]
    return {
        "name": _NAME,
        "description": _DESCRIPTION,
        "supportedInterfaces": [
            {"url": url, "protocolBinding": "JSONRPC", "protocolVersion": PROTOCOL_VERSION}
        ],
        "version": "1.0.0",
        "capabilities": {"streaming": False, "pushNotifications": False},
        "defaultInputModes": list(_MODES),
        "defaultOutputModes": list(_MODES),
        "skills": skills,
        "preferredTransport": "JSONRPC",
        "protocolVersion": "0.3",
        "url": url,
    }


def agent_message(message_id: str, text: str, task_id: str, context_id: str) -> dict[str, Any]:
    """An A2A v1.0 agent message with one text part, in task C{task_id}."""
    return {
        "messageId": message_id,
        "role": "ROLE_AGENT",
        "parts": [{"text": text}],
        "taskId": task_id,
        "contextId": context_id,
    }
