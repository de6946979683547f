"""The package's layers, lowest first: config < ops < model < loss, data < tracking < prediction <
evaluation < training < deploy, serve < compat < cli. A module imports only its own layer or lower
ones (lazy imports inside functions count), and no set of modules imports itself round a cycle."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

ROOT = Path(__file__).resolve().parents[1] / "yolact"

# module (or package) -> layer rank; the longest matching prefix wins
LAYERS = {
    "yolact.errors": 0, "yolact.checks": 0, "yolact.config": 0, "yolact.hub": 0, "yolact.__version__": 0,
    "yolact.runs": 0,
    "yolact.formats": 0, "yolact.backbones": 0,  # the extension tables: data only, read from every layer
    "yolact.ops": 1, "yolact.results": 1, "yolact.viz": 1,
    "yolact.model": 2, "yolact.checkpoint": 2,
    "yolact.loss": 3, "yolact.data": 3,
    # the four rooms of the application layer, each allowed to use the ones before it
    "yolact.tracking": 4, "yolact.prediction": 5, "yolact.evaluation": 6, "yolact.training": 7,
    "yolact.deploy": 8, "yolact.serve": 8, "yolact.integrations": 8,
    "yolact.compat": 9,  # old spellings: imports anything, imported by nothing in the package
    "yolact.cli": 10, "yolact.__main__": 10, "yolact": 10,
}


def layer_of(module: str) -> Optional[int]:
    """The layer of a dotted module name inside the package, None outside it."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return LAYERS[key]
    return None


def module_imports(path: Path, module: str) -> Iterator[Tuple[str, int]]:
    """Absolute names of the package modules that ``path`` (module ``module``) imports, with lines."""
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "yolact":
                    yield a.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "yolact":
                continue
            # `from pkg import x` names pkg.x: a submodule, or a name inside pkg (callers walk up)
            for a in node.names:
                yield f"{target}.{a.name}", node.lineno


def _modules():
    for f in sorted(ROOT.rglob("*.py")):
        rel = f.relative_to(ROOT.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        yield f, ".".join(parts)


def test_every_module_has_a_layer():
    assert [m for _, m in _modules() if layer_of(m) is None] == []


def test_no_import_runs_up_the_layers():
    upward = []
    for f, mod in _modules():
        own = layer_of(mod)
        for target, line in module_imports(f, mod):
            t = layer_of(target)
            if t is not None and t > own:
                upward.append(f"{f.relative_to(ROOT.parent)}:{line} imports {target}")
    assert upward == []


def test_the_rule_sees_lazy_and_relative_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from ..prediction import predictor\n    from . import heads\n")
    found = dict(module_imports(src, "yolact.model.m"))
    assert "yolact.prediction.predictor" in found and "yolact.model.heads" in found
    assert layer_of("yolact.prediction.predictor") > layer_of("yolact.model.yolact")


def import_graph() -> Dict[str, Set[str]]:
    """module -> the package modules it imports (lazy ones included); ``from pkg import name``
    counts as importing ``pkg.name`` when that is a module, else ``pkg``."""
    modules = {m for _, m in _modules()}
    graph: Dict[str, Set[str]] = {}
    for f, mod in _modules():
        edges = set()
        for target, _ in module_imports(f, mod):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != mod:
                edges.add(target)
        graph[mod] = edges
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_nothing_in_the_package_imports_compat():
    users = [m for m, edges in import_graph().items() if "yolact.compat" in edges]
    assert users == []
