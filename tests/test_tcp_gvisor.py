# -*- test-case-name: tests.test_tcp_gvisor -*-
"""
Our stack against gVisor's side of the real capture (tcp-gvisor.jsonl of the shared vectors, found by tests/vectors.py):
its SYN gets a SYN-ACK honouring its options, and replaying its flow (ii) delivers the
200 000-byte message intact.
"""

from __future__ import annotations

import ipaddress
import json
import struct

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.crypto import key_for_addr
from axl.tcp.connection import TIME_WAIT
from axl.tcp.segment import ACK, RST, SYN, decode_segment, verify_checksum
from axl.tcp.stack import TCPStack
from axl.tcp.testing import FakeIPv6Layer
from tests.vectors import require

# The capture has no keys; the partial key behind T's address maps back to that address.
GVISOR_KEY = key_for_addr(ipaddress.IPv6Address("203:73b0:f65b:8317:75d2:d44a:f8bf:8308").packed)
R2_KEY = bytes(range(32, 64))


class Recorder:
    """An app that collects data and closes once a 4-byte-length frame is complete."""

    def __init__(self) -> None:
        self.conn = None
        self.data = bytearray()
        self.closed: Exception | None = None
        self.eof = False

    def tcp_established(self) -> None:
        pass

    close_at_eof = False

    def tcp_data(self, data: bytes) -> None:
        self.data += data
        if self.close_at_eof:
            return
        if len(self.data) >= 4 and len(self.data) >= 4 + struct.unpack_from("!I", self.data)[0]:
            self.conn.close()

    def tcp_eof(self) -> None:
        self.eof = True
        if self.close_at_eof:
            self.conn.close()

    def tcp_writable(self) -> None:
        pass

    def tcp_closed(self, reason: Exception) -> None:
        self.closed = reason


