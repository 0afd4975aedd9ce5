"""The guard against server-side request forgery: an endpoint must be https on a public
address, checked when it is saved and again (by the sender) at every connection, so a name
that resolves elsewhere later (DNS rebinding) reaches nothing private."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

import idna

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
    host = ascii_host(parts.hostname)
    addresses = resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    private = [address for address in addresses if not is_public(address)]
    if private and not allow_private:
        raise InvalidInput(f"{host} resolves to a private or reserved address "
                           f"({private[0]}); endpoints must be on the public internet")
    if parts.scheme == "http" and not (allow_private and private):
        raise InvalidInput("the endpoint URL must use https (plain http is allowed only to a "
                           "private address, with outbound.allow_private_urls)")
    return url if host == parts.hostname else _with_host(parts, host)


def ascii_host(hostname: str) -> str:
    """The host name as DNS, TLS and the Host header carry it: an internationalised name in
    its IDNA (UTS #46) form; an address as it is."""
    if hostname.isascii():  # an address, or a name as DNS has it (underscores and all)
        return hostname
    try:
        return idna.encode(hostname.rstrip("."), uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidInput(f"{hostname!r} is not a valid host name: {exc}") from None


def _with_host(parts, host: str) -> str:
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError) as exc:  # ValueError: a NUL in it
        raise InvalidInput(f"{host} does not resolve: {exc}") from None
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in found]


# Networks that may carry an IPv4 address in their last 32 bits, and lead to it: NAT64 (the
# well-known and the local-use prefix), IPv4-compatible and IPv4-translated (SIIT) addresses.
EMBEDDING_V4 = tuple(ipaddress.ip_network(net) for net in (
    "64:ff9b::/96", "::/96", "::ffff:0:0:0/96"))
# Not for the public internet whatever the library's tables say: IETF protocol assignments
# (192.0.0.0/24, in which Python counts some as global), benchmarking, site-local IPv6,
# Teredo, local-use NAT64 (where the IPv4 address may sit anywhere), segment routing (SRv6)
# and documentation (3fff::/20).
RESERVED = tuple(ipaddress.ip_network(net) for net in (
    "192.0.0.0/24", "198.18.0.0/15", "fec0::/10", "2001::/32", "64:ff9b:1::/48",
    "5f00::/16", "3fff::/20"))


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Globally routable: not loopback, private, link-local (cloud metadata), shared,
    multicast, reserved or unspecified. An IPv6 address that leads to an IPv4 one (mapped,
    NAT64, 6to4, IPv4-compatible) is judged by that IPv4 address; Teredo is refused."""
    embedded = _embedded_v4(address)
    if embedded is not None:
        return is_public(embedded)
    if any(address in network for network in RESERVED if network.version == address.version):
        return False
    return address.is_global and not address.is_multicast


def _embedded_v4(address) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address != ipaddress.IPv6Address("::") and any(address in net for net in EMBEDDING_V4):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
