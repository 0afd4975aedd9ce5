"""A real IMAP server for the mailbox tests: a private Dovecot started by .ci/dovecot (never
skipped: `bash .ci/debian-packages` installs Debian's dovecot-imapd), emptied between tests."""

from __future__ import annotations

import subprocess
import time
from typing import NamedTuple

import pytest
from imapclient import IMAPClient

from tests.conftest import ROOT, free_port


class ImapServer(NamedTuple):
    host: str
    port: int
    user: str
    password: str

    def url(self, folder: str = "INBOX") -> str:
        return f"imap://{self.user}@{self.host}:{self.port}/{folder}"

    def client(self) -> IMAPClient:
        """A logged-in connection of the test's own (use it in a with block)."""
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        return client


@pytest.fixture(scope="session")
def imap_server(tmp_path_factory):
    """Dovecot on a free loopback port with one user, until the end of the session."""
    folder = tmp_path_factory.mktemp("dovecot")
    server = ImapServer("127.0.0.1", free_port(), "replies", "imap test password")
    output = open(folder / "output.log", "w+")
    process = subprocess.Popen(
        ["bash", str(ROOT / ".ci" / "dovecot"), str(folder / "instance"), str(server.port),
         server.user, server.password], stdout=output, stderr=subprocess.STDOUT,
        start_new_session=True)

    def failed(why: str) -> AssertionError:
        output.seek(0)
        log = folder / "instance" / "dovecot.log"
        return AssertionError(f"Dovecot {why}:\n{output.read()}"
                              f"{log.read_text() if log.exists() else ''}")

    deadline = time.monotonic() + 30
    while True:
        try:
            with server.client():
                break
        except OSError:
            if process.poll() is not None:
                raise failed(f"exited with code {process.returncode}") from None
            if time.monotonic() > deadline:
                process.kill()
                raise failed("did not answer within 30 s") from None
            time.sleep(0.1)
    yield server
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    output.close()


@pytest.fixture
def imap(imap_server) -> ImapServer:
    """The Dovecot mailbox, emptied: INBOX holds no message and there is no other folder."""
    with imap_server.client() as client:
        folders = [name for _, _, name in client.list_folders() if name != "INBOX"]
        for name in sorted(folders, key=len, reverse=True):  # a subfolder before its parent
            if client.folder_exists(name):  # a parent made for its subfolder goes with it
                client.delete_folder(name)
        client.select_folder("INBOX")
        client.delete_messages(client.search("ALL"))
        client.expunge()
    return imap_server
