# -*- test-case-name: tests.test_streams_dedup -*-
"""
Duplicate detection for C{X-Message-Id} (issue 12, safe retries): the receiving node remembers
each C{(sender key, message id)} it accepted for C{window} seconds, at most C{max_entries} of
them (the oldest forgotten first), so a retried message is answered as accepted but not
delivered twice. Pure code on an injected clock.
"""

from __future__ import annotations

from collections import OrderedDict

from twisted.internet.interfaces import IReactorTime

__all__ = ["MESSAGE_ID_MAX", "SeenMessages", "valid_message_id"]

#: The longest message id accepted (visible ASCII characters).
MESSAGE_ID_MAX = 128


def valid_message_id(value: str) -> bool:
    """Whether C{value} is a usable message id: 1 to 128 visible ASCII characters."""
    return 0 < len(value) <= MESSAGE_ID_MAX and all(0x21 <= ord(c) <= 0x7E for c in value)


class SeenMessages:
    """
    The message ids accepted recently, per sender.

    @ivar duplicates: how many duplicates L{first} recognised.
    """

    def __init__(self, clock: IReactorTime, window: float = 600.0, max_entries: int = 10_000) -> None:
        self._clock = clock
        self.window = window
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[bytes, str], float] = OrderedDict()
        self.duplicates = 0

    def __len__(self) -> int:
        return len(self._seen)

    def first(self, sender: bytes, message_id: str) -> bool:
        """
        Record C{message_id} from C{sender}; True the first time within the window, False for
        a duplicate (which is then remembered from its first arrival, not refreshed).
        """
        now = self._clock.seconds()
        seen = self._seen
        horizon = now - self.window
        while seen:
            oldest = next(iter(seen.values()))
            if oldest > horizon and len(seen) < self.max_entries:
                break
            seen.popitem(last=False)
        key = (sender, message_id)
        if key in seen:
            self.duplicates += 1
            return False
        seen[key] = now
        return True
