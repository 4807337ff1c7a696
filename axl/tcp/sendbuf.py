# -*- test-case-name: tests.test_tcp_parts -*-
"""
The send buffer of one TCP connection (RFC 9293 section 3.3.1, "send sequence space"): the bytes
the application wrote that the peer has not acknowledged yet, the sequence number of the first,
and whether a FIN follows them. The connection segments out of it; ACKs trim its front.
"""

from __future__ import annotations

from axl.tcp.seq import MASK, seq_diff

__all__ = ["SendBuffer"]


class SendBuffer:
    """
    Unacknowledged application data.

    @ivar data: the bytes, the first at sequence number C{seq}. The connection's segmentation
        loop reads it directly (no copy: a C{memoryview} slice per segment).
    @ivar seq: sequence number of C{data[0]} (SND.UNA once the SYN is acknowledged).
    @ivar fin_queued: the application closed; a FIN follows the data.
    @ivar written: bytes the application has written, ever.
    @ivar acked: of which the peer has acknowledged.
    """

    __slots__ = ("acked", "data", "fin_queued", "seq", "written")

    def __init__(self, seq: int) -> None:
        self.data = bytearray()
        self.seq = seq & MASK
        self.fin_queued = False
        self.written = 0
        self.acked = 0

    def __len__(self) -> int:
        return len(self.data)

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Queue C{data} behind what is buffered."""
        if self.fin_queued:
            raise RuntimeError("send after close")
        self.data += data
        self.written += len(data)

    def offset(self, seq: int) -> int:
        """Index into C{data} of sequence number C{seq} (negative if already acknowledged)."""
        return seq_diff(seq, self.seq)

    def view(self, seq: int, n: int) -> memoryview:
        """C{n} bytes from sequence number C{seq}, without copying."""
        off = seq_diff(seq, self.seq)
        return memoryview(self.data)[off : off + n]

    def acknowledge(self, ack: int) -> tuple[int, bool]:
        """
        The peer acknowledged everything below C{ack}: drop it. Returns the number of data bytes
        newly acknowledged and whether the ACK also covers our FIN.
        """
        n = seq_diff(ack, self.seq)
        data = self.data
        fin_acked = self.fin_queued and n > len(data)
        if n <= 0:
            return 0, fin_acked
        if n > len(data):
            n = len(data)                              # the rest acknowledged the FIN
        del data[:n]
        self.seq = (self.seq + n) & MASK
        self.acked += n
        return n, fin_acked

    def clear(self) -> None:
        """Drop everything (the connection is gone)."""
        self.data = bytearray()
