"""
Tests for L{axl.admin.codec}: the admin socket's framing, request parsing and Go-identical
envelope encoding (spec/yggdrasil-extras.md sections 1.2-1.5).
"""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from axl.admin.codec import (
    FIND_ERROR,
    AdminDecoder,
    AdminRequest,
    RequestTooLarge,
    encode_envelope,
    go_json,
    parse_request,
)

# The exact bytes a real v0.5.14 node A sends for getSelf (section 1.4).
GETSELF_A = (
    b'{\n  "status": "success",\n  "request": {\n    "request": "getSelf",\n    "arguments": {}\n'
    b'  },\n  "response": {\n    "build_name": "yggdrasil",\n    "build_version": "0.5.14",\n'
    b'    "key": "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29",\n'
    b'    "address": "202:24ae:c219:8a4a:de94:eae2:b97e:ac87",\n    "routing_entries": 4,\n'
    b'    "subnet": "302:24ae:c219:8a4a::/64"\n  }\n}\n'
)
UNKNOWN_FOO = (
    b'{\n  "status": "error",\n  "error": "unknown action \'foo\', try \'list\' for help",\n'
    b'  "request": {\n    "request": "foo",\n    "arguments": {}\n  },\n  "response": null\n}\n'
)


class DecoderTests(SynchronousTestCase):
    def test_concatenated_without_delimiters(self) -> None:
        """Values need no newline or separator between them; whitespace is skipped."""
        d = AdminDecoder()
        got = d.feed(b' {"request":"getTun","keepalive":true}{"request":"gettun"}\n\t{"a":[1,{"b":2}]}')
        self.assertEqual(
            got,
            [{"request": "getTun", "keepalive": True}, {"request": "gettun"}, {"a": [1, {"b": 2}]}],
        )

    def test_byte_by_byte(self) -> None:
        """A value split anywhere, even inside strings with braces and escapes, is reassembled."""
        text = b'{"request":"x\\"}{[","arguments":{"k":"\\\\"}}["z"]'
        d = AdminDecoder()
        got = []
        for i in range(len(text)):
            got += d.feed(text[i : i + 1])
        self.assertEqual(got, [{"request": 'x"}{[', "arguments": {"k": "\\"}}, ["z"]])

    def test_incomplete_waits(self) -> None:
        d = AdminDecoder()
        self.assertEqual(d.feed(b'{"request": "get'), [])
        self.assertEqual(d.feed(b'Self"}'), [{"request": "getSelf"}])

    def test_invalid_json(self) -> None:
        """Bytes that are not JSON give FIND_ERROR once; nothing after them is read."""
        d = AdminDecoder()
        self.assertEqual(d.feed(b'{"request": x}{"request":"list"}'), [FIND_ERROR])
        self.assertEqual(d.feed(b'{"request":"list"}'), [])
        self.assertEqual(d.eof(), [])

    def test_stray_closing_bracket(self) -> None:
        self.assertEqual(AdminDecoder().feed(b"}"), [FIND_ERROR])

    def test_eof(self) -> None:
        """The end of the stream is 'failed to find request', after a final bare scalar."""
        self.assertEqual(AdminDecoder().eof(), [FIND_ERROR])
        d = AdminDecoder()
        self.assertEqual(d.feed(b"  12"), [])
        self.assertEqual(d.eof(), [12, FIND_ERROR])
        d = AdminDecoder()
        self.assertEqual(d.feed(b'{"request":'), [])
        self.assertEqual(d.eof(), [FIND_ERROR])

    def test_scalars_and_strings(self) -> None:
        self.assertEqual(AdminDecoder().feed(b'5 "a}" [1]'), [5, "a}", [1]])

    def test_too_large(self) -> None:
        """A value longer than the limit raises; it is never buffered past it."""
        d = AdminDecoder(max_len=100)
        d.feed(b'{"request":"' + b"a" * 80)
        self.assertRaises(RequestTooLarge, d.feed, b"a" * 30)
        self.assertEqual(d.feed(b'"}'), [])

    def test_limit_counts_one_value(self) -> None:
        """Many small values in one chunk are fine: the limit is per value."""
        d = AdminDecoder(max_len=100)
        self.assertEqual(len(d.feed(b'{"request":"list"}' * 20)), 20)


