"""The IMAP mailbox replies come to (`inbound.imap_url`). Each message is handed to receive()
and only then moved to `inbound.imap_processed_folder`: never deleted, and read again after
a crash between the two (receive() keeps an email once, so it is not acted on twice)."""

from __future__ import annotations

import ast
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from urllib.parse import unquote, urlsplit

from imapclient import DELETED, IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from service.core import db
from service.core.db import utcnow
from service.core.runtime import runtime
from service.core.settings import Inbound
from service.inbound.receive import receive

log = logging.getLogger(__name__)

FETCH_CHUNK = 20  # messages per FETCH
FAILED_AFTER = 3  # reads of a message that fail before it is moved aside, never deleted
TIMEOUT_SECONDS = 60.0  # to connect, and for each command's answer
IDLE_RENEW_SECONDS = 25 * 60  # RFC 2177: servers may end an IDLE after 29 minutes
IDLE_CHECK_SECONDS = 1.0  # how soon a watcher sees that it is asked to stop
FIRST_DELAY, LONGEST_DELAY = 2.0, 300.0  # seconds before connecting again, doubling

Handle = Callable[[bytes], object]


class MailboxError(Exception):
    """The mailbox cannot be read now: the server is unreachable, refused the login, or
    dropped the connection. The message says which, in one line."""


def said(exc: Exception) -> str:
    """What went wrong, in one line (imaplib words a server's answer as a bytes literal)."""
    text = str(exc) or type(exc).__name__
    if re.fullmatch(r"b(['\"]).*\1", text, re.DOTALL):
        text = ast.literal_eval(text).decode("utf-8", "replace")
    return " ".join(text.split())


def receive_imap(raw: bytes) -> None:
    """The production handle: one email through receive(), on this process's backends."""
    db.connect()
    try:
        receive(raw, channel="imap", settings=runtime.settings, secret=runtime.secret_key,
                now=utcnow())
    finally:
        db.release()


