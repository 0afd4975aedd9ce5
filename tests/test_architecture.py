"""The import contracts in pyproject.toml (run by `make test` through lint-imports) hold, and
would fail the build on a back-edge: a domain package importing an adapter, core importing
the domain, or a cycle."""

from __future__ import annotations

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
    ("service/lifecycle/stages.py", "import admin.views",
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
