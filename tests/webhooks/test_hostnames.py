"""Internationalised host names and paths: the sender resolves, connects and names the host
(Host header, SNI, certificate check) in its ASCII form (IDNA, UTS #46), and sends the
path percent-encoded, for rows saved before the URL was stored in that form too."""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.core.db import utcnow
from service.core.errors import InvalidInput
from service.core.models import WebhookDelivery, WebhookEndpoint
from service.webhooks.addresses import ascii_host
from tests.conftest import run_worker
from tests.factories import promoted
from tests.webhooks.conftest import Receiver, endpoint_to

FULLWIDTH_LOCALHOST = "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54"


def saved_before(url: str) -> WebhookEndpoint:
    """An endpoint row as it was saved before URLs were stored in ASCII."""
    return WebhookEndpoint.create(url=url, secret="whsec_" + "A" * 32, event_types=[])


def test_the_ascii_form_of_a_host_name():
    assert ascii_host("例え.jp") == "xn--r8jz45g.jp"
    assert ascii_host("ПРИМЕР.рф") == "xn--e1afmkfd.xn--p1ai"
    assert ascii_host(FULLWIDTH_LOCALHOST) == "localhost"
    assert ascii_host("crm.example.com") == "crm.example.com"
    with pytest.raises(InvalidInput, match="not a valid host name"):
        ascii_host("a\u200eb.example")


def test_a_unicode_host_name_is_sent_to_in_its_ascii_form(app, rep, receivers, monkeypatch):
    """例え.jp resolves (in this test's DNS) to the receiver; a fullwidth "localhost" maps
    to localhost. Both get their deliveries, named in ASCII; a healthy endpoint in the same
    batch too."""
    japanese, fullwidth, plain = receivers(), receivers(), receivers()
    real = socket.getaddrinfo
    asked = []

    def dns(host, port, *args, **kwargs):
        asked.append(host)
        if host == "xn--r8jz45g.jp":
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", dns)
    saved_before(f"http://例え.jp:{japanese.port}/hook")
    saved_before(f"http://{FULLWIDTH_LOCALHOST}:{fullwidth.port}/hook")
    endpoint_to(plain)
    promoted(rep, at=utcnow())
    run_worker()
    assert {row.status for row in WebhookDelivery.select()} == {"delivered"}
    assert [r.headers["host"] for r in japanese.requests] == [
        f"xn--r8jz45g.jp:{japanese.port}"] * 2
    assert [r.headers["host"] for r in fullwidth.requests] == [f"localhost:{fullwidth.port}"] * 2
    assert len(plain.requests) == 2
    assert "例え.jp" not in asked, "resolved in ASCII"


def test_a_path_with_unicode_and_spaces_is_sent_percent_encoded(app, rep, receiver):
    saved_before(f"http://127.0.0.1:{receiver.port}/hooks/café crm?team=ventes%20é")
    promoted(rep, at=utcnow())
    run_worker()
    assert [r.path for r in receiver.requests] == [
        "/hooks/caf%C3%A9%20crm?team=ventes%20%C3%A9"] * 2
    assert {row.status for row in WebhookDelivery.select()} == {"delivered"}


def certificate_for(hostname: str, folder) -> tuple[ssl.SSLContext, str]:
    """A TLS server context for `hostname` (a certificate signed by a test authority) and
    the authority's file, for SSL_CERT_FILE. The context keeps the SNI names it hears in
    .heard."""
    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def issued(subject, issuer, public_key, signer, *, ca: bool):
        now = datetime.now(UTC)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(hours=1))
                   .not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True))
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(hostname)]), False)
        return builder.sign(signer, hashes.SHA256())

    authority_key, server_key = key(), key()
    authority_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test authority")])
    authority = issued(authority_name, authority_name, authority_key.public_key(),
                       authority_key, ca=True)
    server = issued(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]),
                    authority_name, server_key.public_key(), authority_key, ca=False)
    pem = serialization.Encoding.PEM
    (folder / "authority.pem").write_bytes(authority.public_bytes(pem))
    (folder / "server.pem").write_bytes(server.public_bytes(pem) + server_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem")
    context.heard = []
    context.sni_callback = lambda _sock, name, _context: context.heard.append(name)
    return context, str(folder / "authority.pem")


def test_https_to_a_unicode_host_name_checks_its_certificate_in_ascii(
        app, rep, tmp_path, monkeypatch):
    """SNI and the certificate check use the ASCII name (fullwidth "localhost" is
    localhost); the same receiver reached by its address fails the certificate check."""
    tls, authority = certificate_for("localhost", tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", authority)
    receiver = Receiver(tls=tls)
    try:
        by_name = saved_before(f"https://{FULLWIDTH_LOCALHOST}:{receiver.port}/hook")
        by_address = saved_before(f"https://127.0.0.1:{receiver.port}/hook")
        promoted(rep, at=utcnow())
        run_worker()
    finally:
        receiver.close()
    named = WebhookDelivery.select().where(WebhookDelivery.endpoint == by_name.id)
    assert {row.status for row in named} == {"delivered"}
    assert [r.headers["host"] for r in receiver.requests] == [f"localhost:{receiver.port}"] * 2
    assert set(tls.heard) == {"localhost", None}, "the name, in ASCII; an address sends none"
    for row in WebhookDelivery.select().where(WebhookDelivery.endpoint == by_address.id):
        assert row.status == "pending" and "certificate" in row.last_error.lower()
