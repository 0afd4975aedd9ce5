"""A local attacker and a curious colleague on the same machine: the embedded Valkey wants its
password, the worker runs only Leadbridge's jobs, the data folder is private, and no log line
carries an email address or a link token."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import stat
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from redis import AuthenticationError, Redis
from rq import Callback, Queue
from rq.job import JobStatus
from rq.serializers import JSONSerializer

from service.core import config, logs
from service.core.db import utcnow
from service.core.runtime import runtime
from service.ops import up
from tests.conftest import ROOT, run_cli, run_worker
from tests.factories import promoted

# ---- #6: the embedded Valkey has a password; the worker runs only our jobs ------------------


def test_the_embedded_valkey_refuses_a_client_without_its_password(tmp_path):
    server = up.start_valkey(tmp_path)
    try:
        with Redis(host="127.0.0.1", port=server.port, socket_timeout=2) as stranger:
            with pytest.raises(AuthenticationError):
                stranger.ping()
            with pytest.raises(AuthenticationError):
                stranger.rpush("rq:queue:default", "job")
        with Redis.from_url(server.connection_url) as leadbridge:
            assert leadbridge.ping()
        password = (tmp_path / "valkey_password").read_text()
        assert len(password) >= 32 and password in server.connection_url
        assert stat.S_IMODE((tmp_path / "valkey_password").stat().st_mode) == 0o600
        shown = up.banner(config.load(ROOT / "config.toml", {
            "web.base_url": "", "web.host": "127.0.0.1", "web.port": 1,
            "mail.transport": "capture"}, environ={}), "someone", server)
        assert password not in shown and f"127.0.0.1:{server.port}" in shown
    finally:
        server.stop()
    again = up.start_valkey(tmp_path)  # a later start keeps the password
    try:
        assert again.connection_url.startswith(f"redis://:{password}@")
    finally:
        again.stop()


def test_the_banner_hides_the_password_of_a_configured_redis():
    shown = up.banner(config.load(ROOT / "config.toml", {
        "web.base_url": "", "web.host": "127.0.0.1", "web.port": 1, "mail.transport": "capture",
        "redis.url": "redis://:hunter2-secret@redis.internal:6379/0"}, environ={}), "x", None)
    assert "hunter2-secret" not in shown and "redis://redis.internal:6379/0" in shown


def foreign_queue(redis_url: str, **options) -> Queue:
    """The queue as another process on the machine sees it, with the right credentials."""
    return Queue(runtime.queue.name, connection=Redis.from_url(redis_url), **options)


def failure(job) -> str:
    job.refresh()
    assert job.get_status() == JobStatus.FAILED
    return job.latest_result().exc_string


def test_a_worker_refuses_a_job_that_is_not_leadbridges(app, redis_url, tmp_path):
    target = tmp_path / "made-by-a-stranger"
    job = foreign_queue(redis_url, serializer=JSONSerializer).enqueue("os.mkdir", str(target))
    run_worker()
    assert not target.exists()
    assert "refused job 'os.mkdir': not one of Leadbridge's jobs" in failure(job)


def test_a_worker_refuses_a_leadbridge_job_with_a_stranger_s_callback(app, redis_url, tmp_path):
    queue = foreign_queue(redis_url, serializer=JSONSerializer)
    job = queue.enqueue("workers.jobs.refresh_reports", on_success=Callback("os.mkdir"),
                        on_failure=Callback("os.mkdir"))
    ours = queue.enqueue("workers.jobs.refresh_reports")
    run_worker()
    assert "it names a callback" in failure(job)
    ours.refresh()
    assert ours.get_status() == JobStatus.FINISHED, "Leadbridge's own jobs still run"


class MakesAFolder:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (str(self.path),)


def test_a_pickled_job_is_never_unpickled(app, redis_url, tmp_path):
    target = tmp_path / "made-by-a-pickle"
    job = foreign_queue(redis_url).enqueue("workers.jobs.refresh_reports")
    client = Redis.from_url(redis_url)
    client.hset(job.key, "data", zlib.compress(pickle.dumps(MakesAFolder(target))))
    run_worker()
    assert not target.exists()


# ---- #7: the data folder is private ------------------------------------------------------


def open_to_others(folder: Path) -> list[str]:
    paths = [folder, *folder.rglob("*")]
    return [f"{path} {stat.filemode(path.lstat().st_mode)}" for path in paths
            if not path.is_symlink() and stat.S_IMODE(path.lstat().st_mode) & 0o077]


def test_what_leadbridge_writes_in_its_data_folder_is_private(make_app, rep):
    make_app(**{"mail.transport": "capture"})
    settings = runtime.settings
    data = Path(settings.data_dir)
    up.prepare_database(settings)  # first-admin.txt, as `leadbridge up` writes it
    no_secret = settings.web.model_copy(update={"secret_key": SecretStr("")})
    config.secret_key(settings.model_copy(update={"web": no_secret}))
    now = utcnow()
    promoted(rep, at=now, actor="m")
    run_worker()
    assert list((data / "mail").glob("*.eml")), "a captured email with live decision links"
    assert (data / "first-admin.txt").exists() and (data / "secret_key").exists()
    assert open_to_others(data) == []


def test_an_older_data_folder_is_made_private_at_start(make_app, settings_overrides):
    data = Path(settings_overrides["data_dir"])
    (data / "mail").mkdir(parents=True)
    (data / "valkey").mkdir()
    for name in ("leadbridge.db", "leadbridge.db-wal", "secret_key", "first-admin.txt",
                 "mail/00000001.eml", "valkey/valkey.conf"):
        (data / name).write_bytes(b"k" * 48 if name == "secret_key" else b"")
        (data / name).chmod(0o644)
    for folder in (data, data / "mail", data / "valkey"):
        folder.chmod(0o755)
    (data / "mail/00000001.eml").unlink()
    (data / "mail/00000001.eml").write_bytes(b"")
    (data / "mail/00000001.eml").chmod(0o664)
    if not settings_overrides["database.url"]:
        (data / "leadbridge.db").unlink()  # SQLite makes a fresh one, private too
    (data / "notes").mkdir()
    (data / "notes/theirs.txt").write_bytes(b"")
    (data / "notes/theirs.txt").chmod(0o644)
    make_app()
    (data / "notes").chmod(0o755)
    assert open_to_others(data) == [f"{data / 'notes'} drwxr-xr-x",
                                    f"{data / 'notes/theirs.txt'} -rw-r--r--"], (
        "only what Leadbridge keeps is tightened: not someone else's file in a shared folder")


# ---- #15: no email address or link token in any log line --------------------------------

TOKEN = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~",
                min_size=1, max_size=80)
AROUND = st.text(max_size=40)


@given(before=AROUND, address=st.emails(), after=AROUND)
def test_scrub_leaves_no_email_address(before, address, after):
    for written in (address, address.replace("@", "%40")):
        line = logs.scrub(before + written + after)
        assert written not in line
        assert logs.scrub(line) == line


@given(before=AROUND, kind=st.sampled_from(["/h/", "/u/", "/c/", "/admin/reset/", "?token=",
                                           "&reset_token="]),
       token=TOKEN, after=AROUND)
def test_scrub_leaves_no_link_token(before, kind, token, after):
    line = logs.scrub(before + kind + token + after)
    assert kind + token not in line
    assert logs.scrub(line) == line


@pytest.mark.parametrize(("line", "scrubbed"), [
    ("GET /h/abc HTTP/1.1", "GET /h/[token] HTTP/1.1"),
    ("/u/x?y=1", "/u/[token]?y=1"),
    ("refused <riley.rep@example.com>: no such user", "refused <…@example.com>: no such user"),
    ("email=ada%40example.com&x=1", "…%40example.com&x=1"),
    ("a@b", "…@b"),
    ("nothing personal @ all", "nothing personal @ all"),
])
def test_scrub_examples(line, scrubbed):
    assert logs.scrub(line) == scrubbed


def test_scrub_reads_a_long_line_once():
    started = time.monotonic()
    logs.scrub("a" * 300_000 + "@example.com " + "%2F" * 100_000 + "%40x")
    assert time.monotonic() - started < 1


def test_a_traceback_logged_by_any_logger_is_scrubbed(app):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger().addHandler(handler)
    try:
        try:
            raise ValueError("no mailbox <ada@example.com> for /h/short")
        except ValueError:
            logging.getLogger("some.library").exception("sending to ada@example.com failed")
    finally:
        logging.getLogger().removeHandler(handler)
    [entry] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert "ada@example.com" not in json.dumps(entry) and "short" not in entry["error"]
    assert "…@example.com" in entry["message"] and "ValueError" in entry["error"]


def test_a_failing_job_s_log_lines_from_a_real_worker_show_no_address(app, settings_overrides):
    runtime.queue.enqueue("workers.jobs.sweep_sla", kwargs={"riley.rep@example.com": 1})
    result = run_cli(app, settings_overrides, "worker", "--burst")
    output = result.stdout + result.stderr
    assert "exception raised while executing" in output and "TypeError" in output, output
    assert "riley.rep@example.com" not in output
    assert "…@example.com" in output


def test_the_access_log_masks_every_link_token(app, live_server, tmp_path):
    paths = ["/h/short", "/u/Qz9", "/c/Xq1", "/admin/reset/r3set", "/h/" + "L" * 40]
    for path in paths:
        try:
            urllib.request.urlopen(live_server + path).close()
        except urllib.error.HTTPError:
            pass
    deadline = time.monotonic() + 10  # gunicorn writes the line after the response
    while (log := (tmp_path / "web.log").read_text()).count("HTTP/1.1") < len(paths):
        assert time.monotonic() < deadline, log
        time.sleep(0.1)
    for secret in ("short", "Qz9", "Xq1", "r3set", "L" * 40):
        assert secret not in log
    assert '"GET /u/[token] HTTP/1.1"' in log
