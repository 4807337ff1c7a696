# -*- test-case-name: tests.test_tap -*-
"""
The twistd plugin: C{twistd -n axl --config node-config.json}. Kept cheap to import (twistd
imports every plugin to list them); the real code is in L{axl.tap}.
"""

from __future__ import annotations

from twisted.application.service import ServiceMaker

axl = ServiceMaker(
    "axl",
    "axl.tap",
    "A Yggdrasil v0.5 mesh node with AXL's local HTTP bridge.",
    "axl",
)