class GVisorTests(SynchronousTestCase):
    """gVisor's packets fed into a listener at R2's address."""

    def setUp(self) -> None:
        with open(require("tcp-gvisor.jsonl")) as f:
            self.records = [json.loads(line) for line in f]
        flow = [r for r in self.records if r["flow"] == "ii"]
        self.gvisor = [bytes.fromhex(r["hex"]) for r in flow if r["dir"] == "gvisor->kernel"]
        kernel_synack = next(r for r in flow if r["dir"] == "kernel->gvisor")
        self.kernel_isn = kernel_synack["summary"]["seq"]
        r2_addr = self.gvisor[0][24:40]
        self.clock = Clock()
        self.clock.advance(1000)
        self.layer = FakeIPv6Layer(R2_KEY, address=r2_addr, record=True)
        self.stack = TCPStack(self.layer, R2_KEY, self.clock, isn=lambda *a: self.kernel_isn)
        self.app = Recorder()

        def accept(conn):
            self.app.conn = conn
            return self.app

        self.stack.listen(7000, accept)

    def sent(self):
        return [decode_segment(p[40:]) for p in self.layer.sent]

    def test_syn_ack_honours_gvisor_syn(self) -> None:
        """
        gVisor's SYN (MSS 1220, SACK-permitted, TS, WS 8) gets a SYN-ACK acking it, echoing its
        TSval, with our MSS 65475, SACK-permitted and window scaling, in gVisor's own option
        layout, with a valid checksum.
        """
        syn = self.gvisor[0]
        self.layer.deliver(GVISOR_KEY, syn)
        (pkt,) = self.layer.sent
        self.assertTrue(verify_checksum(pkt[8:24], pkt[24:40], pkt[40:]))
        self.assertEqual(pkt[24:40], syn[8:24])
        s = decode_segment(pkt[40:])
        g = decode_segment(syn[40:])
        self.assertEqual(s.flags, SYN | ACK)
        self.assertEqual((s.sport, s.dport, s.ack), (7000, g.sport, g.seq + 1))
        self.assertEqual(s.mss, 65475)
        self.assertEqual(s.tsecr, g.tsval)
        self.assertIsNotNone(s.wscale)
        self.assertTrue(s.sack_perm)
        self.assertEqual([name for name, _ in s.options], [name for name, _ in g.options])
        conn = self.stack.connections[0]
        self.assertEqual(conn.smss, 1220 - 12)

    def test_replay_flow_ii(self) -> None:
        """
        Replaying gVisor's 170-odd packets of flow (ii) — including its GRO-merged segments and
        the duplicate it retransmitted — delivers the 4-byte length and 200 000 bytes intact;
        we close, gVisor's FIN and final ACK take us to TIME_WAIT, and no RST is ever sent.
        """
        for pkt in self.gvisor:
            self.layer.deliver(GVISOR_KEY, pkt)
            self.clock.advance(0.0005)
        self.assertEqual(len(self.app.data), 200_004)
        self.assertEqual(struct.unpack_from("!I", self.app.data)[0], 200_000)
        body = bytes(self.app.data[4:])
        expect = bytes((k + 200) % 251 for k in range(200_000))
        self.assertEqual(body, expect)
        self.assertTrue(self.app.eof)
        sent = self.sent()
        self.assertFalse([s for s in sent if s.flags & RST])
        self.assertEqual(self.stack.connections[0].state, TIME_WAIT)
        self.assertEqual(sent[-1].ack, decode_segment(self.gvisor[-2][40:]).seq + 1)
        self.clock.advance(120)
        self.assertEqual(self.stack.connections, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_replay_kernel_flow_i(self) -> None:
        """
        In gVisor's place (T's address, its ISN), replaying the Linux kernel's side of flow (i)
        delivers both frames (100 and 300 000 bytes) intact, then EOF; closing after it sends
        our FIN, which the kernel's last ACK acknowledges: the connection ends CLOSED, no RST.
        """
        flow = [r for r in self.records if r["flow"] == "i"]
        kernel = [bytes.fromhex(r["hex"]) for r in flow if r["dir"] == "kernel->gvisor"]
        gvisor_isn = next(r for r in flow if r["dir"] == "gvisor->kernel")["summary"]["seq"]
        t_key = GVISOR_KEY
        layer = FakeIPv6Layer(t_key, record=True)
        stack = TCPStack(layer, t_key, self.clock, isn=lambda *a: gvisor_isn, verify_checksums=True)
        app = Recorder()
        app.close_at_eof = True

        def accept(conn):
            app.conn = conn
            return app

        stack.listen(7000, accept)
        kernel_key = key_for_addr(kernel[0][8:24])
        for pkt in kernel:
            layer.deliver(kernel_key, pkt)
            self.clock.advance(0.0005)
        data = bytes(app.data)
        self.assertEqual(len(data), 4 + 100 + 4 + 300_000)
        self.assertEqual(data[:4], (100).to_bytes(4, "big"))
        self.assertEqual(data[4:104], bytes(k % 251 for k in range(100)))
        self.assertEqual(data[104:108], (300_000).to_bytes(4, "big"))
        self.assertEqual(data[108:], bytes((k + 100) % 251 for k in range(300_000)))
        self.assertTrue(app.eof)
        sent = [decode_segment(p[40:]) for p in layer.sent]
        self.assertFalse([s for s in sent if s.flags & RST])
        self.assertEqual(stack.connections, [])
        self.assertEqual(stack.stats["dropped"], 0)

    def test_rst_for_closed_port(self) -> None:
        """A SYN to a port nobody listens on gets RST,ACK with seq 0 and ack = SYN + 1, as gVisor does."""
        rec = next(r for r in self.records if r["flow"] == "iii" and r["dir"] == "kernel->gvisor")
        syn = bytearray.fromhex(rec["hex"])
        layer = FakeIPv6Layer(GVISOR_KEY, record=True)
        TCPStack(layer, GVISOR_KEY, self.clock, verify_checksums=True)
        layer.deliver(key_for_addr(bytes(syn[8:24])), bytes(syn))
        (pkt,) = layer.sent
        theirs = next(r for r in self.records if r["flow"] == "iii" and r["dir"] == "gvisor->kernel")
        self.assertEqual(pkt[40:], bytes.fromhex(theirs["hex"])[40:])
