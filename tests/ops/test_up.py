"""`leadbridge up` as a real subprocess: the panel answers; SIGINT stops every child."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil
import pytest

from tests.conftest import ROOT, free_port
from tests.ops.test_local_attackers import open_to_others


def wait_for(url: str, seconds: float = 60) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in {seconds}s")


def start_up(tmp_path, port: int, **options) -> subprocess.Popen:
    """`leadbridge up` on port, its data under tmp_path/var, no LEADBRIDGE_ setting inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADBRIDGE_")}
    env["LEADBRIDGE_DATA_DIR"] = str(tmp_path / "var")
    return subprocess.Popen(
        [sys.executable, "-m", "service.ops.cli", "up", "--port", str(port)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **options)


def test_up_serves_panel_and_stops_cleanly(tmp_path):
    port = free_port()
    process = start_up(tmp_path, port)
    try:
        assert wait_for(f"http://127.0.0.1:{port}/admin/login") == 200
        assert wait_for(f"http://127.0.0.1:{port}/readyz") == 200
        children = psutil.Process(process.pid).children(recursive=True)
        names = " ".join(" ".join(child.cmdline()) for child in children)
        for part in ("service.ops.cli web", "service.ops.cli worker", "service.ops.cli cron",
                     "valkey"):
            assert part in names, f"{part} is not running under up: {names}"
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], f"still running after SIGINT: {alive}"
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate(timeout=10)[0]
    assert f"http://127.0.0.1:{port}/admin" in output
    assert "admin@example.com" in output


def test_ctrl_c_in_a_terminal_stops_every_part_without_an_error(tmp_path):
    """A terminal sends Ctrl-C to the whole foreground group: `up` and whatever shares its
    group. The embedded Valkey must outlive the parts that still talk to it as they stop."""
    port = free_port()
    process = start_up(tmp_path, port, start_new_session=True)
    try:
        assert wait_for(f"http://127.0.0.1:{port}/readyz") == 200
        time.sleep(2)  # the worker and cron settle on the queue
        children = psutil.Process(process.pid).children(recursive=True)
        assert any("valkey" in " ".join(child.cmdline()) for child in children)
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=20)
        assert psutil.wait_procs(children, timeout=10)[1] == [], "a part outlived up"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        output = process.communicate(timeout=10)[0]
    assert "Traceback" not in output and "ERROR" not in output, output[-3000:]


def child_running(process: subprocess.Popen, part: str) -> psutil.Process | None:
    for child in psutil.Process(process.pid).children():
        try:
            if child.cmdline()[-1:] == [part]:
                return child
        except psutil.Error:  # a zombie, or gone
            continue
    return None


