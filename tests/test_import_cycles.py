"""No import cycles inside ssl_course: each layer imports only the layers below it.

The graph is read from the source with ``ast``: every ``import`` anywhere in a module counts,
including those inside functions (a deferred import hides a cycle until the function runs, it does
not remove it). Imports under ``if TYPE_CHECKING:`` never run and are left out. Importing
``a.b.c`` also runs the packages ``a.b`` and ``a``, so those count too, except the packages the
importing module itself lives in (they are already being imported when it runs).
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "ssl_course"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _ancestors(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement outside ``if TYPE_CHECKING:`` blocks (their ``else:`` branches count)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        children = node.orelse if _is_type_checking_block(node) else ast.iter_child_nodes(node)
        for child in children:
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of ssl_course it imports}``, packages named without ``__init__``."""
    paths = {_module_name(path): path for path in PACKAGE_ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    anchor = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # `from pkg import sub` runs pkg.sub when it is a module, and pkg in any case.
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in paths]
            for target in targets:
                if target not in paths:
                    continue  # outside ssl_course
                implied = [p for p in _ancestors(target) if p not in _ancestors(name)]
                graph[name].update(t for t in [target, *implied] if t != name)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_a_cycle_through(graph, component) for component in components]


def _a_cycle_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """The shortest path from the component's first module back to itself, inside the component."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        next_frontier = []
        for node in frontier:
            for target in sorted(graph[node] & component):
                if target == start:
                    return paths[node] + [start]
                if target not in paths:
                    paths[target] = paths[node] + [target]
                    next_frontier.append(target)
        frontier = next_frontier
    raise AssertionError(f"{sorted(component)} is not strongly connected")  # pragma: no cover


def test_the_graph_sees_module_and_function_level_imports():
    graph = import_graph()
    assert "ssl_course.experiment" in graph["ssl_course.compare"]          # module level
    assert "ssl_course.data" in graph["ssl_course.experiment"]             # inside run_experiment
    assert "ssl_course.methods.base" in graph["ssl_course.methods"]        # relative import in a package
    assert "ssl_course.data" in graph["ssl_course.evaluate"]               # implied by ssl_course.data.augment
    assert "ssl_course.data" not in graph["ssl_course.data.batches"]       # its own package is not an import


def test_the_cycle_finder_reports_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_ssl_course():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles (each line: a imports b imports ... a):\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles)
