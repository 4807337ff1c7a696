"""Tests for L{axl.streams.envelope}: AXL's envelope recognition rules and the exact JSON shapes."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from axl.streams import envelope as E


class RecognitionTests(SynchronousTestCase):
    def test_mcp_claims_non_empty_string_service(self) -> None:
        """An object with a non-empty string C{service} is an MCP request; C{request} may be absent."""
        r = E.parse_mcp_request({"service": "weather", "request": {"id": 1}})
        assert r is not None
        self.assertEqual((r.service, r.request, r.headers), ("weather", {"id": 1}, {}))
        r2 = E.parse_mcp_request({"service": "w"})
        assert r2 is not None
        self.assertIs(r2.request, E.MISSING)

    def test_mcp_rejects_empty_or_wrong_type(self) -> None:
        """C{{"service": ""}}, C{{"service": 5}} and C{null} are not claimed (Go decode rules)."""
        for obj in ({"service": ""}, {"service": 5}, {"service": None}, {"request": 1}):
            self.assertIsNone(E.parse_mcp_request(obj), obj)

    def test_keys_match_case_insensitively_last_wins(self) -> None:
        """C{Service} and C{SERVICE} count as C{service}; of several, the last one wins."""
        r = E.parse_mcp_request({"SERVICE": "a", "Service": "b"})
        assert r is not None
        self.assertEqual(r.service, "b")

    def test_a2a_needs_boolean_true(self) -> None:
        """C{a2a} must be the boolean C{true}; C{agent_card} must be a boolean if present."""
        self.assertIsNone(E.parse_a2a_request({"a2a": "true"}))
        self.assertIsNone(E.parse_a2a_request({"a2a": False}))
        self.assertIsNone(E.parse_a2a_request({"a2a": True, "agent_card": "yes"}))
        r = E.parse_a2a_request({"A2A": True, "Agent_Card": True, "request": None})
        assert r is not None
        self.assertTrue(r.agent_card)
        r2 = E.parse_a2a_request({"a2a": True, "request": {"x": 1}})
        assert r2 is not None
        self.assertEqual((r2.agent_card, r2.request), (False, {"x": 1}))

    def test_parse_object_only_objects(self) -> None:
        """Only a whole JSON object is an envelope candidate; binary, arrays and bad JSON are not."""
        self.assertEqual(E.parse_object(b' {"a": 1}'), {"a": 1})
        for payload in (
            b"",
            b"\x00\xff{",
            b"[1]",
            b'"s"',
            b"{bad",
            b"null",
            b'{"a":1} x',
        ):
            self.assertIsNone(E.parse_object(payload), payload)

    def test_mcp_request_headers_only_strings(self) -> None:
        """The optional C{headers} object keeps its string values."""
        r = E.parse_mcp_request(
            {"service": "s", "headers": {"Mcp-Session-Id": "x", "n": 1}}
        )
        assert r is not None
        self.assertEqual(r.headers, {"Mcp-Session-Id": "x"})


class ShapeTests(SynchronousTestCase):
    def test_mcp_request_shape(self) -> None:
        """The MCP request envelope is exactly C{service}, C{request}, and C{headers} only when given."""
        self.assertEqual(
            E.encode_mcp_request("w", {"id": 1}), b'{"service":"w","request":{"id":1}}'
        )
        self.assertEqual(
            json.loads(E.encode_mcp_request("w", None, {"Mcp-Method": "tools/list"})),
            {"service": "w", "request": None, "headers": {"Mcp-Method": "tools/list"}},
        )

    def test_mcp_reply_shape(self) -> None:
        """The MCP reply envelope omits C{error} and C{headers} when empty."""
        self.assertEqual(
            E.encode_mcp_reply("w", {"r": 1}), b'{"service":"w","response":{"r":1}}'
        )
        self.assertEqual(
            E.encode_mcp_reply("w", None, "boom"),
            b'{"service":"w","response":null,"error":"boom"}',
        )

    def test_a2a_shapes(self) -> None:
        """The A2A request and reply envelopes match spec section 7.5 byte for byte."""
        self.assertEqual(
            E.encode_a2a_request(None, agent_card=True),
            b'{"a2a":true,"agent_card":true,"request":null}',
        )
        self.assertEqual(
            E.encode_a2a_request({"m": 1}), b'{"a2a":true,"request":{"m":1}}'
        )
        self.assertEqual(
            E.encode_a2a_reply(None, "x"), b'{"a2a":true,"response":null,"error":"x"}'
        )

    def test_reply_parse_missing_response(self) -> None:
        """A reply without C{response} reports L{MISSING}; a non-string error makes it invalid."""
        r = E.parse_mcp_reply(b'{"service":"s","error":"e"}')
        assert r is not None
        self.assertIs(r.response, E.MISSING)
        self.assertEqual(r.error, "e")
        self.assertIsNone(E.parse_mcp_reply(b'{"error": 5}'))
        self.assertIsNone(E.parse_mcp_reply(b"not json"))

    @settings(max_examples=200)
    @given(
        st.text(min_size=1),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(),
            lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids),
            max_leaves=10,
        ),
    )
    def test_mcp_round_trip(self, service: str, request: object) -> None:
        """Any service name and JSON request survive encode then parse."""
        obj = E.parse_object(E.encode_mcp_request(service, request))
        assert obj is not None
        r = E.parse_mcp_request(obj)
        assert r is not None
        self.assertEqual((r.service, r.request), (service, request))
