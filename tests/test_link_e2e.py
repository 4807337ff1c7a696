# -*- test-case-name: tests.test_link_e2e -*-
"""
End-to-end peering: two real C{twistd -n axl} nodes on 127.0.0.1, one listening on C{tls://},
the other peering to it. They must show each other C{up: true} in C{/topology.peers} and come back
up by themselves after the listener restarts. Every process is killed in cleanup; every wait is
bounded.
"""

from __future__ import annotations

import signal
import time
import urllib.error
from collections.abc import Callable
from typing import Any

from tests.test_e2e_twistd import Twistd, TwistdTestCase, free_port, get_topology
from tests.vectors import keys


WAIT = 30.0



class PeeringE2ETests(TwistdTestCase):
    def poll(self, what: str, check: Callable[[], bool], procs: list[Twistd]) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        logs = "\n\n".join(p.out.decode("utf-8", "replace") for p in procs)
        self.fail(f"timed out waiting for {what}; logs:\n{logs}")

    def peers(self, port: int) -> list[dict[str, Any]]:
        return get_topology(port)["peers"]  # type: ignore[no-any-return]

    def test_tls_peering_and_reconnect(self) -> None:
        """
        Hub (key A) listens on tls://127.0.0.1:P, spoke (key B) peers to it: each lists the other
        up with its key and the right direction; after the hub is stopped the spoke shows the
        peer down, and once the hub is started again both are up again without intervention.
        """
        a, b = keys()["A"], keys()["B"]
        listen_port = free_port()
        hub_uri = f"tls://127.0.0.1:{listen_port}"
        hub_config = {"PrivateKey": a["private_key_64"], "Listen": [hub_uri]}
        hub, hub_api = self.start("hub", hub_config)
        spoke, spoke_api = self.start(
            "spoke",
            {"PrivateKey": b["private_key_64"], "Peers": [hub_uri], "peer_max_backoff_secs": 2},
        )
        procs = [hub, spoke]

        def both_up() -> bool:
            out, inb = self.peers(spoke_api), self.peers(hub_api)
            return (
                len(out) == 1 and out[0]["up"] and len(inb) == 1 and inb[0]["up"]
            )

        self.poll("the first link", both_up, procs)
        [out], [inb] = self.peers(spoke_api), self.peers(hub_api)
        self.assertEqual((out["uri"], out["inbound"], out["public_key"]),
                         (hub_uri, False, a["public_key"]))  # fmt: skip
        self.assertEqual((inb["inbound"], inb["public_key"]), (True, b["public_key"]))
        self.assertRegex(inb["uri"], r"^tls://127\.0\.0\.1:\d+$")

        self.assertEqual(hub.stop(signal.SIGTERM), 0)
        self.poll("the spoke to see the hub down",
                  lambda: not self.peers(spoke_api)[0]["up"], procs)  # fmt: skip
        self.assertEqual(self.peers(spoke_api)[0]["public_key"], "")

        hub2, hub_api = self.start("hub", hub_config)
        procs = [hub2, spoke]
        self.poll("the link to come back", both_up, procs)
        self.assertEqual(self.peers(spoke_api)[0]["public_key"], a["public_key"])
        spoke.wait_for(r"peer tls://127\.0\.0\.1:\d+ unavailable \(.*\); redial 1 in", timeout=5)
        for proc in (hub2, spoke):
            self.assertEqual(proc.stop(signal.SIGTERM), 0)
            self.assertNotIn(b"Traceback", proc.out + proc.err)

    def test_foreign_tls_client(self) -> None:
        """
        A peer written with Python's ssl module (TLS 1.3, no verification, as Go dials) gets
        the node's meta (key A, signature valid), and after sending a SigReq frame it receives
        some frame back within 2 s (a keepalive or the router's SigRes), as spec 2.7 requires.
        """
        import socket
        import ssl

        from axl.crypto import Identity
        from axl.link.framing import FrameDecoder, encode_frame
        from axl.link.meta import META_SIZE, decode_meta, encode_meta

        a = keys()["A"]
        listen_port = free_port()
        hub, _ = self.start(
            "hub", {"PrivateKey": a["private_key_64"], "Listen": [f"tls://127.0.0.1:{listen_port}"]}
        )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        raw = socket.create_connection(("127.0.0.1", listen_port), timeout=10)
        with ctx.wrap_socket(raw) as tls:
            self.assertEqual(tls.version(), "TLSv1.3")
            self.assertIsNone(tls.selected_alpn_protocol())
            cert = tls.getpeercert(binary_form=True)
            self.assertIn(bytes.fromhex(a["public_key"]), cert)
            tls.sendall(encode_meta(Identity(bytes([0x42]) * 32)))
            data = b""
            while len(data) < META_SIZE:
                chunk = tls.recv(4096)
                self.assertTrue(chunk, "the node closed the link during the handshake")
                data += chunk
            self.assertEqual(decode_meta(data[:META_SIZE]).public_key, bytes.fromhex(a["public_key"]))
            tls.sendall(encode_frame(2, bytes.fromhex("07ef9bafcdf8acd19101")))
            tls.settimeout(2.0)
            decoder = FrameDecoder()
            frames = decoder.feed(data[META_SIZE:])
            # The node's router sends its own SigReq and Bloom on link up; our SigReq must be
            # answered with a SigRes (type 3) on the same link.
            while 3 not in [frame[0] for frame in frames]:
                chunk = tls.recv(4096)
                self.assertTrue(chunk, "the node closed the link")
                frames += decoder.feed(chunk)
        self.assertEqual(hub.stop(signal.SIGTERM), 0)
        self.assertNotIn(b"Traceback", hub.out + hub.err)
