"""The package's layers, lowest first: config < ops < model < loss, data < engine < deploy, serve
< cli. A module imports only its own layer or lower ones (lazy imports inside functions count)."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1] / "yolact"

# module (or package) -> layer rank; the longest matching prefix wins
LAYERS = {
    "yolact.errors": 0, "yolact.config": 0, "yolact.hub": 0, "yolact.__version__": 0,
    "yolact.ops": 1, "yolact.results": 1, "yolact.viz": 1,
    "yolact.model": 2, "yolact.checkpoint": 2,
    "yolact.loss": 3, "yolact.data": 3,
    "yolact.engine": 4,
    "yolact.deploy": 5, "yolact.serve": 5, "yolact.export": 5, "yolact.openvino_backend": 5,
    "yolact.cli": 6, "yolact.__main__": 6, "yolact": 6,
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
            if node.module is None or target == "yolact":  # `from . import x` / `from yolact import x`
                for a in node.names:
                    yield f"{target}.{a.name}", node.lineno
            else:
                yield target, node.lineno


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
    src.write_text("def f():\n    from ..engine import predict\n    from . import heads\n")
    found = dict(module_imports(src, "yolact.model.m"))
    assert "yolact.engine" in found and "yolact.model.heads" in found
    assert layer_of("yolact.engine.predict") > layer_of("yolact.model.yolact")
