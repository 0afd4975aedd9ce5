"""The IMAP mailbox against a real Dovecot, through the real receive(): each message kept
once and moved to the processed folder (never deleted), also after a crash between the
two; IDLE, polling, a refused login, and the `leadbridge mailbox` command."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from service.core import config as config_module
from service.core.models import InboundEmail
from service.core.runtime import runtime
from service.ops.up import PARTS, parts
from tests.conftest import ROOT, free_port, leadbridge_env, run_cli
from workers.mailbox import Mailbox, MailboxError, receive_imap

PROCESSED = "Leadbridge/Processed"


def reply(number: int = 1, message_id: bool = True) -> bytes:
    """A rep's reply as it reaches the mailbox (CRLF, as IMAP hands it back)."""
    lines = [
        "From: Riley Rep <riley.rep@example.com>",
        "To: reply+token@leads.example.com",
        f"Subject: Re: New lead {number}",
        "Date: Mon, 23 Nov 2026 09:00:00 +0000",
        *([f"Message-ID: <reply-{number}@mail.example.com>"] if message_id else []),
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        f"Thanks, I will call them today (reply {number}).",
        "",
    ]
    return "\r\n".join(lines).encode()


def deliver(imap, *messages: bytes) -> None:
    with imap.client() as client:
        for message in messages:
            client.append("INBOX", message)


def held(imap, folder: str) -> list[bytes]:
    """The messages in a folder, as the server gives them back."""
    with imap.client() as client:
        if not client.folder_exists(folder):
            return []
        client.select_folder(folder, readonly=True)
        uids = client.search("ALL")
        return [data[b"BODY[]"] for _, data in sorted(client.fetch(uids, ["BODY.PEEK[]"]).items())]


