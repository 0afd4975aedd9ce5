"""`pip install .` as an operator does it: the wheel builds without setuptools warnings,
holds every template at any depth, and the app installed from it into a fresh virtualenv
starts and serves from outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port
from tests.ops.test_up import wait_for

TEMPLATE_FOLDERS = ("email_templates", "service/templates", "admin/templates", "admin/static")
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "var", "build", "dist", "*.egg-info",
                                    ".*_cache", ".hypothesis", "test-artifacts")


def clean_env(**extra: str) -> dict:
    """The environment of a fresh shell: no LEADBRIDGE_* settings, nothing that points Python
    at the checkout."""
    skip = ("LEADBRIDGE_", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV",
            # setuptools says "byte-compiling is disabled" when this is set: a fact about the
            # shell, not the package
            "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    return {**env, **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path, str]:
    """The wheel `pip install .` builds, from a copy of the source tree (a `build/` folder
    left in the checkout would add stale files) with byte-code beside the sources, as in a
    checkout that has run, and pip's verbose log of the build."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "leadbridge"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    subprocess.run([sys.executable, "-m", "compileall", "-q", source], check=True,
                   stdout=subprocess.DEVNULL)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", work / "dist", source],
        env=clean_env(), capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    return next((work / "dist").glob("leadbridge-*.whl")), built.stdout + built.stderr


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A new virtualenv outside the checkout with the wheel and its dependencies."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
         "--quiet", wheel[0]], env=clean_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return venv


def setuptools_output(log: str) -> list[str]:
    """What setuptools printed: pip -v shows each build hook's output between "Running
    command <hook>" and "<hook>: finished"; installing the build requirements is pip's."""
    lines, inside = [], False
    for line in log.splitlines():
        text = line.strip()
        if text.startswith("Running command"):
            inside = "build dependencies" not in text
        elif "finished with status" in text:
            inside = False
        elif inside:
            lines.append(text)
    return lines


def test_wheel_builds_without_setuptools_warnings(wheel):
    printed = setuptools_output(wheel[1])
    assert "running bdist_wheel" in printed, wheel[1]
    assert [line for line in printed if "warning" in line.lower()] == []


def test_wheel_holds_every_template_at_any_depth(wheel):
    with zipfile.ZipFile(wheel[0]) as archive:
        packed = set(archive.namelist())
    templates = {path.relative_to(ROOT).as_posix()
                 for folder in TEMPLATE_FOLDERS for path in (ROOT / folder).rglob("*")
                 if path.is_file() and "__pycache__" not in path.parts}
    assert "email_templates/nurture/checkin/body.html" in templates
    assert sorted(templates - packed) == []
    assert [name for name in packed if name.endswith(".pyc")] == []


def test_installed_wheel_serves_from_outside_the_checkout(installed, tmp_path):
    home = tmp_path / "site"
    home.mkdir()
    shutil.copy(ROOT / "config.toml", home / "config.toml")  # data_dir "./var": under home
    bin_dir = installed / "bin"
    found = subprocess.run([bin_dir / "python", "-c", "import service; print(service.__file__)"],
                           cwd=home, env=clean_env(), capture_output=True, text=True, check=True)
    assert Path(found.stdout.strip()).is_relative_to(installed)

    port = free_port()
    env = clean_env(LEADBRIDGE_WEB__PORT=str(port))
    init = subprocess.run([bin_dir / "leadbridge", "init-db"], cwd=home, env=env,
                          capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stdout + init.stderr
    assert (home / "var" / "leadbridge.db").exists()
    with open(tmp_path / "web.log", "w") as log:
        web = subprocess.Popen([bin_dir / "leadbridge", "web"], cwd=home, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            assert wait_for(url + "/healthz", seconds=60) == 200, (tmp_path / "web.log").read_text()
            with urllib.request.urlopen(url + "/admin/login", timeout=10) as page:
                assert 'name="password"' in page.read().decode()
            with urllib.request.urlopen(url + "/admin/assets/panel.css", timeout=10) as sheet:
                assert sheet.headers.get_content_type() == "text/css"
                assert b".panel-main" in sheet.read()
        finally:
            web.terminate()
            web.wait(timeout=20)


def test_ruff_refuses_a_private_member_of_a_dependency(tmp_path):
    """`make test` runs `ruff check .` with the project's settings: reaching into a
    dependency's private members fails it; peewee's documented `_meta` does not."""
    source = tmp_path / "reaches_in.py"
    source.write_text(
        "from rq.cron import CronScheduler\n\n\n"
        "def parts(scheduler: CronScheduler, model) -> list:\n"
        "    return [scheduler._cron_jobs, model._meta.fields]\n")
    ruff = Path(sys.executable).parent / "ruff"
    checked = subprocess.run(
        [str(ruff), "check", "--config", str(ROOT / "pyproject.toml"), "--no-cache",
         "--output-format", "concise", str(source)], capture_output=True, text=True)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "SLF001 Private member accessed: `_cron_jobs`" in checked.stdout
    assert "Found 1 error" in checked.stdout, checked.stdout  # and not peewee's _meta


def test_every_dependency_is_bounded_to_the_major_installed_and_tested():
    import tomllib
    from importlib.metadata import version

    from packaging.requirements import Requirement
    from packaging.version import Version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"] + project["optional-dependencies"]["test"]:
        requirement = Requirement(line)
        installed = Version(version(requirement.name))
        assert installed in requirement.specifier, (line, installed)
        upper = [Version(s.version) for s in requirement.specifier if s.operator == "<"]
        assert upper, f"{line}: no upper bound"
        assert upper[0] <= Version(str(installed.major + 1)), line
