"""
L{axl.bridge.app.HotRoutes}: C{POST /send} and C{GET /recv} served without Klein's resource,
everything else through it, with the same answers (the messaging tests run through it too).
"""

from __future__ import annotations

import io
from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import IResource
from twisted.web.test.requesthelper import DummyRequest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from axl.bridge.app import Bridge, HotRoutes
from axl.streams.errors import PeerUnreachable
from axl.streams.recv_queue import RecvQueue

KEY = "ab" * 32


class FakeSender:
    """Answers every send with C{result} (a value, an exception, or a Deferred)."""

    def __init__(self, result: object) -> None:
        self.result = result
        self.sent: list[tuple[bytes, bytes]] = []

    def send(self, dest: bytes, payload: bytes) -> Deferred[int]:
        self.sent.append((dest, payload))
        if isinstance(self.result, Deferred):
            return self.result
        if isinstance(self.result, BaseException):
            return fail(self.result)
        return succeed(len(payload))


@implementer(IResource)
class Recording:
    """Stands for the Klein resource: records what reached it."""

    isLeaf = True

    def __init__(self) -> None:
        self.rendered: list[bytes] = []

    def getChildWithDefault(self, name: bytes, request: Any) -> IResource:
        return self

    def putChild(self, path: bytes, child: IResource) -> None:
        pass

    def render(self, request: Any) -> bytes:
        self.rendered.append(request.path)
        return b"inner"


def bridge(result: object = 0) -> tuple[Bridge, FakeSender, RecvQueue]:
    clock = Clock()
    sender, queue = FakeSender(result), RecvQueue(clock)
    return Bridge(dict, sender, queue, clock, None), sender, queue  # type: ignore[arg-type]


class HotRoutesTests(SynchronousTestCase):
    def request(self, http: StubTreq, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        d = http.request(method, "http://127.0.0.1:9002" + path, data=body,
                         headers={"X-Destination-Peer-Id": KEY})  # fmt: skip
        response = self.successResultOf(d)
        return response.code, self.successResultOf(response.content())

    def test_interface(self) -> None:
        b, _, _ = bridge()
        verifyObject(IResource, HotRoutes(b, Recording()))

    def test_send_and_recv_bypass_the_inner_resource(self) -> None:
        """The two message routes answer as the bridge does without reaching Klein."""
        b, sender, queue = bridge()
        inner = Recording()
        http = StubTreq(HotRoutes(b, inner))
        self.assertEqual(self.request(http, "POST", "/send", b"hello"), (200, b""))
        self.assertEqual(sender.sent, [(bytes.fromhex(KEY), b"hello")])
        self.assertEqual(self.request(http, "GET", "/recv"), (204, b""))
        queue.put(b"\x01" * 32, b"payload")
        self.assertEqual(self.request(http, "GET", "/recv"), (200, b"payload"))
        self.assertEqual(inner.rendered, [])

    def test_other_requests_go_to_the_inner_resource(self) -> None:
        """Other paths, other methods on the hot paths (HEAD /recv, GET /send) and sub-paths."""
        b, _, _ = bridge()
        inner = Recording()
        http = StubTreq(HotRoutes(b, inner))
        for method, path in (("GET", "/topology"), ("HEAD", "/recv"), ("GET", "/send"), ("POST", "/send/")):
            self.request(http, method, path)
        self.assertEqual(inner.rendered, [b"/topology", b"/recv", b"/send", b"/send/"])

    def test_errors_use_the_apps_handlers(self) -> None:
        """A delivery error is answered by the Klein app's handler: 502 and its message."""
        b, _, _ = bridge(PeerUnreachable("Failed to reach peer: no route"))
        http = StubTreq(b.resource())
        self.assertEqual(self.request(http, "POST", "/send", b"x"), (502, b"Failed to reach peer: no route\n"))

    def test_bad_request_from_the_route(self) -> None:
        """What the route itself answers (a bad destination) comes through unchanged."""
        b, _, _ = bridge()
        http = StubTreq(b.resource())
        d = http.request("POST", "http://127.0.0.1:9002/send", data=b"x",
                         headers={"X-Destination-Peer-Id": "zz"})  # fmt: skip
        response = self.successResultOf(d)
        self.assertEqual(response.code, 400)

    def test_unexpected_error_is_500(self) -> None:
        """An exception no handler knows is a 500, logged."""
        b, _, _ = bridge(RuntimeError("boom"))
        http = StubTreq(b.resource())
        code, _ = self.request(http, "POST", "/send", b"x")
        self.assertEqual(code, 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_client_gone_cancels_and_writes_nothing(self) -> None:
        """A /send whose client went away is cancelled; nothing is written after the finish."""
        pending: Deferred[int] = Deferred()
        b, _, _ = bridge(pending)
        request = DummyRequest([b"send"])
        request.method = b"POST"
        request.path = b"/send"
        request.requestHeaders.setRawHeaders(b"X-Destination-Peer-Id", [KEY.encode()])
        request.content = io.BytesIO(b"x")
        HotRoutes(b, Recording()).render(request)
        request.processingFailed(Failure(ConnectionDone("client went away")))  # fires notifyFinish's errback
        self.assertTrue(pending.called)  # cancelled (the route consumed the CancelledError)
        self.assertEqual(request.written, [])
        self.assertEqual(request.finished, 0)
