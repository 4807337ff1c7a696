# -*- test-case-name: tests.test_session_manager -*-
"""
One encrypted session with one remote key (spec/yggdrasil-wire.md section 4.5), pure.

The state is a ratchet of counters and key pairs rather than a handful of discrete states, so
it is a plain class (not an automat machine): every method is one of the spec's operations.
A L{Session} never calls the network or the upper layer itself while its state is half
updated: it changes its state first and only then hands packets to its L{SessionHost}
(the L{axl.session.manager.SessionManager}), so a reply sent from inside a delivery sees the
updated keys, as Go's actor queue guarantees.
"""

from __future__ import annotations

from typing import Protocol

from axl.encoding import MAX_UINT64
from axl.errors import DecodeError
from axl.session.codec import (
    TYPE_ACK,
    TYPE_INIT,
    SessionInit,
    decode_traffic_header,
    encode_traffic,
)
from axl.session.keys import BoxKeyPair, open_box, shared_key

__all__ = ["Session", "SessionHost", "SESSION_TIMEOUT", "ROTATE_INTERVAL"]

SESSION_TIMEOUT = 60.0
"""Seconds without an accepted update, a send or a decrypted receive before a session is deleted."""

ROTATE_INTERVAL = 60.0
"""Traffic-driven key rotation happens at most once per this many seconds."""


class SessionHost(Protocol):
    """What a session needs from its manager."""

    def now(self) -> float:
        """The clock's time in seconds (Unix time in production)."""

    def send_packet(self, remote: bytes, data: bytes) -> None:
        """Hand one encrypted-layer packet to the router."""

    def send_init(self, remote: bytes, packet_type: int, init: SessionInit) -> None:
        """Encrypt and send an init (1) or ack (2)."""


