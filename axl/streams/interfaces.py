# -*- test-case-name: tests.test_streams_registry -*-
"""
The extension points of the application layer.

A stream claims some inbound port-7000 messages (JSON envelopes) and answers them. Third parties
add one by dropping a module into C{twisted/plugins/} that provides an L{IStreamFactory}; the node
finds it with C{twisted.plugin.getPlugins(IStreamFactory, twisted.plugins)}.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

# Re-exported: the overlay TCP provides it, the streams use it.
from axl.interfaces import IAcknowledgingTransport

__all__ = ["IAcknowledgingTransport", "IStream", "IStreamFactory"]


class IStream(Interface):
    """One kind of request carried in a JSON envelope (e.g. MCP, A2A)."""

    name = Attribute("Registry key and allow-list key, e.g. 'mcp', 'a2a'.")

    def matches(envelope: dict) -> bool:  # type: ignore[type-arg]
        """Whether this stream handles C{envelope} (a decoded JSON object)."""

    def handle(envelope: dict, peer_key: bytes) -> object:  # type: ignore[type-arg]
        """
        Serve C{envelope}, sent by the node with the full public key C{peer_key}.

        @return: a Deferred firing with the reply payload (bytes, written back as one frame on
            the same connection) or None for no reply. A failure is turned into
            L{error_reply} by the registry.
        """

    def error_reply(envelope: dict, message: str) -> object:  # type: ignore[type-arg]
        """
        The reply payload (bytes) telling the caller that C{envelope} could not be served
        (C{message} says why), or None if this stream never replies.
        """


class IStreamFactory(Interface):
    """A plugin that makes a stream for a node (found with C{twisted.plugin.getPlugins})."""

    name = Attribute("The stream's name.")

    def make_stream(config: object, http: object) -> object:
        """
        An L{IStream} for the node configured by C{config} (its L{axl.config.NodeConfig}), or
        None to stay disabled. C{http} is a C{treq.client.HTTPClient} to use for HTTP.
        """
