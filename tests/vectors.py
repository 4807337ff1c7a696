"""
Where the shared test vectors live: the transcripts of real yggdrasil v0.5.12 nodes, their keys
and the gVisor TCP capture (../shared/vectors beside the checkout, as CI lays it out).

C{VECTORS} is the first of C{$AXL_VECTORS}, C{<checkout>/../shared/vectors} and
C{/work/shared/vectors} that exists; tests that need a file from it call L{require} to skip
cleanly where the vectors are absent.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest

from axl.crypto import Identity

__all__ = ["VECTORS", "keys", "require"]

_CHECKOUT = Path(__file__).resolve().parent.parent


def _find() -> Path:
    candidates = [os.environ.get("AXL_VECTORS"), _CHECKOUT.parent / "shared" / "vectors", "/work/shared/vectors"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "keys.json").exists():
            return Path(candidate)
    return _CHECKOUT.parent / "shared" / "vectors"


VECTORS = _find()


def require(name: str) -> Path:
    """The path of vector file C{name}; skips the calling test when it is not there."""
    path = VECTORS / name
    if not path.exists():
        raise SkipTest(f"test vectors not found ({path}); set AXL_VECTORS")
    return path


@cache
def keys() -> dict[str, Any]:
    """
    keys.json: the transcript nodes' seeds, keys and derived values, by node name (from the
    copy in tests/data, so tests that only need the keys never skip).
    """
    with open(_CHECKOUT / "tests" / "data" / "keys.json") as f:
        return json.load(f)  # type: ignore[no-any-return]


def identity(name: str) -> Identity:
    """The identity of transcript node C{name} ("A", "B" or "C")."""
    return Identity(bytes.fromhex(keys()[name]["seed"]))