class Session:
    """
    The state shared with one remote key. Attribute names follow the spec; C{remote_seq} is the
    spec's C{seq} (the last accepted init/ack time).
    """

    __slots__ = (
        "host",
        "remote",
        "remote_seq",
        "remote_key_seq",
        "current",
        "next",
        "local_key_seq",
        "recv",
        "send",
        "next_pair",
        "recv_shared",
        "send_shared",
        "next_send_shared",
        "next_recv_shared",
        "recv_nonce",
        "send_nonce",
        "next_send_nonce",
        "next_recv_nonce",
        "rotated",
        "last_active",
        "since",
        "rx_bytes",
        "tx_bytes",
    )

    def __init__(
        self,
        host: SessionHost,
        remote: bytes,
        current: bytes,
        next_: bytes,
        seq: int,
        pairs: tuple[BoxKeyPair, BoxKeyPair, BoxKeyPair] | None = None,
    ) -> None:
        """
        C{newSession}: C{seq - 1}, the remote's keys, three fresh local pairs (or C{pairs}),
        key sequences 0 and C{fixShared(0, 0)}.

        @raise DecodeError: the remote keys are unusable.
        """
        self.host = host
        self.remote = remote
        self.remote_seq = (seq - 1) & MAX_UINT64
        self.current = current
        self.next = next_
        self.remote_key_seq = 0
        self.local_key_seq = 0
        if pairs is None:
            pairs = (BoxKeyPair.generate(), BoxKeyPair.generate(), BoxKeyPair.generate())
        self.recv, self.send, self.next_pair = pairs
        self.send_nonce = 0
        self.rotated: float | None = None
        now = host.now()
        self.last_active = now
        self.since = now
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.fix_shared(0, 0)

    def __repr__(self) -> str:
        seqs = f"local {self.local_key_seq} remote {self.remote_key_seq}"
        return f"<Session {self.remote[:4].hex()}… {seqs}>"

    # -- the spec's helpers ---------------------------------------------------------------

    def fix_shared(self, recv_nonce: int, send_nonce: int) -> None:
        """
        Recompute the four shared keys from C{current}/C{next} and C{recv}/C{send}, and set
        the nonces.

        @raise DecodeError: a remote key is unusable; nothing has been changed then.
        """
        recv_priv, send_priv = self.recv.private, self.send.private
        shared = (
            shared_key(self.current, recv_priv),
            shared_key(self.current, send_priv),
            shared_key(self.next, send_priv),
            shared_key(self.next, recv_priv),
        )
        self.recv_shared, self.send_shared, self.next_send_shared, self.next_recv_shared = shared
        self.next_send_nonce = self.next_recv_nonce = 0
        self.recv_nonce = recv_nonce
        self.send_nonce = send_nonce

    def rotate_local(self) -> None:
        """C{recv <- send; send <- next; next <- fresh; localKeySeq += 1}."""
        self.recv = self.send
        self.send = self.next_pair
        self.next_pair = BoxKeyPair.generate()
        self.local_key_seq = (self.local_key_seq + 1) & MAX_UINT64

    def make_init(self) -> SessionInit:
        """Our side as an init/ack: C{send.pub}, C{next.pub}, C{localKeySeq}, now."""
        return SessionInit(
            self.send.public, self.next_pair.public, self.local_key_seq, int(self.host.now())
        )

    def touch(self) -> None:
        """Reset the inactivity timer."""
        self.last_active = self.host.now()

    def expired(self) -> bool:
        """Whether the inactivity timer has run out."""
        return self.host.now() - self.last_active >= SESSION_TIMEOUT

    # -- inputs ---------------------------------------------------------------------------

    def update(self, init: SessionInit) -> None:
        """
        C{_handleUpdate}: adopt the remote's keys and time, rotate ours, keep C{sendNonce}.

        @raise DecodeError: the new remote keys are unusable; the session is unchanged.
        """
        old = (self.current, self.next, self.recv, self.send, self.next_pair, self.local_key_seq)
        self.current, self.next = init.current, init.next
        self.rotate_local()
        try:
            self.fix_shared(0, self.send_nonce)
        except DecodeError:
            self.current, self.next, self.recv, self.send, self.next_pair, self.local_key_seq = old
            raise
        self.remote_seq = init.seq
        self.remote_key_seq = init.key_seq
        self.touch()

    def handle_init(self, init: SessionInit) -> bool:
        """
        An init (or the first ack): update and answer with an ack when C{init.seq} is newer than
        the last accepted one (the same second is ignored by design).

        @return: whether the init was accepted.
        """
        if init.seq <= self.remote_seq:
            return False
        try:
            self.update(init)
        except DecodeError:
            return False
        self.host.send_init(self.remote, TYPE_ACK, self.make_init())
        return True

    def handle_ack(self, init: SessionInit) -> bool:
        """An ack on an existing session: update without replying, if newer."""
        if init.seq <= self.remote_seq:
            return False
        try:
            self.update(init)
        except DecodeError:
            return False
        return True

    def encrypt(self, payload: bytes) -> bytes:
        """
        The next SessionTraffic packet carrying C{payload}: advance C{sendNonce} (rotating if it
        wraps), box C{next.pub || payload} under C{sendShared}, reset the timer.
        """
        nonce = (self.send_nonce + 1) & MAX_UINT64
        if nonce == 0:
            self.rotate_local()
            self.fix_shared(0, 0)
            nonce = 0
        self.send_nonce = nonce
        packet = encode_traffic(
            self.local_key_seq,
            self.remote_key_seq,
            nonce,
            self.next_pair.public + payload,
            self.send_shared,
        )
        self.tx_bytes += len(payload)
        self.last_active = self.host.now()
        return packet

    def decrypt(self, data: bytes) -> bytes | None:
        """
        Receive one SessionTraffic packet.

        @return: the payload, or None when the packet is dropped (a replayed or stale nonce is
            dropped silently; keys we cannot match or a box that does not open make us send an
            init so the remote can resynchronise).
        @raise DecodeError: the header is malformed.
        """
        their_seq, our_seq, nonce, offset = decode_traffic_header(data)
        from_current = their_seq == self.remote_key_seq
        from_next = their_seq == ((self.remote_key_seq + 1) & MAX_UINT64)
        to_recv = ((our_seq + 1) & MAX_UINT64) == self.local_key_seq
        to_send = our_seq == self.local_key_seq
        box = data[offset:]
        # Which of our keys the sender used, and the nonce counter that guards it (§4.5).
        if from_current and to_recv:
            counter, shared, rotates = "recv_nonce", self.recv_shared, False
        elif from_next and to_send:
            counter, shared, rotates = "next_send_nonce", self.next_send_shared, True
        elif from_next and to_recv:
            counter, shared, rotates = "next_recv_nonce", self.next_recv_shared, True
        else:
            self._resync()
            return None
        if nonce <= getattr(self, counter):
            return None  # replayed or stale: dropped silently
        plain = open_box(box, nonce, shared)
        if plain is None:
            self._resync()
            return None
        setattr(self, counter, nonce)
        if rotates:
            self._maybe_rotate(plain[:32], nonce)
        payload = plain[32:]
        self.rx_bytes += len(payload)
        self.last_active = self.host.now()
        return payload

    def _resync(self) -> None:
        self.host.send_init(self.remote, TYPE_INIT, self.make_init())

    def _maybe_rotate(self, inner: bytes, nonce: int) -> None:
        now = self.host.now()
        if self.rotated is not None and now - self.rotated <= ROTATE_INTERVAL:
            return
        old = (self.current, self.next, self.recv, self.send, self.next_pair, self.local_key_seq)
        self.current, self.next = self.next, inner
        self.rotate_local()
        try:
            self.fix_shared(nonce, 0)
        except DecodeError:  # the inner key is unusable: keep the session as it was
            self.current, self.next, self.recv, self.send, self.next_pair, self.local_key_seq = old
            return
        self.remote_key_seq = (self.remote_key_seq + 1) & MAX_UINT64
        self.rotated = now
