# -*- test-case-name: tests.test_link_tls -*-
"""
TLS for peering (spec/yggdrasil-wire.md section 2.3).

Each node presents a self-signed X.509 certificate made from its ed25519 node key (serial 1,
CN = hex public key, valid until 9999-12-31T23:59:59Z). Nothing is verified on either side: the
peer's identity comes from the meta handshake that follows. TLS 1.3 only, no ALPN, no client
certificate requested. As a client we send SNI only for host names (never for IP literals).
"""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from zope.interface import implementer

from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.protocols.tls import TLSMemoryBIOProtocol

from axl.crypto import Identity

__all__ = ["NOT_AFTER", "make_certificate", "LinkTLS", "sni_for_host"]

NOT_AFTER = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc)


def make_certificate(
    identity: Identity, now: datetime.datetime | None = None
) -> x509.Certificate:
    """The node's self-signed certificate, as Yggdrasil makes it from the same key."""
    key = Ed25519PrivateKey.from_private_bytes(identity.seed)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.public_key.hex())])
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now.replace(microsecond=0))
        .not_valid_after(NOT_AFTER)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    return builder.sign(key, algorithm=None)


def sni_for_host(host: str) -> str | None:
    """The SNI Go would send for a URI host: the host name itself, nothing for IP literals."""
    if not host:
        return None
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    return None


def _no_verify(conn: SSL.Connection, cert: object, errno: int, depth: int, ok: int) -> bool:
    return True


def _make_context(
    identity: Identity, certificate: x509.Certificate, method: int,
    min_version: int = SSL.TLS1_3_VERSION,
) -> SSL.Context:  # fmt: skip
    ctx = SSL.Context(method)
    ctx.set_min_proto_version(min_version)
    ctx.set_options(SSL.OP_NO_COMPRESSION)
    ctx.use_privatekey(Ed25519PrivateKey.from_private_bytes(identity.seed))
    ctx.use_certificate(certificate)
    ctx.check_privatekey()
    ctx.set_verify(SSL.VERIFY_NONE, _no_verify)
    return ctx


class LinkTLS:
    """
    The node's TLS configuration: one certificate and one context per side, built once.

    @ivar certificate: the self-signed certificate we present.
    @ivar private_key: its key (the node key), for QUIC's TLS (aioquic takes the key object).
    """

    def __init__(self, identity: Identity, now: datetime.datetime | None = None) -> None:
        self.certificate = make_certificate(identity, now)
        self.private_key = Ed25519PrivateKey.from_private_bytes(identity.seed)
        self._client_ctx = _make_context(identity, self.certificate, SSL.TLS_CLIENT_METHOD)
        self._server_ctx = _make_context(identity, self.certificate, SSL.TLS_SERVER_METHOD)
        # wss:// and sockstls:// offer TLS 1.2 too: they may end at a reverse proxy (extras 4.4, 5).
        self._any_tls_client_ctx = _make_context(
            identity, self.certificate, SSL.TLS_CLIENT_METHOD, SSL.TLS1_2_VERSION
        )

    def client_creator(
        self, sni: str | None = None, allow_tls12: bool = False
    ) -> IOpenSSLClientConnectionCreator:
        """
        Connection creator for dialling; C{sni} is sent as the TLS server name if given.

        @param allow_tls12: offer TLS 1.2 as well as 1.3 (wss and sockstls dials).
        """
        return _ClientCreator(self._any_tls_client_ctx if allow_tls12 else self._client_ctx, sni)

    def server_creator(self) -> IOpenSSLServerConnectionCreator:
        """Connection creator for accepting."""
        return _ServerCreator(self._server_ctx)


@implementer(IOpenSSLClientConnectionCreator)
class _ClientCreator:
    def __init__(self, ctx: SSL.Context, sni: str | None) -> None:
        self._ctx = ctx
        self._sni = sni.encode("idna") if sni else None

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        conn = SSL.Connection(self._ctx, None)
        conn.set_app_data(tlsProtocol)
        if self._sni is not None:
            conn.set_tlsext_host_name(self._sni)
        conn.set_connect_state()
        return conn


@implementer(IOpenSSLServerConnectionCreator)
class _ServerCreator:
    def __init__(self, ctx: SSL.Context) -> None:
        self._ctx = ctx

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        conn = SSL.Connection(self._ctx, None)
        conn.set_app_data(tlsProtocol)
        conn.set_accept_state()
        return conn
