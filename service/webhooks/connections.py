"""POSTing to endpoints: the host resolved at send time, every address checked
(addresses.is_public), and the connection made to the vetted address itself with the
hostname kept for the Host header, SNI and certificate checks, so a name that resolves
elsewhere a moment later (DNS rebinding) reaches nothing private. One keep-alive pool per
endpoint for the length of a job; no redirects followed; the answer's body read up to a
limit."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from importlib import metadata
from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError
from urllib3.exceptions import TimeoutError as WaitedTooLong

from service.core.errors import InvalidInput
from service.core.settings import Settings
from service.webhooks.addresses import is_public, resolve


def _version() -> str:
    try:
        return metadata.version("leadbridge")
    except metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"Leadbridge-Webhooks/{_version()}"


class SendError(Exception):
    """The attempt got no HTTP answer (refused address, connection, timeout, TLS): why."""


@dataclass(frozen=True)
class Answer:
    status: int
    excerpt: str


class Target:
    """One endpoint URL's addresses, vetted once per job, and a pool to the one that took
    the connection."""

    def __init__(self, url: str, settings: Settings):
        parts = urlsplit(url)
        self.https = parts.scheme == "https"
        self.hostname = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.host_header = _host_header(self.hostname, parts.port)
        self.settings = settings.outbound
        self.addresses = self._vetted()
        self.pools: list[urllib3.HTTPConnectionPool] = []

    def _vetted(self) -> list:
        try:
            found = resolve(self.hostname, self.port)
        except InvalidInput as exc:
            raise SendError(str(exc)) from None
        private = [address for address in found if not is_public(address)]
        if private and not self.settings.allow_private_urls:
            raise SendError(f"refused: {self.hostname} resolves to a private or reserved "
                            f"address ({private[0]}); outbound.allow_private_urls is off")
        if not self.https and not private:
            raise SendError("refused: plain http is allowed only to a private address")
        return found

    def post(self, body: bytes, headers: dict[str, str]) -> Answer:
        """POST to the first address that takes the connection (the pool that did stays
        first); a connection made and then lost is not tried elsewhere (it may have
        arrived)."""
        headers = {**headers, "Host": self.host_header, "User-Agent": USER_AGENT}
        last = None
        for pool in self._pools():
            try:
                return self._post(pool, body, headers)
            except (NewConnectionError, ConnectTimeoutError) as exc:
                last = exc
                self.pools.remove(pool)
                pool.close()
        raise SendError(_why(last))

    def _pools(self) -> list[urllib3.HTTPConnectionPool]:
        if not self.pools:
            self.pools = [self._pool(address) for address in self.addresses]
        return list(self.pools)

    def _pool(self, address) -> urllib3.HTTPConnectionPool:
        timeout = urllib3.Timeout(connect=self.settings.timeout_seconds,
                                  read=self.settings.timeout_seconds)
        if not self.https:
            return urllib3.HTTPConnectionPool(str(address), self.port, timeout=timeout,
                                              maxsize=1, retries=False)
        return urllib3.HTTPSConnectionPool(
            str(address), self.port, timeout=timeout, maxsize=1, retries=False,
            server_hostname=self.hostname, assert_hostname=self.hostname,
            cert_reqs="CERT_REQUIRED")

    def _post(self, pool, body: bytes, headers: dict[str, str]) -> Answer:
        try:
            response = pool.urlopen("POST", self.path, body=body, headers=headers,
                                    redirect=False, retries=False, preload_content=False,
                                    decode_content=False, assert_same_host=False)
        except (NewConnectionError, ConnectTimeoutError):
            raise
        except (HTTPError, OSError) as exc:
            raise SendError(_why(exc)) from None
        return Answer(response.status, _excerpt(response, self.settings.response_excerpt_bytes))

    def close(self) -> None:
        for pool in self.pools:
            pool.close()


def _host_header(hostname: str, port: int | None) -> str:
    try:
        host = f"[{hostname}]" if ipaddress.ip_address(hostname).version == 6 else hostname
    except ValueError:
        host = hostname
    return f"{host}:{port}" if port else host


def _excerpt(response, limit: int) -> str:
    """The start of the answer's body, as text; a longer body is not read on (the
    connection is closed instead of kept)."""
    try:
        data = response.read(limit + 1)
    except (HTTPError, OSError) as exc:
        data = f"(the body could not be read: {_why(exc)})".encode()
        response.close()
    if len(data) > limit:
        response.close()
    response.release_conn()
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
    """The targets of one job, by endpoint id; closed at the end of the job. A target whose
    address was refused stays refused for the job."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.targets: dict[int, Target | SendError] = {}

    def post(self, endpoint_id: int, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        target = self.targets.get(endpoint_id)
        if target is None:
            try:
                target = Target(url, self.settings)
            except SendError as exc:
                target = exc
            self.targets[endpoint_id] = target
        if isinstance(target, SendError):
            raise target
        return target.post(body, headers)

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *_exc) -> None:
        for target in self.targets.values():
            if isinstance(target, Target):
                target.close()