def eventually(find, seconds: float, what: str, step: float = 0.2):
    """The first truthy answer of find(), asked every step seconds; fails after seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if found := find():
            return found
        time.sleep(step)
    raise AssertionError(f"{what} within {seconds}s")


def new_child(process: subprocess.Popen, part: str, old_pid: int, seconds: float = 30):
    def fresh():
        child = child_running(process, part)
        return child if child is not None and child.pid != old_pid else None

    return eventually(fresh, seconds, f"no new {part}")


def test_up_restarts_a_crashed_child_and_keeps_serving(tmp_path):
    from redis import AuthenticationError, Redis

    port = free_port()
    process = start_up(tmp_path, port)
    panel = f"http://127.0.0.1:{port}/admin/login"
    try:
        assert wait_for(panel) == 200
        conf = (tmp_path / "var" / "valkey" / "valkey.conf").read_text()
        valkey_port = int(next(line.split()[1] for line in conf.splitlines()
                               if line.startswith("port ")))
        with Redis(host="127.0.0.1", port=valkey_port) as stranger:
            with pytest.raises(AuthenticationError):
                stranger.ping()

        worker = child_running(process, "worker")
        scheduler = worker.children(recursive=True)  # RQ's scheduler, forked by the worker
        worker.kill()
        assert wait_for(panel, 5) == 200, "the web keeps serving while the worker is down"
        assert wait_for(f"http://127.0.0.1:{port}/readyz") == 200
        new_child(process, "worker", worker.pid)
        assert psutil.wait_procs(scheduler, timeout=5)[1] == [], "nothing of it is left"

        web = child_running(process, "web")
        gunicorn_workers = web.children(recursive=True)
        web.kill()
        new_child(process, "web", web.pid)
        assert wait_for(panel) == 200, "the web comes back"
        assert psutil.wait_procs(gunicorn_workers, timeout=5)[1] == []
        assert child_running(process, "cron") is not None

        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            for each in [*psutil.Process(process.pid).children(recursive=True), process]:
                each.kill()
        output = process.communicate(timeout=10)[0]
    assert "leadbridge: worker was killed by SIGKILL (exit code -9)" in output, output
    assert "leadbridge: web was killed by SIGKILL" in output
    password = (tmp_path / "var" / "valkey_password").read_text()
    assert password not in output
    assert open_to_others(tmp_path / "var") == [], "the database, Valkey's folder: all private"


def valkey_running(process: subprocess.Popen) -> psutil.Process | None:
    for child in psutil.Process(process.pid).children():
        with contextlib.suppress(psutil.Error):
            if "valkey-server" in child.name() and child.status() != psutil.STATUS_ZOMBIE:
                return child
    return None


def stay_up(child: psutil.Process, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not child.is_running() or child.status() == psutil.STATUS_ZOMBIE:
            return False
        time.sleep(0.2)
    return True


def listening_port(server: psutil.Process, seconds: float = 20) -> int:
    """The port a server listens on, once it does (a fresh process binds a moment later)."""
    def port():
        return next((c.laddr.port for c in server.net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN), None)

    return eventually(port, seconds, f"{server.pid} does not listen", step=0.1)


def test_up_restarts_a_killed_valkey_and_the_worker_keeps_working(tmp_path):
    port = free_port()
    process = start_up(tmp_path, port)
    ready = f"http://127.0.0.1:{port}/readyz"
    try:
        assert wait_for(ready) == 200
        valkey = valkey_running(process)
        valkey_port = listening_port(valkey)
        valkey.kill()
        again = eventually(lambda: (new := valkey_running(process)) and new.pid != valkey.pid
                           and new, 20, "no new Valkey under up")
        assert listening_port(again) == valkey_port, "same port"
        assert wait_for(ready, 20) == 200
        deadline = time.monotonic() + 40  # the worker may have crashed while Valkey was down
        while not ((worker := child_running(process, "worker")) and stay_up(worker, 5)):
            assert time.monotonic() < deadline, "the worker does not stay up"
        assert child_running(process, "cron") is not None
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            for each in [*psutil.Process(process.pid).children(recursive=True), process]:
                each.kill()
        output = process.communicate(timeout=10)[0]
    assert "leadbridge: valkey was killed by SIGKILL (exit code -9)" in output, output


def test_killing_up_takes_its_parts_along_and_the_next_up_stops_its_valkey(tmp_path):
    port = free_port()
    process = start_up(tmp_path, port)
    try:
        assert wait_for(f"http://127.0.0.1:{port}/readyz") == 200
        everything = psutil.Process(process.pid).children(recursive=True)
        valkey = valkey_running(process)
        parts = [each for each in everything if each.pid != valkey.pid]
        assert len(parts) >= 4, "web, its gunicorn workers, worker, cron"
        process.kill()
        process.wait(timeout=5)
        gone, alive = psutil.wait_procs(parts, timeout=10)
        assert alive == [], f"left running after up was killed: {alive}"

        port = free_port()
        second = start_up(tmp_path, port)
        try:
            assert wait_for(f"http://127.0.0.1:{port}/readyz") == 200
            assert psutil.wait_procs([valkey], timeout=5)[1] == [], "the old Valkey is stopped"
            assert valkey_running(second).pid != valkey.pid
        finally:
            second.send_signal(signal.SIGINT)
            second.wait(timeout=20)
    finally:
        for each in [process, *everything]:
            with contextlib.suppress(psutil.Error):
                psutil.Process(each.pid).kill()
        process.communicate(timeout=10)
