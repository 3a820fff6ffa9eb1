"""The dependency rules of docs/architecture.md: the import contracts hold, and no import circle.

Imports inside functions count (grimp reads every import statement).
"""
from __future__ import annotations

import ast
import configparser
from pathlib import Path

import grimp
import pytest
from importlinter import configuration
from importlinter.application.use_cases import lint_imports

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".importlinter"
PACKAGES = ("annotations", "datavalue", "exports", "labs", "rewards", "moderation", "datadao")

# The project's wiring (URL conf, Celery app, WSGI/ASGI, settings) sits above
# every app; the rest of datadao is the core every app builds on.
WIRING = {"datadao", "datadao.apps", "datadao.urls", "datadao.celery", "datadao.wsgi", "datadao.asgi"}

# Circles inside an app not untangled yet (docs/architecture.md, "Known
# exceptions"): none now. This list only shrinks: a new circle fails, and so
# does an entry that no longer is one.
KNOWN_CYCLES: list[set[str]] = []


def unit_of(module: str) -> str:
    """The unit the between-apps rule speaks of: an app, datadao's core, or the wiring."""
    if module in WIRING or module.startswith("datadao.settings"):
        return "wiring"
    return module.split(".")[0]


def ignored_imports() -> set[tuple[str, str]]:
    """The exceptions the layers contract lists (``ignore_imports``), as (importer, imported)."""
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    lines = parser["importlinter:contract:layers"].get("ignore_imports", "").split("\n")
    return {tuple(part.strip() for part in line.split("->")) for line in lines if "->" in line}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted; iterative, no recursion."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def describe(component: list[str], edges: dict[str, set[str]]) -> str:
    members = set(component)
    return "\n".join(f"  {a} -> {b}" for a in component for b in sorted(edges[a] & members))


@pytest.fixture(scope="module")
def module_edges() -> dict[str, set[str]]:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    ignored = ignored_imports()
    return {
        module: {imported for imported in graph.find_modules_directly_imported_by(module)
                 if (module, imported) not in ignored}
        for module in graph.modules
    }


def test_the_import_contracts_hold(capsys):
    configuration.configure()  # what the lint-imports command does first
    kept = lint_imports(config_filename=str(CONFIG), cache_dir=None, no_logo=True)
    assert kept, "an import contract of .importlinter is broken:\n" + capsys.readouterr().out


def test_no_import_circle_between_apps(module_edges):
    units: dict[str, set[str]] = {}
    for module, imported in module_edges.items():
        units.setdefault(unit_of(module), set()).update(unit_of(i) for i in imported if unit_of(i) != unit_of(module))
    found = cycles(units)
    assert not found, "import circle between apps: " + "; ".join(
        " <-> ".join(c) + "\n" + "\n".join(
            f"  {m} -> {i}" for m, imported in sorted(module_edges.items()) for i in sorted(imported)
            if unit_of(m) in c and unit_of(i) in c and unit_of(m) != unit_of(i)
        ) for c in found
    )


def test_no_new_import_circle_inside_an_app(module_edges):
    found = cycles(module_edges)
    new = [c for c in found if not any(set(c) <= known for known in KNOWN_CYCLES)]
    assert not new, "import circle:\n" + "\n\n".join(describe(c, module_edges) for c in new)
    stale = [sorted(known) for known in KNOWN_CYCLES if not any(set(c) & known for c in found)]
    assert not stale, f"no longer a circle, remove it from KNOWN_CYCLES: {stale}"


def test_the_cycle_finder_names_every_member_of_a_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def function_level_imports_across_apps() -> list[str]:
    """``file:line: importer -> imported`` for every import inside a function that reaches another app.

    ``AppConfig.ready`` is where Django wants cross-app wiring done (models are loaded by then), and the
    layers contract's listed exceptions stay listed there; anything else belongs at module level.
    """
    found = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        app = path.relative_to(ROOT).parts[0]
        if app not in PACKAGES or "migrations" in path.parts:
            continue
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) or function.name == "ready":
                continue
            for node in ast.walk(function):
                names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                         else [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
                for name in names:
                    if name.split(".")[0] in PACKAGES and name.split(".")[0] != app and not any(
                            importer == module and name.startswith(imported) for importer, imported in ignored_imports()):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {module} -> {name}")
    return found


def test_no_function_level_import_crosses_an_app_boundary():
    found = function_level_imports_across_apps()
    assert not found, "import inside a function reaching another app (move it to the module's top):\n" + "\n".join(found)


def private_names_imported() -> list[str]:
    """``file:line: name from module`` for every ``_private`` name imported from another module of the project."""
    found = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        if path.relative_to(ROOT).parts[0] not in PACKAGES or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PACKAGES:
                found += [f"{path.relative_to(ROOT)}:{node.lineno}: {alias.name} from {node.module}"
                          for alias in node.names if alias.name.startswith("_") and not alias.name.startswith("__")]
    return found


def test_no_private_name_is_imported_from_another_module():
    found = private_names_imported()
    assert not found, "a helper two modules share is public, in the module it belongs to:\n" + "\n".join(found)
