"""`leadbridge up` as a real subprocess: the panel answers; SIGINT stops every child."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil

from .conftest import ROOT, free_port


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


def test_up_serves_panel_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADBRIDGE_")}
    env["LEADBRIDGE_DATA_DIR"] = str(tmp_path / "var")
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "up", "--port", str(port)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(f"http://127.0.0.1:{port}/admin/login") == 200
        assert wait_for(f"http://127.0.0.1:{port}/readyz") == 200
        children = psutil.Process(process.pid).children(recursive=True)
        names = " ".join(" ".join(child.cmdline()) for child in children)
        for part in ("service.cli web", "service.cli worker", "service.cli cron", "valkey"):
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
