"""The floors of the source tree, checked by reading its imports (nothing is imported).

Floors, bottom up:

    0  verifiers, policies     answer checking; the policy, datasets, settings
    1  rewards                 scorers and aggregators
    2  search                  strategies, the run loop, pools
    3  eval                    sweeps, reports, benches
       entry points            argument parsing, servers, the CLI: on top of everything

Entry points are a kind of module, not a folder: the top-level `cli.py`, every module
named `cli.py`, `*_cli.py` or `server.py`, and every module that `cli.py`'s COMMANDS
table names as a subcommand. The rules:

- no module imports a package on a floor above its own (an entry point inside a
  package stands on that package's floor; the top-level cli.py stands above all);
- a library module (any other) imports no entry point: entry points may share their
  argument definitions with each other, libraries never lean on them;
- no import cycles.

Imports inside functions count as much as those at the top: a lazy import is still a
dependency, it only moves the moment it is paid for.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOORS = {"verifiers": 0, "policies": 0, "rewards": 1, "search": 2, "eval": 3}
TOP = max(FLOORS.values()) + 1  # the floor of the top-level cli.py
ENTRY_NAMES = ("cli", "server")  # module names; plus any name ending in "_cli"


def _module_files() -> dict[str, Path]:
    """Dotted module name -> file, for the packages and the top-level cli.py."""
    mods = {"cli": ROOT / "cli.py"}
    for pkg in FLOORS:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


MODULES = _module_files()


def _commands() -> set[str]:
    """The modules that cli.py's COMMANDS table names (its subcommand handlers)."""
    tree = ast.parse(MODULES["cli"].read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "COMMANDS" for t in node.targets):
            table = ast.literal_eval(node.value)
            return {module for module, _help in table.values()}
    raise AssertionError("cli.py has no COMMANDS table; update tests/test_architecture.py")


COMMAND_MODULES = _commands()


def is_entry(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return module in COMMAND_MODULES or last in ENTRY_NAMES or last.endswith("_cli")


def floor(module: str) -> int:
    return TOP if module == "cli" else FLOORS[module.split(".", 1)[0]]


def _known(name: str) -> str | None:
    """The longest prefix of a dotted name that is one of our modules (None: outside)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the module's package, one level up per extra dot
            pkg = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
            pkg = pkg[: len(pkg) - (node.level - 1)]
            base = ".".join([*pkg, base] if base else pkg)
        # `from search import common` imports the module search.common
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    return [t for t in map(_known, names) if t is not None and t != module]


def import_edges() -> dict[tuple[str, str], int]:
    """(importer, imported) -> first line, over every import statement of every module."""
    edges: dict[tuple[str, str], int] = {}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(module, node):
                    edges.setdefault((module, target), node.lineno)
    return edges


EDGES = import_edges()


def _where(a: str, b: str) -> str:
    return f"{MODULES[a].relative_to(ROOT)}:{EDGES[a, b]}: {a} -> {b}"


def test_the_walk_sees_the_tree():
    # a walk that found nothing would pass every check below
    assert {"cli", "search.cli", "rewards.server", "search.server", "eval.sweep_cli"} <= {
        m for m in MODULES if is_entry(m)}
    assert {"verifiers", "policies.vllm_policy", "rewards.aggregators", "search.runner", "eval.sweep"} <= {
        m for m in MODULES if not is_entry(m)}
    assert COMMAND_MODULES <= set(MODULES), f"cli.py COMMANDS names modules that do not exist: " \
                                            f"{sorted(COMMAND_MODULES - set(MODULES))}"
    assert len(EDGES) > 100


def test_no_module_imports_a_higher_floor():
    bad = [f"{_where(a, b)}  (floor {floor(a)} imports floor {floor(b)})"
           for a, b in sorted(EDGES) if floor(b) > floor(a)]
    assert not bad, ("imports of a higher floor; move what is shared down to the lowest floor that "
                     "uses it:\n  " + "\n  ".join(bad))


def test_no_library_module_imports_an_entry_point():
    bad = [_where(a, b) for a, b in sorted(EDGES) if not is_entry(a) and is_entry(b)]
    assert not bad, ("library modules that import an entry point (cli.py, *_cli.py, server.py, a "
                     "COMMANDS module); move what they use into a library module:\n  " + "\n  ".join(bad))


def _cycles(edges) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(graph[w])))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]) == [["a", "b", "c"]]
    assert _cycles([("a", "b"), ("b", "c")]) == []


def test_no_import_cycles():
    msgs = []
    for comp in _cycles(EDGES):
        inside = [_where(a, b) for a, b in sorted(EDGES) if a in comp and b in comp]
        msgs.append(f"{', '.join(comp)}:\n    " + "\n    ".join(inside))
    assert not msgs, ("import cycles (lazy imports inside functions included); move what both sides "
                      "need into a module below them:\n  " + "\n  ".join(msgs))


def test_lazy_registry_entries_stay_on_their_floor():
    # the strategy registry imports its functions by name ("search.beam:beam"), which the
    # walk above does not see: those names obey the same rules
    from search.strategies import REGISTRY

    for name, spec in REGISTRY.items():
        module = spec.function.partition(":")[0]
        assert module in MODULES, f"strategy {name}: no module {module}"
        assert not is_entry(module) and floor(module) <= floor("search.strategies"), (
            f"strategy {name}: {module} is an entry point or above search")
