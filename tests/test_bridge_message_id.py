# -*- test-case-name: tests.test_bridge_message_id -*-
"""
Tests for C{X-Message-Id} (issue 12, safe retries): the receiving node takes a message once per
(sender, id) within its window and answers a retry as accepted; C{/recv} returns the id.
"""

from __future__ import annotations

from typing import Any, ClassVar

from tests.test_bridge_messaging import TwoNodes


class MessageIdTests(TwoNodes):
    b_config: ClassVar[dict[str, Any]] = {"recv_queue_max_messages": 1}

    def send_id(self, payload: bytes, message_id: str, to: bytes | None = None) -> int:
        headers = {"X-Destination-Peer-Id": (to or self.B).hex(), "X-Message-Id": message_id}
        return self.call(self.client_a, "POST", "/send", headers, payload)[0]

    def recv(self, client: Any = None) -> tuple[int, Any, bytes]:
        return self.call(client or self.client_b, "GET", "/recv")

    def test_retry_not_delivered_twice(self) -> None:
        """The same id sent twice: both 200, one message at /recv, with its id in X-Message-Id."""
        self.assertEqual(self.send_id(b"hello", "m-1"), 200)
        self.assertEqual(self.send_id(b"hello", "m-1"), 200)
        code, headers, body = self.recv()
        self.assertEqual((code, body, self.header(headers, "X-Message-Id")), (200, b"hello", "m-1"))
        self.assertEqual(self.recv()[0], 204)
        self.assertEqual(self.send_id(b"again", "m-2"), 200)
        self.assertEqual(self.recv()[2], b"again")

    def test_retry_after_503_never_duplicates(self) -> None:
        """
        B's queue is full: the first /send times out with 503 while its message waits at B; the
        client retries with the same id; once B's app reads, the message is there once.
        """
        self.assertEqual(self.send_id(b"filler", "f"), 200)
        headers = {"X-Destination-Peer-Id": self.B.hex(), "X-Message-Id": "m-9"}
        d = self.client_a.request("POST", "http://127.0.0.1:9002/send", headers=headers, data=b"x")
        self.settle()
        self.clock.advance(30)
        self.settle()
        self.assertEqual(self.successResultOf(d).code, 503)
        retry = self.client_a.request("POST", "http://127.0.0.1:9002/send", headers=headers, data=b"x")
        self.settle()
        got = []
        while True:
            code, hdrs, body = self.recv()
            if code != 200:
                break
            got.append((body, self.header(hdrs, "X-Message-Id")))
        self.settle()
        self.assertEqual(self.successResultOf(retry).code, 200)
        self.assertEqual(got, [(b"filler", "f"), (b"x", "m-9")])

    def test_no_id_no_header(self) -> None:
        """Without X-Message-Id nothing is deduplicated and /recv sends no X-Message-Id."""
        self.send(b"a")
        code, headers, _ = self.recv()
        self.assertIsNone(self.header(headers, "X-Message-Id"))
        self.send(b"a")
        self.assertEqual(self.recv()[2], b"a")

    def test_invalid_id(self) -> None:
        """An id that is empty, too long or not visible ASCII is 400, nothing sent."""
        for bad in ("a" * 129, "has space"):
            self.assertEqual(self.send_id(b"z", bad), 400, bad)
        self.assertEqual(self.recv()[0], 204)

    def test_local_send_deduplicated(self) -> None:
        """A /send to our own key with an id it already gave is taken once too."""
        self.assertEqual(self.send_id(b"me", "s-1", to=self.A), 200)
        self.assertEqual(self.send_id(b"me", "s-1", to=self.A), 200)
        self.assertEqual(self.recv(self.client_a)[2], b"me")
        self.assertEqual(self.recv(self.client_a)[0], 204)