class ParseRequestTests(SynchronousTestCase):
    def test_request(self) -> None:
        r = parse_request({"request": "getPeers", "arguments": {"sort": "cost"}, "x": 1})
        self.assertEqual(r, AdminRequest("getPeers", {"sort": "cost"}, False))

    def test_defaults(self) -> None:
        """Absent arguments echo as {}; null stays null; keepalive only when true."""
        r = parse_request({"request": "getTun"})
        assert isinstance(r, AdminRequest)
        self.assertEqual(r.echo(), {"request": "getTun", "arguments": {}})
        r = parse_request({"request": "getTun", "arguments": None, "keepalive": True})
        assert isinstance(r, AdminRequest)
        self.assertEqual(r.echo(), {"request": "getTun", "arguments": None, "keepalive": True})
        self.assertEqual(r.lower_name, "gettun")

    def _error(self, value: object) -> dict[str, object]:
        out = parse_request(value)
        assert isinstance(out, bytes)
        doc: dict[str, object] = json.loads(out)
        return doc

    def test_find_error(self) -> None:
        doc = self._error(FIND_ERROR)
        self.assertEqual(
            doc, {"status": "error", "error": "failed to find request",
                  "request": {"request": ""}, "response": None}
        )  # fmt: skip

    def test_unmarshal_errors(self) -> None:
        """Not an object, request not a string, keepalive not a bool."""
        for value in ([1], 5, "x", {"request": 1}, {"request": "gettun", "keepalive": 1}):
            doc = self._error(value)
            self.assertEqual(doc["error"], "failed to unmarshal request")
            self.assertEqual(doc["request"], {"request": ""})

    def test_null_request_is_empty(self) -> None:
        self.assertEqual(parse_request({"request": None}), AdminRequest("", {}, False))


class EncodeTests(SynchronousTestCase):
    def test_exact_success_bytes(self) -> None:
        """Our envelope is byte-identical to the real node's."""
        response = {
            "build_name": "yggdrasil",
            "build_version": "0.5.14",
            "key": "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29",
            "address": "202:24ae:c219:8a4a:de94:eae2:b97e:ac87",
            "routing_entries": 4,
            "subnet": "302:24ae:c219:8a4a::/64",
        }
        request = AdminRequest("getSelf", {})
        got = encode_envelope({"status": "success", "request": request.echo(), "response": response})
        self.assertEqual(got, GETSELF_A)

    def test_html_escaped(self) -> None:
        self.assertEqual(go_json({"x": "<&>\u2028\u2029é"}),
                         '{\n  "x": "\\u003c\\u0026\\u003e\\u2028\\u2029é"\n}')  # fmt: skip

    def test_empty_containers_and_nesting(self) -> None:
        self.assertEqual(go_json({"a": [], "b": {}, "c": [[1], None, True, False]}),
                         '{\n  "a": [],\n  "b": {},\n  "c": [\n    [\n      1\n    ],\n    null,'
                         '\n    true,\n    false\n  ]\n}')  # fmt: skip

    def test_floats_as_go(self) -> None:
        """Shortest round trip, no exponent between 1e-6 and 1e21, integral floats bare."""
        cases = {
            4.841198491: "4.841198491",
            0.000061246: "0.000061246",
            1e-05: "0.00001",
            5.0: "5",
            0.0: "0",
            1e21: "1e+21",
            1e-07: "1e-07",
            -2.5: "-2.5",
        }
        for value, text in cases.items():
            self.assertEqual(go_json(value), text, value)
        self.assertRaises(ValueError, go_json, float("nan"))

    def test_unsupported(self) -> None:
        self.assertRaises(TypeError, go_json, {1, 2})
