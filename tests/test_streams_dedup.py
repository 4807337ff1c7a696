# -*- test-case-name: tests.test_streams_dedup -*-
"""Tests for L{axl.streams.dedup}: the window of accepted message ids."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.streams.dedup import SeenMessages, valid_message_id

A, B = b"a" * 32, b"b" * 32


class SeenMessagesTests(SynchronousTestCase):
    def test_duplicate_within_window(self) -> None:
        """The same id from the same sender is a duplicate within the window; another sender's is not."""
        clock = Clock()
        seen = SeenMessages(clock, window=600)
        self.assertTrue(seen.first(A, "m1"))
        clock.advance(599)
        self.assertFalse(seen.first(A, "m1"))
        self.assertTrue(seen.first(B, "m1"))
        self.assertEqual(seen.duplicates, 1)

    def test_forgotten_after_window(self) -> None:
        """After the window (from the first arrival) the id is new again."""
        clock = Clock()
        seen = SeenMessages(clock, window=600)
        seen.first(A, "m1")
        clock.advance(300)
        seen.first(A, "m1")
        clock.advance(300)
        self.assertTrue(seen.first(A, "m1"))

    def test_bounded(self) -> None:
        """At most max_entries ids are kept, the oldest forgotten first."""
        seen = SeenMessages(Clock(), max_entries=100)
        for i in range(1000):
            seen.first(A, str(i))
        self.assertEqual(len(seen), 100)
        self.assertFalse(seen.first(A, "999"))
        self.assertTrue(seen.first(A, "0"))

    def test_valid_ids(self) -> None:
        """Ids are 1-128 visible ASCII characters."""
        self.assertTrue(valid_message_id("retry-7f3a"))
        for bad in ("", "a" * 129, "has space", "é"):
            self.assertFalse(valid_message_id(bad), bad)
