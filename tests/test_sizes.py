"""Sizes a newcomer can read: no module over 600 lines, no function over 80."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "yolact"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _files():
    return sorted(ROOT.rglob("*.py"))


def test_no_module_over_600_lines():
    long = {str(f.relative_to(ROOT.parent)): n for f in _files()
            if (n := len(f.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_no_function_over_80_lines():
    long = {}
    for f in _files():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{f.relative_to(ROOT.parent)}:{node.lineno} {node.name}"] = n
    assert long == {}
