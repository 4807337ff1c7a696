# -*- test-case-name: tests.test_api_docs -*-
"""
The API reference: pydoctor builds it from the epytext docstrings of C{axl/} with warnings as
errors (a broken C{L{...}} reference, bad epytext), and every public class, function and method
has a docstring (README, Development: the command).
"""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase
from zope.interface import implementedBy

ROOT = Path(__file__).resolve().parent.parent

#: The command that builds the reference (also in the README's development notes).
PYDOCTOR = ["-m", "pydoctor", "--docformat=epytext", "--warnings-as-errors", "--quiet"]

#: Packages whose public methods are not all documented yet: each owner documents theirs and
#: removes the entry (test_not_yet_documented_list_is_current fails once an entry is done).
NOT_YET_DOCUMENTED: tuple[str, ...] = ()


def public_modules() -> Iterator[str]:
    """Every module of axl whose dotted name has no part starting with C{_}."""
    for path in sorted((ROOT / "axl").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if not any(p.startswith("_") for p in parts):
            yield ".".join(parts)


def _inherits_doc(cls: type, name: str) -> bool:
    """Whether C{cls.name} implements something documented elsewhere (a base class, an interface)."""
    if any(name in vars(base) for base in cls.__mro__[1:]):
        return True
    return any(name in iface.names(all=True) for iface in implementedBy(cls).interfaces())


def undocumented(module_name: str) -> Iterator[str]:
    """The public classes, functions and methods defined in C{module_name} without a docstring."""
    module = importlib.import_module(module_name)
    if not inspect.getdoc(module):
        yield module_name
    for name, obj in list(vars(module).items()):
        if name.startswith("_") or getattr(obj, "__module__", None) != module_name:
            continue
        if inspect.isfunction(obj):
            if not obj.__doc__:
                yield f"{module_name}.{name}"
        elif inspect.isclass(obj):
            # A dataclass without a docstring gets a generated one: its signature.
            if not obj.__doc__ or obj.__doc__.startswith(f"{obj.__name__}("):
                yield f"{module_name}.{name}"
            for attr, member in list(vars(obj).items()):
                if attr.startswith("_"):
                    continue
                target = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                target = target.fget if isinstance(target, property) else target
                if not (inspect.isfunction(target) or inspect.ismethod(target)):
                    continue
                if not target.__doc__ and not _inherits_doc(obj, attr):
                    yield f"{module_name}.{name}.{attr}"


def _owned(module: str, packages: tuple[str, ...]) -> str | None:
    return next((p for p in packages if module == p or module.startswith(p + ".")), None)


class DocstringTests(SynchronousTestCase):
    def test_public_names_documented(self) -> None:
        """Every public module, class, function and method has a docstring (or implements a documented one)."""
        missing = [
            name
            for module in public_modules()
            if _owned(module, NOT_YET_DOCUMENTED) is None
            for name in undocumented(module)
        ]
        self.assertEqual(missing, [])

    def test_not_yet_documented_list_is_current(self) -> None:
        """An entry of NOT_YET_DOCUMENTED whose package is fully documented must be removed."""
        done = [
            package
            for package in NOT_YET_DOCUMENTED
            if not any(
                next(undocumented(m), None) is not None
                for m in public_modules()
                if _owned(m, (package,))
            )
        ]
        self.assertEqual(done, [])

    def test_finds_undocumented(self) -> None:
        """The check sees a missing method docstring and accepts interface implementations."""
        self.assertIn("tests.test_api_docs.Example.bare", list(undocumented(__name__)))
        self.assertNotIn("tests.test_api_docs.Example2.protocol_method", list(undocumented(__name__)))


class Example:
    """A class for L{DocstringTests.test_finds_undocumented}."""

    def bare(self) -> None:
        pass

    def documented(self) -> None:
        """Documented."""


class _Base:
    def protocol_method(self) -> None:
        """Documented in the base."""


class Example2(_Base):
    """Overrides a documented method without repeating its docstring."""

    def protocol_method(self) -> None:
        pass


class PydoctorTests(SynchronousTestCase):
    def test_builds_without_warnings(self) -> None:
        """pydoctor builds the API reference of axl with no warning (broken links, bad epytext)."""
        try:
            import pydoctor  # noqa: F401
        except ImportError:
            raise SkipTest("pydoctor is not installed (pip install -e '.[test]')") from None
        out = os.path.abspath(self.mktemp())
        result = subprocess.run(
            [sys.executable, *PYDOCTOR, f"--html-output={out}", "axl"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=600,
        )
        self.assertEqual((result.returncode, result.stdout + result.stderr), (0, ""))
        self.assertTrue((Path(out) / "axl.node.Node.html").exists())
