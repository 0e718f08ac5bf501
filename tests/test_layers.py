"""The layering the code promises, read from its syntax: nothing above `ingest/` reaches into a
ledger's projections or sequencer (it goes through the Ledger's read façade), and no product
function grows past 80 lines (the one left is the write path, which a later change replaces)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ABOVE_INGEST = ["proof_api", "anchor", "evledger_dev", "evledger_common", "verifier/evledger_verify", "bench"]
PRODUCT = ["merkle", "ingest", "anchor", "proof_api", "evledger_dev", "evledger_common", "verifier/evledger_verify",
           "client/evledger_client", "bench"]
INNER = {"projections", "sequencer"}
LONG_FUNCTIONS_ALLOWED = {("ingest/ledger.py", "_write_group")}
# Times the ledger's inner stages one by one, so it must name them.
REACHING_INSIDE_ALLOWED = {"bench/stages.py", "bench/rebuild_stages.py"}


def modules(packages):
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def reaches_inside(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] == "ingest" and INNER & set(parts[1:]):
                found.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names
                      if a.name.startswith("ingest.") and INNER & set(a.name.split(".")[1:])]
        elif isinstance(node, ast.Attribute) and node.attr in INNER:
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


@pytest.mark.parametrize("path", [p for p in modules(ABOVE_INGEST) if str(p.relative_to(ROOT)) not in REACHING_INSIDE_ALLOWED],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_nothing_above_ingest_reaches_into_a_ledger(path):
    assert reaches_inside(ast.parse(path.read_text(), str(path))) == []


def test_the_check_sees_a_reach_inside():
    assert reaches_inside(ast.parse("from ingest.sequencer import X\nledger.projections.tree\n")) == [
        "line 1: from ingest.sequencer import ...", "line 2: .projections"]


def test_no_product_function_is_over_80_lines():
    long = []
    for path in modules(PRODUCT):
        where = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(), where)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80 and (where, node.name) not in LONG_FUNCTIONS_ALLOWED:
                    long.append(f"{where} {node.name}: {lines} lines")
    assert long == []
