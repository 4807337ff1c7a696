"""
The ironwood encrypted layer and the Yggdrasil core above it (spec/yggdrasil-wire.md sections 4
and 5.1-5.2): per-remote-key sessions, the session-type byte and the proto messages.
"""

from axl.session.codec import SessionInit
from axl.session.manager import SessionManager
from axl.session.proto import CORE_MTU, Core, ProtoHandler, ProtoTimeout, node_info_json

__all__ = [
    "SessionInit",
    "SessionManager",
    "Core",
    "ProtoHandler",
    "ProtoTimeout",
    "CORE_MTU",
    "node_info_json",
]
