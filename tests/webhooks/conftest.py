"""A real HTTP receiver in a thread: it keeps every request and answers as a test says (a
status, a delay, a redirect, a body, or holding the request until told)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from service.core.db import utcnow
from service.core.runtime import runtime
from service.webhooks import endpoints
from tests.conftest import free_port, run_worker


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: datetime


class Receiver:
    def __init__(self, tls: ssl.SSLContext | None = None):
        self.requests: list[Received] = []
        self.status = 204
        self.delay = 0.0
        self.location = ""
        self.reply = b""
        self.hold: threading.Event | None = None  # the next POST waits until it is set
        self.holding = threading.Event()
        self.lock = threading.Lock()
        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        self.server.handle_error = lambda *_: None  # a client gone away is not a test error
        if tls is not None:  # https, as the context's certificate says
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def ids(self) -> list[str]:
        return [request.headers["webhook-id"] for request in self.requests]

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._answer(body)

            def do_GET(self):
                self._answer(b"")

            def _answer(self, body: bytes) -> None:
                with receiver.lock:
                    receiver.requests.append(Received(
                        self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                        body, utcnow()))
                    hold, receiver.hold = receiver.hold, None
                if hold is not None:
                    receiver.holding.set()
                    hold.wait(60)
                time.sleep(receiver.delay)
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", str(len(receiver.reply)))
                self.end_headers()
                self.wfile.write(receiver.reply)

            def log_message(self, *_args):
                pass

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make() -> Receiver:
        made.append(Receiver())
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def receiver(receivers):
    return receivers()


@pytest.fixture
def app(make_app):
    return make_app(**{"outbound.allow_private_urls": True})


class Dripping:
    """A raw-socket endpoint that reads the request, sends `head`, then one more piece of
    `drip(n)` every `every` seconds for a minute (each well within any read timeout);
    keeps how long each client stayed."""

    def __init__(self, head: bytes, drip, every: float):
        self.head, self.drip, self.every = head, drip, every
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.stayed: list[float] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(client,), daemon=True).start()

    def _drip(self, client: socket.socket) -> None:
        with client:
            client.recv(65536)
            started = time.monotonic()
            try:
                client.sendall(self.head)
                for n in range(int(60 / self.every)):
                    time.sleep(self.every)
                    client.sendall(self.drip(n))
            except OSError:
                self.stayed.append(time.monotonic() - started)

    def gone(self, clients: int, within: float = 3.0) -> bool:
        """Whether `clients` have gone (a client gone is seen at the next piece)."""
        waited = time.monotonic() + within
        while len(self.stayed) < clients and time.monotonic() < waited:
            time.sleep(0.05)
        return len(self.stayed) == clients

    def close(self) -> None:
        self.listener.close()


def no_job_failed() -> bool:
    return runtime.queue.failed_job_registry.count == 0


def endpoint_to(receiver: Receiver, **fields):
    """An endpoint for the receiver, saved as an admin would; (endpoint, secret)."""
    return endpoints.create({"url": receiver.url, **fields}, actor="admin@example.com",
                            settings=runtime.settings, now=utcnow())


def sweep_webhooks() -> None:
    """The webhooks sweep as cron runs it, then the worker runs what it queued."""
    runtime.queue.enqueue("workers.jobs.sweep_webhooks")
    run_worker()
