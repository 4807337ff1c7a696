"""
Tests for L{axl.integrations.mcp_http}: header selection, JSON-object bodies and reply decoding
(plain JSON and event streams).
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from axl.integrations.mcp_http import (
    REQUEST_HEADERS,
    ReplyError,
    decode_reply,
    parse_json_object,
    parse_sse_messages,
    routing_headers,
    select_headers,
)

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


class SelectHeadersTests(SynchronousTestCase):
    def test_canonical_names(self) -> None:
        """Known headers are matched case-insensitively and renamed to their canonical spelling."""
        self.assertEqual(
            select_headers({"mcp-session-id": "a", "mcp-protocol-version": "v", "MCP-METHOD": "m"}, REQUEST_HEADERS),
            {"Mcp-Session-Id": "a", "MCP-Protocol-Version": "v", "Mcp-Method": "m"},
        )

    def test_drops_others(self) -> None:
        """Unknown names, empty and non-string values are left out; None gives {}."""
        self.assertEqual(select_headers({"Host": "x", "Mcp-Session-Id": "", "Mcp-Method": 5}, REQUEST_HEADERS), {})
        self.assertEqual(select_headers(None, REQUEST_HEADERS), {})


class RoutingHeadersTests(SynchronousTestCase):
    def test_tools_call(self) -> None:
        """tools/call mirrors method, tool name and the per-request protocol version."""
        message = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "echo", "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}},
        }
        self.assertEqual(
            routing_headers(message),
            {"Mcp-Method": "tools/call", "Mcp-Name": "echo", "MCP-Protocol-Version": "2026-07-28"},
        )

    def test_encoded_name(self) -> None:
        """A resource URI that is not printable ASCII is base64-wrapped as MCP specifies."""
        headers = routing_headers({"method": "resources/read", "params": {"uri": "file:///é"}})
        self.assertEqual(headers["Mcp-Name"], "=?base64?ZmlsZTovLy/DqQ==?=")

    def test_not_a_request(self) -> None:
        """Bodies without a string method give no headers; other methods no Mcp-Name."""
        self.assertEqual(routing_headers([1]), {})
        self.assertEqual(routing_headers({"id": 1, "result": {}}), {})
        self.assertEqual(routing_headers({"method": "tools/list", "params": {"name": "x"}}), {"Mcp-Method": "tools/list"})


class JSONObjectTests(SynchronousTestCase):
    def test_object(self) -> None:
        """An object decodes; arrays, scalars, null and bad JSON raise ValueError."""
        self.assertEqual(parse_json_object(b'{"a": 1}'), {"a": 1})
        for raw in (b"[]", b"1", b"null", b"", b"{", b"\xff"):
            self.assertRaises(ValueError, parse_json_object, raw)


class DecodeReplyTests(SynchronousTestCase):
    def test_json(self) -> None:
        """application/json (or no type) is parsed as JSON."""
        self.assertEqual(decode_reply("application/json; charset=utf-8", b'{"id": 1}'), {"id": 1})
        self.assertEqual(decode_reply(None, b"[1]"), [1])

    def test_bad_json(self) -> None:
        """Empty or non-JSON bodies raise ReplyError naming the content type."""
        self.assertRaises(ReplyError, decode_reply, "application/json", b"")
        e = self.assertRaises(ReplyError, decode_reply, "text/html", b"<p>")
        self.assertIn("text/html", str(e))

    def test_sse_single(self) -> None:
        """A stream with one message (CRLF line ends) yields it."""
        body = b'event: message\r\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\r\n\r\n'
        self.assertEqual(decode_reply("text/event-stream", body), {"jsonrpc": "2.0", "id": 1, "result": {}})

    def test_sse_skips(self) -> None:
        """Comments, other event types and empty priming events are skipped."""
        body = b': hi\n\nevent: ping\ndata: 1\n\nid: 5\ndata:\n\ndata: {"id": 2, "error": {}}\n\n'
        self.assertEqual(parse_sse_messages(body), [{"id": 2, "error": {}}])

    def test_sse_without_response(self) -> None:
        """A stream with several messages and no response, or none at all, is a ReplyError."""
        self.assertRaises(ReplyError, decode_reply, "text/event-stream", b"")
        two = b'data: {"method": "a"}\n\ndata: {"method": "b"}\n\n'
        self.assertRaises(ReplyError, decode_reply, "text/event-stream", two)

    def test_sse_bad_data(self) -> None:
        """Event data that is not JSON is a ReplyError."""
        self.assertRaises(ReplyError, parse_sse_messages, b"data: {\n\n")

    @settings(max_examples=200)
    @given(_json_values, st.sampled_from(["\n", "\r\n", "\r"]))
    def test_sse_round_trip(self, value: object, eol: str) -> None:
        """Any JSON value, pretty-printed over several data lines with any line end, comes back."""
        lines = json.dumps(value, indent=1).split("\n")
        body = ("event: message" + eol + "".join(f"data: {line}{eol}" for line in lines) + eol).encode()
        self.assertEqual(parse_sse_messages(body), [value])
