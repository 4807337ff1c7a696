"""
The link layer: TLS/TCP peering with Yggdrasil v0.5 nodes (spec/yggdrasil-wire.md section 2).

C{meta} (the version handshake), C{framing} (uvarint-length ironwood frames), C{core} (the sans-IO
link: handshake, keepalive, timeouts), C{protocol} (its Twisted adapter), C{tls} (certificate and
TLS options), C{uri} (peer and listen URIs), C{endpoints} (URIs to Twisted endpoints) and
C{peers} (the peer manager: reconnecting clients, listeners, the peer table).
"""

from axl.link.core import LinkCore, LinkState, NullLinkHandler
from axl.link.framing import PEER_MAX_MESSAGE_SIZE, FrameDecoder, encode_frame
from axl.link.meta import HandshakeError, Meta, decode_meta, encode_meta
from axl.link.uri import PeerURI, parse_listen_uri, parse_peer_uri

__all__ = [
    "LinkCore",
    "LinkState",
    "NullLinkHandler",
    "PEER_MAX_MESSAGE_SIZE",
    "FrameDecoder",
    "encode_frame",
    "HandshakeError",
    "Meta",
    "decode_meta",
    "encode_meta",
    "PeerURI",
    "parse_listen_uri",
    "parse_peer_uri",
]
