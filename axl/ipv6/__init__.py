"""
IPv6 over the overlay (spec/yggdrasil-wire.md section 5.3): packet headers and checksums,
ICMPv6 Packet Too Big, and the ipv6rwc carriage between the userspace TCP and the sessions.
"""

from axl.ipv6.rwc import IPv6Layer

__all__ = ["IPv6Layer"]
