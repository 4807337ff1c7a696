# -*- test-case-name: tests.test_forward_tcp -*-
"""
From a mesh target to the full key the overlay TCP connects to (spec/yggdrasil-wire.md
sections 1.2-1.5 and 5.3): a C{<key>.pk.ygg} name carries it; an address in 200::/8, or one in
a node's 300::/64, names a partial key that the router looks up. The IPv6 layer learns the full
key from the path notify that answers the lookup; we ask it (L{IPv6Layer.known_key}) at short
intervals until it knows or the connect timeout passes.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import TCPTimedOutError
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from axl.crypto.address import ADDR_PREFIX, key_for_addr, key_for_subnet
from axl.forward.spec import OverlayTarget
from axl.ipv6.rwc import IPv6Layer

__all__ = ["KeyResolver", "POLL_INTERVAL"]

POLL_INTERVAL = 0.02
"""Seconds between two looks at the IPv6 layer's learnt keys while a lookup is out."""


class KeyResolver:
    """
    @param ipv6: the node's IPv6 layer (C{address}, C{subnet}, C{public_key}, C{known_key}).
    @param send_lookup: the router's C{send_lookup(partial_key)}.
    """

    def __init__(self, ipv6: IPv6Layer, send_lookup: Callable[[bytes], None], clock: IReactorTime,
                 timeout: float) -> None:  # fmt: skip
        self._ipv6, self._send_lookup, self._clock = ipv6, send_lookup, clock
        self.timeout = timeout

    def resolve(self, target: OverlayTarget) -> Deferred[bytes]:
        """
        Fire with the full key of C{target}'s node, or fail with C{TCPTimedOutError} when no
        lookup answered within the timeout. Cancelling stops the polling.
        """
        if target.key is not None:
            return succeed(target.key)
        address = target.address
        assert address is not None
        ipv6 = self._ipv6
        if address == ipv6.address or address[:8] == ipv6.subnet:
            return succeed(bytes(ipv6.public_key))
        known = ipv6.known_key(address)
        if known is not None:
            return succeed(bytes(known))
        partial = key_for_addr(address) if address[0] == ADDR_PREFIX else key_for_subnet(address)
        deadline = self._clock.seconds() + self.timeout
        state: dict[str, IDelayedCall] = {}

        def cancel(_: Deferred[bytes]) -> None:
            call = state.pop("call", None)
            if call is not None and call.active():
                call.cancel()

        d: Deferred[bytes] = Deferred(cancel)

        def poll(resend: int) -> None:
            state.pop("call", None)
            key = ipv6.known_key(address)
            if key is not None:
                d.callback(bytes(key))
                return
            now = self._clock.seconds()
            if now >= deadline:
                d.errback(TCPTimedOutError(string=f"no node answered for {target}"))
                return
            if resend <= 0:  # ask again about once a second, as the IPv6 layer does per packet
                self._send_lookup(partial)
                resend = int(1 / POLL_INTERVAL)
            wait = min(POLL_INTERVAL, deadline - now)
            state["call"] = self._clock.callLater(wait, poll, resend - 1)

        poll(0)
        return d
