"""
Where the shared test vectors live: the transcripts of real yggdrasil v0.5.12 nodes, their keys
and the gVisor TCP capture (../shared/vectors beside the checkout, as CI lays it out).

C{VECTORS} is the first of C{$AXL_VECTORS}, C{<checkout>/../shared/vectors} and (in a git
worktree) C{<main checkout>/../shared/vectors} that exists; tests that need a file from it call
L{require} to skip cleanly where the vectors are absent. L{shared_candidates} is the one place
that knows where C{../shared} may be (the real yggdrasil binaries of L{tests.realnode} too).
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest

from axl.crypto import Identity

__all__ = ["VECTORS", "keys", "require", "shared_candidates"]

_CHECKOUT = Path(__file__).resolve().parent.parent


def _main_checkout(checkout: Path) -> Path | None:
    """The main checkout of a git worktree (its C{.git} is a file naming C{<main>/.git/worktrees/x})."""
    dotgit = checkout / ".git"
    if not dotgit.is_file():
        return None
    text = dotgit.read_text().strip()
    if not text.startswith("gitdir:"):
        return None
    gitdir = Path(text.split(":", 1)[1].strip())
    if gitdir.parent.name != "worktrees":
        return None
    return gitdir.parent.parent.parent


def shared_candidates(subdir: str, env: str) -> list[Path]:
    """
    Where C{../shared/<subdir>} may be, in order: C{$<env>}, beside the checkout, and beside the
    main checkout when this one is a git worktree.
    """
    candidates = [Path(os.environ[env])] if os.environ.get(env) else []
    candidates.append(_CHECKOUT.parent / "shared" / subdir)
    main = _main_checkout(_CHECKOUT)
    if main is not None:
        candidates.append(main.parent / "shared" / subdir)
    return candidates


def _find() -> Path:
    for candidate in shared_candidates("vectors", "AXL_VECTORS"):
        if (candidate / "keys.json").exists():
            return candidate
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
