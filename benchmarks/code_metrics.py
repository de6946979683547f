"""Code-shape figures for the package: lines per package, the longest functions, the Fast NMS
implementations and the imports that run up the layers (the rule of tests/test_layers.py).

    python benchmarks/code_metrics.py [--root yolact]
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_layers import layer_of, module_imports  # noqa: E402  (one rule, one place)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1] / "yolact"))
    args = ap.parse_args()
    root = Path(args.root)
    lines: Counter = Counter()
    funcs = []
    nms_impls = []
    upward = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root.parent)
        src = f.read_text()
        pkg = rel.parts[1] if len(rel.parts) > 2 else rel.parts[-1]
        lines[pkg] += len(src.splitlines())
        tree = ast.parse(src)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                funcs.append((node.end_lineno - node.lineno + 1, f"{rel}:{node.name}"))
                body = ast.get_source_segment(src, node) or ""
                # a Fast NMS: the upper-triangular IoU matrix reduced by a max (the paper's Fast NMS)
                if "triu" in body and ("max" in body or "amax" in body) and "iou" in body.lower():
                    nms_impls.append(f"{rel}:{node.name}")
        mod = ".".join(rel.with_suffix("").parts)
        for target, lineno in module_imports(f, mod):
            if layer_of(target) is not None and layer_of(mod) is not None and layer_of(target) > layer_of(mod):
                upward.append(f"{rel}:{lineno} -> {target}")
    print("lines per package")
    for k, v in sorted(lines.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<24}{v:6d}")
    print(f"  {'total':<24}{sum(lines.values()):6d}")
    print("10 longest functions")
    for n, name in sorted(funcs, reverse=True)[:10]:
        print(f"  {n:4d}  {name}")
    print(f"Fast NMS implementations: {len(nms_impls)}")
    for n in nms_impls:
        print(f"  {n}")
    print(f"upward imports: {len(upward)}")
    for u in upward:
        print(f"  {u}")


if __name__ == "__main__":
    main()
