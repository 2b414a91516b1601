"""The import structure: no cycles, and no import that reaches up a layer.

Layers, bottom to top: the library (``spare`` below, ``evaluators``), the run (``spare.run``:
one target, one method), the experiments (``benchmarks``: sweeps, tables, ablations) and the
command line (``spare.cli``, ``spare.__main__``). A module imports from its own layer or those
below. Every import counts, at module level or inside a function, and so does a module named in
a string (``importlib.import_module``): a lazy import only hides a cycle, it does not remove it.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("spare", "evaluators", "benchmarks")
LAYERS = {"library": 0, "run": 1, "experiments": 2, "cli": 3}


def layer(module: str) -> str:
    if module in ("spare.cli", "spare.__main__") or module.startswith("spare.cli."):
        return "cli"
    if module.startswith("benchmarks"):
        return "experiments"
    if module == "spare.run" or module.startswith("spare.stages"):
        return "run"
    return "library"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the project modules it imports (``from a import b`` counts ``a.b`` when that is a module)."""
    files = {module_name(p, root): p for pkg in PACKAGES for p in (root / pkg).rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in files:
                targets = [node.value]  # a module loaded by name (importlib), e.g. spare.methods' built-ins
            else:
                continue
            for target in targets:
                while target and target not in files:  # "spare.methods.x.y" -> the module that holds it
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.add(target)
        graph[name] = found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{a} ({layer(a)}) imports {b} ({layer(b)})"
        for a, targets in graph.items()
        for b in targets
        if LAYERS[layer(b)] > LAYERS[layer(a)]
    )


def test_the_project_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_no_import_reaches_up_a_layer():
    assert upward_imports(import_graph()) == []


def test_the_checks_catch_a_deliberate_cycle_and_an_upward_import(tmp_path):
    """The same checks on a copy of the project with one bad import added must fail."""
    import shutil

    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    errors = tmp_path / "spare" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom spare.io import write_json  # noqa\n")
    io = tmp_path / "spare" / "io.py"
    io.write_text(io.read_text() + "\ndef _late():\n    from benchmarks.runner import build_sweep  # noqa\n")
    graph = import_graph(tmp_path)
    assert any({"spare.errors", "spare.io"} <= set(c) for c in cycles(graph))
    assert "spare.io (library) imports benchmarks.runner (experiments)" in upward_imports(graph)


@pytest.mark.parametrize("module", ["spare.run", "benchmarks.runner", "spare.cli"])
def test_layers_are_assigned(module):
    assert layer(module) in LAYERS
