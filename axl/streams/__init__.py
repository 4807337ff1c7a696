"""
The node's application layer: the port-7000 message protocol, the stream multiplexer (MCP, A2A
and plugin streams) and the C{/recv} queue.
"""
