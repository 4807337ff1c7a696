# -*- test-case-name: tests.test_mesh_limits -*-
"""
Tests for L{axl.mesh.limits} at the router's frame entry point (issue 12): a peer cannot make us
sign, verify or answer more than its token buckets allow, and a peer that keeps trying is dropped.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.errors import PeerFlooding
from axl.mesh.limits import FRAME_LIMITS, STRIKE_BURST, FrameLimiter
from axl.mesh.router import Router
from axl.mesh.wire import FRAME_LOOKUP, FRAME_SIGREQ, FRAME_SIGRES, SigReq
from tests.mesh_fakes import FakeLink, counter_randbytes, identities


class RouterLimitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.ids = identities(2)
        self.clock = Clock()
        self.router = Router(self.ids[0], self.clock, lambda s, d: None,
                             randbytes=counter_randbytes())  # fmt: skip
        self.router.start()
        self.addCleanup(self.router.stop)
        self.link = FakeLink(self.ids[1].public_key)
        self.router.link_up(self.link)
        self.link.frames.clear()

    def test_sigreq_flood_answered_within_the_bucket(self) -> None:
        """
        16,000 SigReqs at once (one 64 KiB read) get at most the burst of answers (so at most
        that many signatures), and then the peer is refused as flooding.
        """
        rate, burst = FRAME_LIMITS[FRAME_SIGREQ]
        payload = SigReq(1, 2).encode()
        with self.assertRaises(PeerFlooding):
            for _ in range(16_000):
                self.router.frame_received(self.link, FRAME_SIGREQ, payload)
        self.assertEqual(len(self.link.of_type(FRAME_SIGRES)), burst)

    def test_rate_refills(self) -> None:
        """After the burst, SigReqs are answered at the bucket's rate, and a modest peer is never dropped."""
        rate, burst = FRAME_LIMITS[FRAME_SIGREQ]
        payload = SigReq(1, 2).encode()
        for _ in range(60):  # 60 s of 10 SigReqs a second: over the rate, under the strikes
            for _ in range(10):
                self.router.frame_received(self.link, FRAME_SIGREQ, payload)
            self.clock.advance(1.0)
        answers = len(self.link.of_type(FRAME_SIGRES))
        self.assertGreaterEqual(answers, burst + 59 * rate - 2)
        self.assertLessEqual(answers, burst + 60 * rate)

    def test_limits_per_key_forgotten_on_link_down(self) -> None:
        """The buckets belong to the key while a link to it is up."""
        self.router.link_down(self.link)
        self.assertEqual(self.router._limits, {})


class FrameLimiterTests(SynchronousTestCase):
    def test_strikes(self) -> None:
        """Frames over the limit are ignored; after STRIKE_BURST of them the peer is flooding."""
        limiter = FrameLimiter(Clock())
        rate, burst = FRAME_LIMITS[FRAME_SIGRES]
        results = [limiter.allow(FRAME_SIGRES) for _ in range(int(burst + STRIKE_BURST))]
        self.assertEqual(results.count(True), burst)
        with self.assertRaises(PeerFlooding) as cm:
            limiter.allow(FRAME_SIGRES)
        self.assertIn("frames over the limits", str(cm.exception))
        self.assertTrue(limiter.allow(9))  # Traffic is not limited here

    def test_types_independent(self) -> None:
        """One type's bucket being empty does not limit another type."""
        limiter = FrameLimiter(Clock())
        for _ in range(int(FRAME_LIMITS[FRAME_SIGREQ][1])):
            limiter.allow(FRAME_SIGREQ)
        self.assertFalse(limiter.allow(FRAME_SIGREQ))
        self.assertTrue(limiter.allow(FRAME_LOOKUP))