def wait_until(condition, seconds: float) -> float:
    """Seconds it took `condition` to hold; fails after `seconds`."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, "not within the time allowed"
        time.sleep(0.05)
    return time.monotonic() - start


@pytest.fixture
def mailbox_app(make_app, imap):
    def make(**extra):
        return make_app(**{"inbound.imap_url": imap.url(),
                           "inbound.imap_password": imap.password, **extra})

    return make


class Watcher:
    """Mailbox.watch in a thread, as `leadbridge mailbox` runs it."""

    def __init__(self):
        self.mailbox = Mailbox(runtime.settings.inbound)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.mailbox.watch, args=(receive_imap, self.stop))
        self.thread.start()

    def end(self) -> float:
        """Stop it; how long that took."""
        start = time.monotonic()
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        return time.monotonic() - start


@pytest.fixture
def watcher():
    started = []

    def start() -> Watcher:
        started.append(Watcher())
        return started[-1]

    yield start
    for each in started:
        each.end()


def test_a_message_is_received_once_and_moved_to_the_processed_folder(mailbox_app, imap):
    mailbox_app()
    message = reply()
    deliver(imap, message)

    read = Mailbox(runtime.settings.inbound).poll_once(receive_imap)

    assert read == 1
    (email,) = InboundEmail.select()
    assert email.channel == "imap" and bytes(email.raw) == message
    assert held(imap, "INBOX") == []
    assert held(imap, PROCESSED) == [message]  # moved, never deleted


def test_every_message_is_read_in_chunks_and_a_second_poll_finds_nothing(mailbox_app, imap):
    mailbox_app()
    messages = [reply(n) for n in range(1, 26)]  # more than one FETCH chunk
    deliver(imap, *messages)
    mailbox = Mailbox(runtime.settings.inbound)

    assert mailbox.poll_once(receive_imap) == 25
    assert mailbox.poll_once(receive_imap) == 0
    mailbox.close()

    assert sorted(bytes(e.raw) for e in InboundEmail.select()) == sorted(messages)
    assert held(imap, "INBOX") == [] and sorted(held(imap, PROCESSED)) == sorted(messages)


@pytest.mark.parametrize("message_id", [True, False], ids=["message-id", "digest"])
def test_a_crash_between_receiving_and_moving_keeps_the_email_once(mailbox_app, imap,
                                                                    message_id):
    mailbox_app()
    message = reply(message_id=message_id)
    deliver(imap, message)

    def crash_before_the_move(raw: bytes) -> None:
        receive_imap(raw)
        raise RuntimeError("the process died here")

    assert Mailbox(runtime.settings.inbound).poll_once(crash_before_the_move) == 0
    assert InboundEmail.select().count() == 1
    assert held(imap, "INBOX") == [message]  # not moved: read again by the next poll

    assert Mailbox(runtime.settings.inbound).poll_once(receive_imap) == 1

    assert InboundEmail.select().count() == 1
    assert held(imap, "INBOX") == [] and held(imap, PROCESSED) == [message]


def test_a_message_that_cannot_be_handled_stays_and_the_others_go_on(mailbox_app, imap,
                                                                      caplog):
    mailbox_app()
    poison, good = reply(1), reply(2)
    deliver(imap, poison, good)

    def handle(raw: bytes) -> None:
        if raw == poison:
            raise ValueError("cannot handle this one")
        receive_imap(raw)

    with caplog.at_level(logging.ERROR, logger="workers.mailbox"):
        assert Mailbox(runtime.settings.inbound).poll_once(handle) == 1

    assert [bytes(e.raw) for e in InboundEmail.select()] == [good]
    assert held(imap, "INBOX") == [poison] and held(imap, PROCESSED) == [good]
    (line,) = [r.getMessage() for r in caplog.records]
    assert re.fullmatch(r"mailbox: message \d+ in INBOX was not read; it stays there", line)


def test_idle_brings_a_new_message_at_once(mailbox_app, imap, watcher):
    mailbox_app(**{"inbound.imap_poll_seconds": 300})
    first, second = reply(1), reply(2)
    deliver(imap, first)
    running = watcher()
    wait_until(lambda: held(imap, PROCESSED) == [first], 10)  # its first poll is over
    time.sleep(0.5)  # it waits in IDLE now; the next poll would be in 300 s

    deliver(imap, second)

    assert wait_until(lambda: InboundEmail.select().count() == 2, 10) < 5
    wait_until(lambda: held(imap, PROCESSED) == [first, second], 5)
    assert held(imap, "INBOX") == []
    assert running.end() < 3  # stops promptly, in the middle of an IDLE


def test_without_idle_a_poll_interval_brings_new_mail(mailbox_app, imap, watcher):
    mailbox_app(**{"inbound.imap_idle": False, "inbound.imap_poll_seconds": 1})
    running = watcher()
    time.sleep(0.5)

    deliver(imap, reply())

    wait_until(lambda: held(imap, PROCESSED) == [reply()], 10)
    assert InboundEmail.select().count() == 1
    assert running.end() < 3


def test_a_refused_login_is_one_clear_line_per_try_with_backoff(mailbox_app, imap, watcher,
                                                                caplog):
    mailbox_app(**{"inbound.imap_password": "not the password"})
    deliver(imap, reply())

    with pytest.raises(MailboxError) as refused:
        Mailbox(runtime.settings.inbound).poll_once(receive_imap)
    assert str(refused.value).startswith(
        f"the IMAP server at 127.0.0.1:{imap.port} refused the login of replies: ")
    assert "\n" not in str(refused.value)

    with caplog.at_level(logging.WARNING, logger="workers.mailbox"):
        running = watcher()
        time.sleep(5)
        assert running.thread.is_alive()  # it goes on trying, it does not crash
        assert running.end() < 3
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) in (1, 2), lines  # Dovecot answers in 2 s; then 2 s, 4 s… between tries
    assert all("refused the login of replies" in line and "trying again in" in line
               for line in lines)
    assert InboundEmail.select().count() == 0 and held(imap, "INBOX") == [reply()]


def test_an_unreachable_server_is_one_clear_error(mailbox_app, imap):
    mailbox_app(**{"inbound.imap_url": f"imap://replies@127.0.0.1:{free_port()}/INBOX"})

    with pytest.raises(MailboxError) as refused:
        Mailbox(runtime.settings.inbound).poll_once(receive_imap)

    message = str(refused.value)
    assert message.startswith("cannot connect to the IMAP server at 127.0.0.1")
    assert "\n" not in message and "Traceback" not in message  # one line
    assert InboundEmail.select().count() == 0


def test_the_folder_to_read_comes_from_the_url(mailbox_app, imap):
    with imap.client() as client:
        client.create_folder("Replies")
        client.append("Replies", reply(7))
    deliver(imap, reply(1))
    mailbox_app(**{"inbound.imap_url": imap.url("Replies"),
                   "inbound.imap_processed_folder": "Done"})

    assert Mailbox(runtime.settings.inbound).poll_once(receive_imap) == 1

    assert held(imap, "Done") == [reply(7)] and held(imap, "INBOX") == [reply(1)]


def test_leadbridge_mailbox_once_reads_the_mailbox(mailbox_app, imap, settings_overrides):
    app = mailbox_app()
    deliver(imap, reply(1), reply(2))
    settings = {**settings_overrides, "inbound.imap_url": imap.url(),
                "inbound.imap_password": imap.password}

    result = run_cli(app, settings, "mailbox", "--once")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "2 message(s) read from INBOX\n"
    assert sorted(bytes(e.raw) for e in InboundEmail.select()) == [reply(1), reply(2)]
    assert {e.channel for e in InboundEmail.select()} == {"imap"}
    assert held(imap, "INBOX") == []

    wrong = run_cli(app, {**settings, "inbound.imap_password": "nope"}, "mailbox", "--once")
    assert wrong.returncode == 1
    assert wrong.stderr.splitlines() == [
        f"Error: the IMAP server at 127.0.0.1:{imap.port} refused the login of replies: "
        "[AUTHENTICATIONFAILED] Authentication failed."]


def test_leadbridge_mailbox_stops_on_sigterm(mailbox_app, imap, settings_overrides):
    app = mailbox_app()
    settings = {**settings_overrides, "inbound.imap_url": imap.url(),
                "inbound.imap_password": imap.password}
    process = subprocess.Popen([sys.executable, "-m", "service.ops.cli", "mailbox"], cwd=ROOT,
                               env=leadbridge_env(app, settings), stderr=subprocess.PIPE,
                               text=True)
    try:
        deliver(imap, reply())
        wait_until(lambda: held(imap, PROCESSED) == [reply()], 20)
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=10)
    assert process.returncode == 0, errors
    assert InboundEmail.select().count() == 1


def test_leadbridge_mailbox_without_a_mailbox_is_one_error_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADBRIDGE_")}
    env["LEADBRIDGE_DATA_DIR"] = str(tmp_path / "var")

    for args in (["mailbox"], ["mailbox", "--once"]):
        result = subprocess.run([sys.executable, "-m", "service.ops.cli", *args], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            "Error: inbound.imap_url is empty: set it to the mailbox replies come to, like "
            "imaps://user@host:993/INBOX"]


def test_up_runs_the_mailbox_only_when_there_is_one(tmp_path):
    def loaded(**overrides):
        return config_module.load(str(ROOT / "config.toml"),
                                  {"data_dir": str(tmp_path), **overrides})

    assert parts(loaded()) == PARTS == ("web", "worker", "cron")
    assert parts(loaded(**{"inbound.imap_url": "imaps://replies@mail.example.com/INBOX"})) == (
        "web", "worker", "cron", "mailbox")


def test_up_with_a_mailbox_reads_it(tmp_path, imap):
    import psutil

    from tests.ops.test_up import child_running, eventually, wait_for

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADBRIDGE_")}
    env |= {"LEADBRIDGE_DATA_DIR": str(tmp_path / "var"),
            "LEADBRIDGE_INBOUND__IMAP_URL": imap.url(),
            "LEADBRIDGE_INBOUND__IMAP_PASSWORD": imap.password}
    process = subprocess.Popen([sys.executable, "-m", "service.ops.cli", "up", "--port",
                                str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(f"http://127.0.0.1:{port}/readyz") == 200
        eventually(lambda: child_running(process, "mailbox"), 30, "no mailbox part")
        deliver(imap, reply())
        wait_until(lambda: held(imap, PROCESSED) == [reply()], 30)
        children = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
        assert psutil.wait_procs(children, timeout=10)[1] == []
    finally:
        if process.poll() is None:
            process.kill()
        output = process.communicate(timeout=10)[0]
    assert f"IMAP:   replies read from {imap.url()}" in output
    assert held(imap, "INBOX") == []


def test_a_message_over_the_size_limit_is_read_only_so_far_and_kept_cut(mailbox_app, imap):
    mailbox_app(**{"inbound.max_message_kib": 64})
    big = reply(1) + (b"y" * 70 + b"\r\n") * 2000  # 144 KB
    deliver(imap, big)
    Mailbox(runtime.settings.inbound).poll_once(receive_imap)
    [email] = InboundEmail.select()
    assert email.status == "unmatched" and "larger than inbound.max_message_kib" in email.reason
    assert len(bytes(email.raw)) == 64 * 1024
    assert held(imap, "INBOX") == [] and len(held(imap, PROCESSED)) == 1


def test_a_message_that_always_fails_is_moved_aside_after_three_reads(mailbox_app, imap):
    mailbox_app()
    deliver(imap, reply(1))
    mailbox = Mailbox(runtime.settings.inbound)

    def broken(raw: bytes) -> None:
        raise RuntimeError("cannot be handled")

    for _ in range(3):
        mailbox.poll_once(broken)
    assert held(imap, "INBOX") == [] and held(imap, PROCESSED) == []
    assert held(imap, "Leadbridge/Failed") == [reply(1)]
