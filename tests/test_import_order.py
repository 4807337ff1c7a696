# -*- test-case-name: tests.test_import_order -*-
"""
The layering of C{axl/} as a test: every C{import} in every module (at module level, inside
functions, and under C{TYPE_CHECKING} alike) is read with C{ast} and checked against L{LAYERS}.

 - a module may import modules of its own level and of the levels below, never above;
 - packages in L{BESIDE} (separate programs that talk to the node over HTTP) may import only
   the base level and themselves, and no layer imports them;
 - no two modules import each other, directly or through others (an import cycle), except the
   cycles listed in L{KNOWN_CYCLES}, which are on their way out.

To place a new package, add its name to the right level of L{LAYERS} (or to L{BESIDE}); a module
that belongs to no level fails L{LayerTableTests.test_every_module_placed}.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent / "axl"

#: The levels, bottom to top. A name stands for that module and everything under it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("axl", "axl.errors", "axl.encoding", "axl.interfaces", "axl.config", "axl.listening",
              "axl.forward.spec", "axl.ratelimit", "axl.logs")),  # fmt: skip
    ("crypto", ("axl.crypto", "axl.identity", "axl.overlay_address")),
    ("link", ("axl.link",)),
    ("mesh", ("axl.mesh",)),
    ("session", ("axl.session",)),
    ("ipv6", ("axl.ipv6",)),
    ("tcp", ("axl.tcp",)),
    ("streams", ("axl.streams", "axl.forward")),
    ("bridge", ("axl.bridge", "axl.admin", "axl.metrics")),
    ("service", ("axl.service", "axl.node", "axl.tap", "axl.cli", "axl.aio", "axl.worstcase")),
]

#: Separate programs beside the node (they reach it over HTTP): they may import the base level
#: and themselves only, and no layer imports them.
BESIDE: tuple[str, ...] = ("axl.integrations", "axl.client")

#: Import cycles that exist today and are being removed, one frozenset of modules each. The
#: owner of the package removes the cycle and its entry together; an entry whose cycle is gone
#: fails L{CycleTests.test_known_cycles_still_exist}, so the list only shrinks.
KNOWN_CYCLES: list[frozenset[str]] = [
]


def module_name(path: Path) -> str:
    """The dotted name of the module in C{path} (a package's C{__init__} is the package)."""
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    """Every module under C{axl/}, by dotted name."""
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The C{axl} modules that module C{name} (in C{path}) imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # "from axl.pkg import submodule" imports the submodule
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules it imports, for all of C{axl/}."""
    known = all_modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def _owner(module: str, names: tuple[str, ...]) -> str | None:
    """The longest name of C{names} that is C{module} or a package containing it."""
    best = None
    for n in names:
        if (module == n or module.startswith(n + ".")) and (best is None or len(n) > len(best)):
            best = n
    return best


def level_of(module: str) -> int | None:
    """The index in L{LAYERS} of C{module}'s level; None if it is beside the layers or unplaced."""
    best: tuple[int, int] | None = None  # (length of the matching name, level)
    for index, (_, names) in enumerate(LAYERS):
        owner = _owner(module, names)
        if owner is not None and (best is None or len(owner) > best[0]):
            best = (len(owner), index)
    beside = _owner(module, BESIDE)
    if beside is not None and (best is None or len(beside) > best[0]):
        return None
    return best[1] if best is not None else None


def is_beside(module: str) -> bool:
    """Whether C{module} belongs to a package of L{BESIDE}."""
    return level_of(module) is None and _owner(module, BESIDE) is not None


def layering_violations(graph: dict[str, set[str]]) -> list[str]:
    """One line per import that goes against L{LAYERS} / L{BESIDE}."""
    problems = []
    for module, deps in sorted(graph.items()):
        for dep in sorted(deps):
            if is_beside(module):
                if not (level_of(dep) == 0 or _owner(dep, BESIDE) == _owner(module, BESIDE)):
                    problems.append(f"{module} (beside the node) imports {dep}")
                continue
            if is_beside(dep):
                problems.append(f"{module} imports {dep}, a program beside the node")
                continue
            mine, theirs = level_of(module), level_of(dep)
            if mine is None or theirs is None:
                continue  # unplaced: reported by test_every_module_placed
            if theirs > mine:
                problems.append(
                    f"{module} ({LAYERS[mine][0]}) imports {dep} ({LAYERS[theirs][0]}), an upper layer"
                )
    return problems


def strongly_connected(graph: dict[str, set[str]]) -> Iterator[frozenset[str]]:
    """The import cycles of C{graph}: its strongly connected components of two or more modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; axl is small enough for recursion
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return iter(found)


def describe_cycle(component: frozenset[str]) -> str:
    """C{"package: a, b"}: the package (or packages) of a cycle and its modules."""
    packages = sorted({m.rpartition(".")[0] or m for m in component})
    return f"{', '.join(packages)}: {' <-> '.join(sorted(component))}"


class ImportGraphTests(SynchronousTestCase):
    """The import reader itself."""

    def test_reads_every_kind_of_import(self) -> None:
        """Absolute, relative, function-level and submodule imports are all edges."""
        graph = import_graph()
        self.assertIn("axl.errors", graph["axl.config"])
        self.assertIn("axl.link.core", graph["axl.link"])  # a package re-exporting
        self.assertIn("axl.mesh.router", graph["axl.mesh"])
        self.assertIn("axl.ipv6.stack", graph["axl.service"])  # a function-level import

    def test_finds_a_cycle(self) -> None:
        """A two-module cycle and a three-module cycle are found; a chain is not a cycle."""
        graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
        self.assertEqual(
            set(strongly_connected(graph)), {frozenset("ab"), frozenset("cde")}
        )

    def test_upward_import_is_reported(self) -> None:
        """An import from a lower layer to an upper one is a violation; downward is fine."""
        graph = {"axl.tcp.stack": {"axl.streams.sender", "axl.ipv6.rwc"}}
        self.assertEqual(
            layering_violations(graph),
            ["axl.tcp.stack (tcp) imports axl.streams.sender (streams), an upper layer"],
        )

    def test_beside_rules(self) -> None:
        """Integrations import only the base level; layers never import integrations."""
        graph = {
            "axl.integrations.x": {"axl.errors", "axl.integrations.y", "axl.streams.sender"},
            "axl.service": {"axl.integrations.x"},
        }
        self.assertEqual(
            layering_violations(graph),
            [
                "axl.integrations.x (beside the node) imports axl.streams.sender",
                "axl.service imports axl.integrations.x, a program beside the node",
            ],
        )


class LayerTableTests(SynchronousTestCase):
    """Every module of axl has a place."""

    def test_every_module_placed(self) -> None:
        """Each module belongs to a level of LAYERS or to BESIDE (add new packages there)."""
        unplaced = [m for m in all_modules() if level_of(m) is None and not is_beside(m)]
        self.assertEqual(unplaced, [])

    def test_levels_in_order(self) -> None:
        """The levels are the issue's order: crypto, link, mesh, session, ipv6, tcp, streams, bridge, service."""
        self.assertEqual(
            [name for name, _ in LAYERS],
            ["base", "crypto", "link", "mesh", "session", "ipv6", "tcp", "streams", "bridge", "service"],
        )


class LayeringTests(SynchronousTestCase):
    """No lower layer imports an upper one."""

    def test_no_upward_imports(self) -> None:
        """Every import in axl/ points to the same level or below."""
        self.assertEqual(layering_violations(import_graph()), [])


class CycleTests(SynchronousTestCase):
    """No import cycles, except the known ones being removed."""

    def test_no_new_cycles(self) -> None:
        """Every import cycle in axl/ is one of KNOWN_CYCLES (reported per package)."""
        cycles = [c for c in strongly_connected(import_graph()) if c not in KNOWN_CYCLES]
        self.assertEqual(sorted(describe_cycle(c) for c in cycles), [])

    def test_known_cycles_still_exist(self) -> None:
        """An entry of KNOWN_CYCLES whose cycle is gone must be removed from the list."""
        cycles = set(strongly_connected(import_graph()))
        self.assertEqual([describe_cycle(c) for c in KNOWN_CYCLES if c not in cycles], [])