class Mailbox:
    """A reader of the folder named by `inbound.imap_url` (INBOX when it names none)."""

    def __init__(self, inbound: Inbound):
        url = urlsplit(inbound.imap_url)
        self.tls = url.scheme == "imaps"
        self.host = url.hostname or ""
        self.port = url.port or (993 if self.tls else 143)
        self.user = unquote(url.username or "")
        self.password = inbound.imap_password.get_secret_value()
        self.folder = unquote(url.path.strip("/")) or "INBOX"
        self.processed = inbound.imap_processed_folder
        self.poll_seconds = inbound.imap_poll_seconds
        self.idle = inbound.imap_idle
        self.limit = inbound.max_message_kib * 1024
        self.failed = self.processed.rpartition("/")[0] + "/Failed" if "/" in self.processed \
            else self.processed + "-Failed"
        self.failures: dict[int, int] = {}
        self.client: IMAPClient | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def poll_once(self, handle: Handle) -> int:
        """Hand every message of the folder to `handle`, moving each it returned from to
        the processed folder; one it raised on stays where it is. Returns how many were
        read."""
        client = self.connected()
        try:
            client.select_folder(self.folder)
            uids = client.search("UNDELETED")
            read = 0
            for start in range(0, len(uids), FETCH_CHUNK):
                for uid, raw in self.fetched(client, uids[start:start + FETCH_CHUNK]):
                    read += self.take(client, uid, raw, handle)
            return read
        except IMAPClientAbortError as exc:
            self.close()
            raise MailboxError(f"the IMAP server at {self.where} dropped the connection: "
                               f"{said(exc)}") from None
        except (OSError, IMAPClientError) as exc:
            self.close()
            raise MailboxError(f"cannot read {self.folder} at {self.where}: "
                               f"{said(exc)}") from None

    def fetched(self, client: IMAPClient, uids: list[int]) -> list[tuple[int, bytes | None]]:
        """The messages, in order; one larger than inbound.max_message_kib only up to one
        byte past it (receive() keeps it cut), so memory stays bounded."""
        sizes = {uid: data.get(b"RFC822.SIZE", 0)
                 for uid, data in client.fetch(uids, ["RFC822.SIZE"]).items()}
        small = [uid for uid in sorted(sizes) if sizes[uid] <= self.limit]
        found = {uid: data.get(b"BODY[]") for uid, data in
                 (client.fetch(small, ["BODY.PEEK[]"]).items() if small else ())}
        for uid in sorted(set(sizes) - set(small)):
            part = client.fetch([uid], [f"BODY.PEEK[]<0.{self.limit + 1}>"]).get(uid, {})
            found[uid] = part.get(b"BODY[]<0>")
        return sorted(found.items())

    def take(self, client: IMAPClient, uid: int, raw: bytes | None, handle: Handle) -> int:
        """One message: handled, then moved (1); or left where it is (0)."""
        if raw is None:  # gone meanwhile (another reader took it)
            return 0
        try:
            handle(raw)
        except Exception:
            self.failures[uid] = self.failures.get(uid, 0) + 1
            if self.failures[uid] < FAILED_AFTER:
                log.exception("mailbox: message %s in %s was not read; it stays there", uid,
                              self.folder)
                return 0
            log.exception("mailbox: message %s could not be read %d times; moved to %s",
                          uid, FAILED_AFTER, self.failed)
            self.move(client, uid, self.failed)
            return 0
        try:
            self.move(client, uid)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            log.error("mailbox: message %s was read but not moved to %s (%s); it is read "
                      "again next time, and kept once", uid, self.processed, said(exc))
        return 1

    def move(self, client: IMAPClient, uid: int, folder: str = "") -> None:
        """To the processed folder (or `folder`): MOVE, else COPY and expunge this message
        alone (without UID EXPUNGE it stays flagged \\Deleted, and is not read again)."""
        folder = folder or self.processed
        if folder != self.processed and not client.folder_exists(folder):
            client.create_folder(folder)
        if client.has_capability("MOVE"):
            client.move([uid], folder)
            return
        client.copy([uid], folder)
        client.add_flags([uid], [DELETED])
        if client.has_capability("UIDPLUS"):
            client.uid_expunge([uid])

    def watch(self, handle: Handle, stop: threading.Event) -> None:
        """Read the folder, then wait for mail (IDLE, else `imap_poll_seconds`), until `stop`
        is set; after a failure connect again later (one line each)."""
        log.info("mailbox: reading %s at %s, moving what is read to %s", self.folder,
                 self.where, self.processed)
        delay = FIRST_DELAY
        while not stop.is_set():
            try:
                read = self.poll_once(handle)
                if read:
                    log.info("mailbox: %d message(s) read from %s", read, self.folder)
                delay = FIRST_DELAY
                self.wait_for_mail(stop)
            except MailboxError as exc:
                log.warning("mailbox: %s; trying again in %.0fs", exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, LONGEST_DELAY)
        self.close()

    def wait_for_mail(self, stop: threading.Event) -> None:
        """Until new mail arrives (IDLE), `imap_poll_seconds` pass, or `stop` is set."""
        client = self.client
        if client is None or not (self.idle and client.has_capability("IDLE")):
            stop.wait(self.poll_seconds)
            return
        deadline = time.monotonic() + min(self.poll_seconds, IDLE_RENEW_SECONDS)
        try:
            client.idle()
            while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                news = client.idle_check(timeout=min(IDLE_CHECK_SECONDS, left))
                if any(len(item) > 1 and item[1] == b"EXISTS" for item in news):
                    break
            client.idle_done()
        except (OSError, IMAPClientError) as exc:
            self.close()
            raise MailboxError(f"the IMAP server at {self.where} dropped the connection "
                               f"while waiting for mail: {said(exc)}") from None

    def connected(self) -> IMAPClient:
        """The open connection, or a new one: TLS for imaps, STARTTLS when an imap server
        offers it; logged in, with the processed folder made."""
        if self.client is not None:
            return self.client
        try:
            client = IMAPClient(self.host, self.port, ssl=self.tls, timeout=TIMEOUT_SECONDS,
                                ssl_context=ssl.create_default_context() if self.tls else None)
        except (OSError, IMAPClientError) as exc:
            raise MailboxError(f"cannot connect to the IMAP server at {self.where}: "
                               f"{said(exc)}") from None
        try:
            if not self.tls and client.has_capability("STARTTLS"):
                client.starttls(ssl.create_default_context())
            client.login(self.user, self.password)
            if not client.folder_exists(self.processed):
                client.create_folder(self.processed)
                client.subscribe_folder(self.processed)
        except LoginError as exc:
            self.shut(client)
            raise MailboxError(f"the IMAP server at {self.where} refused the login of "
                               f"{self.user}: {said(exc)}") from None
        except (OSError, IMAPClientError) as exc:
            self.shut(client)
            raise MailboxError(f"cannot use the IMAP server at {self.where}: "
                               f"{said(exc)}") from None
        self.client = client
        return client

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            self.shut(client)

    @staticmethod
    def shut(client: IMAPClient) -> None:
        try:
            client.logout()
        except (OSError, IMAPClientError):
            with suppress(OSError, IMAPClientError):
                client.shutdown()
