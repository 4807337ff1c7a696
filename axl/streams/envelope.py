# -*- test-case-name: tests.test_streams_envelope -*-
"""
The JSON envelopes carried in port-7000 messages (spec/axl-node.md section 7.5), and AXL's rules
for recognising them.

AXL decodes a payload with Go's C{encoding/json} into a struct, so: the whole payload must be
JSON, an object's keys match the field names case-insensitively (the last matching key wins),
unknown keys are ignored, and a value of the wrong type makes the whole decode fail (the payload is
then not an envelope). C{null} leaves a field at its zero value.

Shapes (field names are byte-exact; C{headers} is our extension, ignored by Go AXL peers)::

    MCP request   {"service": s, "request": r,
                   "headers"?: {"Mcp-Session-Id", "MCP-Protocol-Version", "Mcp-Method", "Mcp-Name"}}
    MCP reply     {"service": s, "response": r, "error"?: e, "headers"?: {"Mcp-Session-Id", "Content-Type"}}
    A2A request   {"a2a": true, "agent_card"?: true, "request": r}
    A2A reply     {"a2a": true, "response": r, "error"?: e}
    router call   {"service": s, "request": r, "from_peer_id": hex, "headers"?: {...}}
    router reply  {"response": r, "error": e or null, "headers"?: {...}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MISSING",
    "A2ARequest",
    "McpRequest",
    "Reply",
    "dumps",
    "encode_a2a_reply",
    "encode_a2a_request",
    "encode_mcp_reply",
    "encode_mcp_request",
    "get_field",
    "parse_a2a_reply",
    "parse_a2a_request",
    "parse_mcp_reply",
    "parse_mcp_request",
    "parse_object",
]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: A field that is absent (as opposed to present with the value C{None}).
MISSING: Any = _Missing()

_WHITESPACE = b" \t\r\n"


def dumps(value: Any) -> bytes:
    """Compact JSON (no spaces), UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def parse_object(payload: bytes) -> dict[str, Any] | None:
    """
    The payload as a JSON object, or None if it is not one. Cheap for binary payloads: only a
    payload whose first non-blank byte is C{E{lb}} is parsed.
    """
    head = payload[:64].lstrip(_WHITESPACE)
    if not head.startswith(b"{"):
        return None
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def get_field(obj: Mapping[str, Any], name: str) -> Any:
    """
    The value of field C{name} (lower-case) as Go would decode it: the last key equal to it
    ignoring case wins; L{MISSING} if none.
    """
    found = MISSING
    for key, value in obj.items():
        if key.lower() == name:
            found = value
    return found


def _headers(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


@dataclass(frozen=True)
class McpRequest:
    """An MCP request envelope: C{request} is the JSON value (L{MISSING} if absent)."""

    service: str
    request: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class A2ARequest:
    """An A2A request envelope."""

    agent_card: bool
    request: Any


@dataclass(frozen=True)
class Reply:
    """
    A reply envelope (MCP or A2A) as the caller sees it: C{response} (L{MISSING} if the key was
    absent), C{error} (empty when none) and C{headers}.
    """

    response: Any
    error: str
    headers: dict[str, str] = field(default_factory=dict)


def parse_mcp_request(obj: Mapping[str, Any]) -> McpRequest | None:
    """An MCP request if C{obj} has a non-empty string C{service} (AXL's matcher), else None."""
    service = get_field(obj, "service")
    if not isinstance(service, str) or not service:
        return None
    return McpRequest(
        service, get_field(obj, "request"), _headers(get_field(obj, "headers"))
    )


def parse_a2a_request(obj: Mapping[str, Any]) -> A2ARequest | None:
    """An A2A request if C{a2a} is C{true} and C{agent_card} is a boolean or absent, else None."""
    if get_field(obj, "a2a") is not True:
        return None
    card = get_field(obj, "agent_card")
    if card is MISSING or card is None:
        card = False
    if not isinstance(card, bool):
        return None
    return A2ARequest(card, get_field(obj, "request"))


def _error_text(value: Any) -> str | None:
    if value is MISSING or value is None:
        return ""
    return value if isinstance(value, str) else None


def parse_mcp_reply(payload: bytes) -> Reply | None:
    """An MCP reply envelope, or None if the payload is not one (not JSON, wrong types)."""
    obj = parse_object(payload)
    if obj is None:
        return None
    error = _error_text(get_field(obj, "error"))
    if error is None:
        return None
    return Reply(get_field(obj, "response"), error, _headers(get_field(obj, "headers")))


def parse_a2a_reply(payload: bytes) -> Reply | None:
    """An A2A reply envelope, or None if the payload is not one."""
    return parse_mcp_reply(payload)


def encode_mcp_request(
    service: str, request: Any, headers: Mapping[str, str] | None = None
) -> bytes:
    """The MCP request envelope; C{headers} only when non-empty."""
    env: dict[str, Any] = {"service": service, "request": request}
    if headers:
        env["headers"] = dict(headers)
    return dumps(env)


def encode_mcp_reply(
    service: str,
    response: Any,
    error: str = "",
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The MCP reply envelope; C{error} and C{headers} only when non-empty."""
    env: dict[str, Any] = {"service": service, "response": response}
    if error:
        env["error"] = error
    if headers:
        env["headers"] = dict(headers)
    return dumps(env)


def encode_a2a_request(request: Any, agent_card: bool = False) -> bytes:
    """The A2A request envelope (C{agent_card} only when true)."""
    env: dict[str, Any] = {"a2a": True}
    if agent_card:
        env["agent_card"] = True
    env["request"] = request
    return dumps(env)


def encode_a2a_reply(response: Any, error: str = "") -> bytes:
    """The A2A reply envelope; C{error} only when non-empty."""
    env: dict[str, Any] = {"a2a": True, "response": response}
    if error:
        env["error"] = error
    return dumps(env)
