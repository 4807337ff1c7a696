"""
The admin socket (C{AdminListen}), as Yggdrasil's C{yggdrasilctl} speaks it
(spec/yggdrasil-extras.md section 1): the sans-IO codec, the v0.5.14 commands, and the
Twisted protocol and listening service.
"""

from axl.admin.codec import AdminError, AdminRequest, go_json
from axl.admin.commands import COMMANDS, AdminHandler, AdminSource, RemoteTimeout
from axl.admin.address import parse_admin_listen
from axl.admin.service import AdminFactory, AdminListenService, AdminProtocol

__all__ = [
    "COMMANDS",
    "AdminError",
    "AdminFactory",
    "AdminHandler",
    "AdminListenService",
    "AdminProtocol",
    "AdminRequest",
    "AdminSource",
    "RemoteTimeout",
    "go_json",
    "parse_admin_listen",
]
