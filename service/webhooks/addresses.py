"""The guard against server-side request forgery: an endpoint must be https on a public
address, checked when it is saved and again (by the sender) at every connection, so a name
that resolves elsewhere later (DNS rebinding) reaches nothing private."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from service.core.errors import InvalidInput

MAX_URL = 2000


def check_url(url: str, *, allow_private: bool) -> str:
    """The URL, stripped, if an endpoint may have it; else InvalidInput saying why."""
    url = (url or "").strip()
    if not url or len(url) > MAX_URL:
        raise InvalidInput(f"give the endpoint's URL (up to {MAX_URL} characters)")
    try:
        parts = urlsplit(url)
    except ValueError:  # say, an unclosed [ of an IPv6 address
        raise InvalidInput("the endpoint URL is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput("the endpoint URL must start with https:// and name a host")
    if parts.username or parts.password:
        raise InvalidInput("put no user name or password in the endpoint URL")
    try:
        if parts.port == 0:
            raise ValueError("port 0")
    except ValueError:
        raise InvalidInput("the endpoint URL's port is not a number from 1 to 65535") from None
    addresses = resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    private = [address for address in addresses if not is_public(address)]
    if private and not allow_private:
        raise InvalidInput(f"{parts.hostname} resolves to a private or reserved address "
                           f"({private[0]}); endpoints must be on the public internet")
    if parts.scheme == "http" and not (allow_private and private):
        raise InvalidInput("the endpoint URL must use https (plain http is allowed only to a "
                           "private address, with outbound.allow_private_urls)")
    return url


def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:  # ValueError: a NUL in it
        raise InvalidInput(f"{host} does not resolve: {exc}") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable: not loopback, private, link-local (cloud metadata), shared,
    multicast, reserved or unspecified; an IPv4-mapped IPv6 address is judged as IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast
