"""POSTing to endpoints: the host resolved at send time, every address checked
(addresses.is_public), and the connection made to the vetted address itself with the
hostname kept for the Host header, SNI and certificate checks, so a name that resolves
elsewhere a moment later (DNS rebinding) reaches nothing private. An internationalised
name is used in its ASCII (IDNA, UTS #46) form throughout. One keep-alive connection per
endpoint for the length of a job; no redirects followed, no proxy; the answer's body read
up to a limit.

Every attempt has a deadline, outbound.timeout_seconds for the whole of it (resolving the
name, connecting over all the addresses, sending, reading the answer's headers and its
excerpt): each step waits at most for the time left, and a watchdog shuts the attempt's
socket down when the deadline passes, so an endpoint that drips its answer a byte at a time
is cut off too, also once http.client has handed the socket to the answer (Connection:
close, or a body without a length). The name is looked up in a thread of its own, as
getaddrinfo cannot be interrupted: an attempt waits for it only until its deadline."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from importlib import metadata
from urllib.parse import quote, urlsplit

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError
from urllib3.exceptions import TimeoutError as WaitedTooLong

from service.core.errors import InvalidInput
from service.core.settings import Settings
from service.webhooks.addresses import ascii_host, is_public, resolve


def _version() -> str:
    try:
        return metadata.version("leadbridge")
    except metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"Leadbridge-Webhooks/{_version()}"
TIMED_OUT = "timed out: no complete answer within outbound.timeout_seconds"
AGAIN_SECONDS = 0.05  # the watchdog shuts the socket again while the attempt goes on
PATH_SAFE = "!#$%&'()*+,/:;=?@[]~"  # what a request target keeps as it is; the rest is %XX
# Errors of an attempt that got no (usable) answer; anything else is the caller's to catch.
SENDING_ERRORS = (HTTPError, http.client.HTTPException, OSError)


class SendError(Exception):
    """The attempt got no HTTP answer (refused address, connection, timeout, TLS): why."""


@dataclass(frozen=True)
class Answer:
    status: int
    excerpt: str | None  # None (inside connections only): the body could not be read


def _ascii(hostname: str) -> str:
    """addresses.ascii_host, its refusal a failed attempt (for a row saved before the URL
    was kept in its ASCII form)."""
    try:
        return ascii_host(hostname)
    except InvalidInput as exc:
        raise SendError(f"refused: {exc.message}") from None


class Watchdog:
    """Shuts down the socket of an attempt that outlives its deadline (a read or a TLS
    handshake waiting on it then ends at once), again every AGAIN_SECONDS until the attempt
    is over, as a socket may be made after the deadline. One thread for the whole job."""

    def __init__(self):
        self.changed = threading.Condition()
        self.target: Target | None = None
        self.deadline = 0.0
        self.fired = False
        self.stopped = False
        self.thread: threading.Thread | None = None

    def watch(self, target: Target, deadline: float) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="webhook-watchdog",
                                           daemon=True)
            self.thread.start()
        with self.changed:
            self.target, self.deadline, self.fired = target, deadline, False
            self.changed.notify()

    def done(self) -> bool:
        """The attempt is over; whether the deadline cut it off."""
        with self.changed:
            self.target = None
            return self.fired

    def stop(self) -> None:
        with self.changed:
            self.stopped = True
            self.changed.notify()

    def _run(self) -> None:
        with self.changed:
            while not self.stopped:
                if self.target is None:
                    self.changed.wait()
                    continue
                left = self.deadline - time.monotonic()
                if left > 0:
                    self.changed.wait(left)
                    continue
                self.fired = True
                self.target.cut_off()
                self.changed.wait(AGAIN_SECONDS)


class Target:
    """One endpoint URL's addresses, vetted once per job, and a keep-alive connection to
    the one that took it (an address that refused is not tried again in the job)."""

    def __init__(self, url: str, settings: Settings, watchdog: Watchdog):
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.hostname = _ascii(parts.hostname or "")
        self.port = parts.port or (443 if self.https else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.path = quote(path, safe=PATH_SAFE)
        self.host_header = _host_header(self.hostname, parts.port)
        self.settings = settings.outbound
        self.watchdog = watchdog
        self.lookup: Lookup | None = None
        self.addresses: list | None = None
        self.refused: SendError | None = None
        self.connection: HTTPConnection | None = None
        self.sock: socket.socket | None = None  # the attempt's socket, TLS or not

    def _vetted(self, deadline: float) -> list:
        """The addresses, looked up once per job (within the deadline), each checked; a
        refusal stands for the job."""
        if self.refused is not None:
            raise self.refused
        if self.addresses is None:
            self.lookup = self.lookup or Lookup(self.hostname, self.port)
            found = self.lookup.result(_left(deadline))  # still going: the next one waits on
            try:
                self.addresses = self._checked(found)
            except SendError as exc:
                self.refused = exc
                raise
        return self.addresses

    def _checked(self, found: list) -> list:
        private = [address for address in found if not is_public(address)]
        if private and not self.settings.allow_private_urls:
            raise SendError(f"refused: {self.hostname} resolves to a private or reserved "
                            f"address ({private[0]}); outbound.allow_private_urls is off")
        if not self.https and not private:
            raise SendError("refused: plain http is allowed only to a private address")
        return found

    def post(self, body: bytes, headers: dict[str, str], *, seconds: float) -> Answer:
        """POST within `seconds`, over the kept connection or to the first address that
        takes a new one; a connection made and then lost is not tried elsewhere (it may have
        arrived). Whatever else is raised goes up, the watch ended and the connection
        closed (it may be half way through a request)."""
        headers = {**headers, "Host": self.host_header, "User-Agent": USER_AGENT}
        deadline = time.monotonic() + seconds
        answer: Answer | None = None
        self.watchdog.watch(self, deadline)
        try:
            answer, why = self._exchange(body, headers, deadline), None
        except SendError as exc:
            why = str(exc)
        except SENDING_ERRORS as exc:  # once the socket is shut, the deadline is why
            why = TIMED_OUT if self.watchdog.fired else _why(exc)
        finally:
            cut_off = self.watchdog.done()
            if answer is None or cut_off:
                self.close()
        if answer is None:
            raise SendError(why)
        if answer.excerpt is None:
            why = TIMED_OUT if cut_off else "the connection broke"
            return Answer(answer.status, f"(the body could not be read: {why})")
        return answer

    def _exchange(self, body: bytes, headers: dict[str, str], deadline: float) -> Answer:
        connection = self._connected(self._vetted(deadline), deadline)
        connection.timeout = _left(deadline)
        connection.request("POST", self.path, body=body, headers=headers,
                           preload_content=False, decode_content=False)
        connection.timeout = _left(deadline)
        response = connection.getresponse()
        if self.watchdog.fired:  # the headers ended as the socket was shut: no answer
            raise SendError(TIMED_OUT)
        excerpt = _excerpt(response, self.settings.response_excerpt_bytes)
        if excerpt is None or not response.closed or connection.sock is None:
            response.close()  # a longer body is not read on; a socket handed over is done
            self.close()
        return Answer(response.status, excerpt)

    def _connected(self, addresses: list, deadline: float) -> HTTPConnection:
        if self.connection is not None and self.connection.is_connected:
            return self.connection
        self.close()  # dropped by the endpoint while idle
        last: Exception | None = None
        candidates = list(addresses)
        for tried, address in enumerate(candidates):
            share = _left(deadline) / (len(candidates) - tried)  # a chance for each
            self.connection = self._connection(address, seconds=share)
            try:
                self.connection.connect()
            except (NewConnectionError, ConnectTimeoutError) as exc:
                last = exc
                self.close()
                addresses.remove(address)
                continue
            self.sock = self.connection.sock  # kept: http.client may hand it to the answer
            addresses.remove(address)  # the one that took it is tried first next time
            addresses.insert(0, address)
            return self.connection
        raise SendError(_why(last) if last else "could not connect: no address left")

    def _connection(self, address, *, seconds: float) -> HTTPConnection:
        if not self.https:
            return HTTPConnection(str(address), self.port, timeout=seconds)
        return HTTPSConnection(str(address), self.port, timeout=seconds,
                               server_hostname=self.hostname, assert_hostname=self.hostname,
                               cert_reqs="CERT_REQUIRED")

    def cut_off(self) -> None:
        """The deadline passed (the watchdog's thread): end what waits on the attempt's
        socket, or on the one being connected (or its TLS handshake)."""
        connection = self.connection
        sock = self.sock or (connection.sock if connection is not None else None)
        if sock is None:
            return
        try:  # the plain socket's shutdown, under TLS too: the TLS state stays the reader's
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass  # closed already

    def close(self) -> None:
        connection, self.connection, self.sock = self.connection, None, None
        if connection is not None:
            connection.close()


class Lookup:
    """The host name resolved in a thread of its own, once; each attempt waits for it only
    as long as its deadline allows (a lookup that hangs goes on alone, and ends)."""

    def __init__(self, hostname: str, port: int):
        self.hostname, self.port = hostname, port
        self.found: list | None = None
        self.error: SendError | None = None
        self.ended = threading.Event()
        threading.Thread(target=self._run, name="webhook-lookup", daemon=True).start()

    def _run(self) -> None:
        try:
            self.found = resolve(self.hostname, self.port)
        except InvalidInput as exc:
            self.error = SendError(str(exc))
        except Exception as exc:  # the thread's end: the attempt reads why
            self.error = SendError(f"{self.hostname} does not resolve: {_why(exc)}")
        finally:
            self.ended.set()

    def result(self, seconds: float) -> list:
        """The addresses (a copy: the target reorders its own), or SendError."""
        if not self.ended.wait(seconds):
            raise SendError(f"timed out resolving {self.hostname}")
        if self.error is not None:
            raise self.error
        return list(self.found or [])


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise SendError(TIMED_OUT)
    return left


def _host_header(hostname: str, port: int | None) -> str:
    try:
        host = f"[{hostname}]" if ipaddress.ip_address(hostname).version == 6 else hostname
    except ValueError:
        host = hostname
    return f"{host}:{port}" if port else host


def _excerpt(response, limit: int) -> str | None:
    """The start of the answer's body, as text; None if it could not be read."""
    try:
        data = response.read(limit + 1)
    except SENDING_ERRORS:
        return None
    return data[:limit].decode("utf-8", errors="replace")


def _why(exc: BaseException | None) -> str:
    """A short reason for the delivery log."""
    if isinstance(exc, NewConnectionError):  # before timeouts: urllib3 makes it one
        reason = str(exc).rpartition(": ")[2] or "no connection"
        return f"could not connect: {reason}"
    if isinstance(exc, WaitedTooLong | TimeoutError):
        return "timed out waiting for the endpoint (outbound.timeout_seconds)"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


class Connections:
    """The targets of one job, by endpoint id, and the job's watchdog; closed at the end of
    the job. A target whose address was refused stays refused for the job."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.watchdog = Watchdog()
        self.targets: dict[int, Target | SendError] = {}

    def post(self, endpoint_id: int, url: str, body: bytes, headers: dict[str, str], *,
             seconds: float) -> Answer:
        target = self.targets.get(endpoint_id)
        if target is None:
            try:
                target = Target(url, self.settings, self.watchdog)
            except SendError as exc:
                target = exc
            self.targets[endpoint_id] = target
        if isinstance(target, SendError):
            raise target
        return target.post(body, headers, seconds=seconds)

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *_exc) -> None:
        self.watchdog.stop()
        for target in self.targets.values():
            if isinstance(target, Target):
                target.close()
