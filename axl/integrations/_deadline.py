# -*- test-case-name: tests.test_integrations_router -*-
"""
One helper: wait for a Deferred with a deadline on an injected clock, cancelling it when the
deadline passes (whatever error the cancelled operation then reports).
"""

from __future__ import annotations

from typing import TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

__all__ = ["DeadlineExceeded", "await_with_deadline"]

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The operation did not finish within its deadline and was cancelled."""


async def await_with_deadline(d: Deferred[T], clock: IReactorTime, seconds: float) -> T:
    """
    Await C{d}; if it has not fired after C{seconds}, cancel it and raise L{DeadlineExceeded}.
    The timer never outlives the call.
    """
    expired: list[bool] = []

    def expire() -> None:
        expired.append(True)
        d.cancel()

    timer = clock.callLater(seconds, expire)
    try:
        return await d
    except Exception as e:
        if expired:
            raise DeadlineExceeded(f"no answer within {seconds:g} s") from e
        raise
    finally:
        if timer.active():
            timer.cancel()
