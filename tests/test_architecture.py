"""The import contracts in pyproject.toml (run by `make test` through lint-imports) hold, and
would fail the build on a back-edge: a domain package importing an adapter, core importing
the domain, or a cycle."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True,
                          text=True, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
                          timeout=120)


@pytest.fixture
def copy(tmp_path) -> Path:
    """The three packages' sources and pyproject.toml, in a folder of their own."""
    for package in ("service", "admin", "workers"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "templates"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def add_import(module: Path, line: str) -> None:
    module.write_text(module.read_text() + f"\n{line}\n")


def test_the_contracts_hold(copy):
    result = lint_imports(copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("service/core/db.py", "from service.handoffs import escalation",
     "service.core is not allowed to import service.handoffs"),
    ("service/nurture/sequences.py", "from service.web import api",
     "service.nurture is not allowed to import service.web"),
    ("service/lifecycle/stages.py", "import admin.leads",
     "service.lifecycle is not allowed to import admin"),
    ("service/intake/recording.py", "from workers import jobs",
     "service.intake is not allowed to import workers"),
    ("service/core/db.py", "from service.core import outbox",
     "No import cycles between the modules of a package"),
])
def test_a_back_edge_fails_the_build(copy, module, line, broken):
    add_import(copy / module, line)
    result = lint_imports(copy)
    assert result.returncode != 0
    assert broken in result.stdout


PROJECT = ("service", "admin", "workers", "email_templates")


def late_imports(path: Path) -> list[tuple[int, str]]:
    """Imports of project modules inside a function, each with the line above its group of
    imports."""
    lines = path.read_text().splitlines()
    found = []
    for function in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            module = (node.module or "" if isinstance(node, ast.ImportFrom)
                      else node.names[0].name if isinstance(node, ast.Import) else None)
            if module is not None and (module.split(".")[0] in PROJECT
                                       or getattr(node, "level", 0)):
                above = node.lineno - 2
                while lines[above].strip().startswith(("import ", "from ")):
                    above -= 1
                found.append((node.lineno, lines[above].strip()))
    return found


def test_an_import_inside_a_function_says_why():
    unexplained = [f"{path.relative_to(ROOT)}:{line}"
                   for package in ("service", "admin", "workers")
                   for path in (ROOT / package).rglob("*.py")
                   for line, above in late_imports(path) if not above.startswith("#")]
    assert unexplained == []
