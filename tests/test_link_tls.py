# -*- test-case-name: tests.test_link_tls -*-
"""
Tests for L{axl.link.tls}: the self-signed certificate and TLS options (spec 2.3).
"""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from axl.link.core import LinkState
from axl.link.testing import connect_cores, identity, make_core
from axl.link.tls import NOT_AFTER, LinkTLS, make_certificate, sni_for_host

NOW = datetime.datetime(2026, 11, 25, 12, 0, 0, tzinfo=datetime.timezone.utc)


class CertificateTests(SynchronousTestCase):
    def test_fields(self) -> None:
        """Serial 1, CN = issuer = hex key, validity now..9999-12-31T23:59:59Z, node key inside."""
        ident = identity(7)
        cert = make_certificate(ident, NOW)
        self.assertEqual(cert.serial_number, 1)
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        self.assertEqual(cn, ident.public_key.hex())
        self.assertEqual(cert.issuer, cert.subject)
        self.assertEqual(cert.not_valid_before_utc, NOW)
        self.assertEqual(cert.not_valid_after_utc, NOT_AFTER)
        self.assertEqual(NOT_AFTER.isoformat(), "9999-12-31T23:59:59+00:00")
        pub = cert.public_key()
        self.assertIsInstance(pub, Ed25519PublicKey)
        self.assertEqual(pub.public_bytes_raw(), ident.public_key)

    def test_extensions(self) -> None:
        """KeyUsage DigitalSignature|KeyEncipherment, ExtKeyUsage ServerAuth, not a CA."""
        cert = make_certificate(identity(7), NOW)
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        self.assertTrue(usage.digital_signature and usage.key_encipherment)
        self.assertFalse(usage.key_cert_sign)
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(list(eku), [ExtendedKeyUsageOID.SERVER_AUTH])
        self.assertFalse(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)

    def test_self_signed(self) -> None:
        """The certificate verifies with its own key."""
        cert = make_certificate(identity(7), NOW)
        cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes)


class SNITests(SynchronousTestCase):
    def test_sni_rule(self) -> None:
        """Host names are sent as SNI; IP literals (v4, v6, zoned) and "" are not."""
        self.assertEqual(sni_for_host("node.example.org"), "node.example.org")
        for host in ("1.2.3.4", "::1", "fe80::1%eth0", ""):
            with self.subTest(host=host):
                self.assertIsNone(sni_for_host(host))

    def test_sni_on_the_wire(self) -> None:
        """The client's SNI reaches the server; the server presents the node certificate."""
        clock = Clock()
        a, b = identity(1), identity(2)
        link = connect_cores(make_core(a, clock), make_core(b, clock, inbound=True), clock,
                             client_identity=a, server_identity=b)  # fmt: skip
        link.pump.flush()
        self.assertIs(link.client.state, LinkState.UP)
        server_conn = link.server_proto.transport._tlsConnection
        client_conn = link.client_proto.transport._tlsConnection
        self.assertEqual(server_conn.get_servername(), b"peer.example")
        peer_cert = client_conn.get_peer_certificate(as_cryptography=True)
        self.assertEqual(peer_cert.public_key().public_bytes_raw(), b.public_key)

    def test_creators(self) -> None:
        """A LinkTLS gives client connections in connect state and server ones in accept state."""
        tls = LinkTLS(identity(3), NOW)
        self.assertEqual(tls.certificate.serial_number, 1)
        conn = tls.client_creator(None).clientConnectionForTLS(None)
        self.assertIsNone(conn.get_servername())
        self.assertIsNotNone(tls.server_creator().serverConnectionForTLS(None))
