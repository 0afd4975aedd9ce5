"""The SSRF guard: at save time (addresses.check_url) and again at connect time, where the
sender resolves the name itself and connects to the address it checked."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.core.db import utcnow
from service.core.errors import InvalidInput
from service.core.models import WebhookDelivery, WebhookEndpoint
from service.core.runtime import runtime
from service.webhooks import endpoints
from service.webhooks.addresses import check_url
from tests.conftest import run_worker
from tests.factories import promoted
from tests.webhooks.conftest import endpoint_to

REFUSED = [
    "https://10.1.2.3/hook", "https://192.168.0.10/", "https://172.16.5.5/",
    "https://127.0.0.1:8443/", "https://[::1]/", "https://169.254.169.254/latest/meta-data/",
    "https://[fd00:ec2::254]/", "https://[::ffff:127.0.0.1]/", "https://[::ffff:a9fe:a9fe]/",
    "https://0.0.0.0/", "https://100.64.0.1/", "https://localhost/",
    # IPv6 addresses that lead to a private IPv4 one: NAT64 (well-known and local-use
    # prefixes), 6to4, IPv4-compatible, SIIT; site-local; Teredo; an IETF-reserved IPv4
    "https://[64:ff9b::a00:5]/", "https://[64:ff9b::a9fe:a9fe]/", "https://[64:ff9b:1::a00:5]/",
    "https://[2002:a9fe:a9fe::1]/", "https://[::7f00:1]/", "https://[::ffff:0:7f00:1]/",
    "https://[fec0::1]/", "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    "https://192.0.0.8/", "https://198.18.0.1/", "https://[64:ff9b:1:7f00:1:808:808:0]/",
    "https://[5f00::1]/", "https://[3fff::1]/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_private_loopback_link_local_and_metadata_addresses_are_refused(url):
    with pytest.raises(InvalidInput, match="private or reserved"):
        check_url(url, allow_private=False)
    assert check_url(url, allow_private=True) == url


@pytest.mark.parametrize("url", ["http://93.184.216.34/hook", "ftp://10.0.0.1/",
                                 "https://user:pw@93.184.216.34/", "https://93.184.216.34:0/",
                                 "https://93.184.216.34:99999/", "https://", ""])
def test_plain_http_to_a_public_address_and_malformed_urls_are_refused(url):
    with pytest.raises(InvalidInput):
        check_url(url, allow_private=True)


def test_a_nat64_address_of_a_public_ipv4_one_is_public():
    assert check_url("https://[64:ff9b::808:808]/", allow_private=False) == \
        "https://[64:ff9b::808:808]/"


def test_an_internationalised_name_is_kept_in_its_ascii_form():
    """Resolving, the Host header, SNI and the certificate all need the IDNA form; a
    full-width name that folds to localhost is judged as localhost."""
    assert check_url("https://ｌｏｃａｌｈｏｓｔ:8443/hook?x=1", allow_private=True) == \
        "https://localhost:8443/hook?x=1"
    with pytest.raises(InvalidInput, match="localhost resolves to a private"):
        check_url("https://ｌｏｃａｌｈｏｓｔ/", allow_private=False)
    with pytest.raises(InvalidInput, match="not a valid host name"):
        check_url("https://ex..ample.例え/", allow_private=True)


def test_a_name_dns_allows_but_idna_does_not_is_kept(monkeypatch):
    """Underscores are common in real host names (crm_hooks.example.com) and DNS has them."""
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, **_: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))])
    assert check_url("https://crm_hooks.example.com/in", allow_private=False) == \
        "https://crm_hooks.example.com/in"


def test_https_to_a_public_address_and_http_to_an_allowed_private_one_pass():
    assert check_url(" https://93.184.216.34/hook ", allow_private=False) == \
        "https://93.184.216.34/hook"
    assert check_url("http://127.0.0.1:8080/", allow_private=True) == "http://127.0.0.1:8080/"


def test_an_endpoint_cannot_be_saved_with_a_private_address(make_app):
    make_app()
    with pytest.raises(InvalidInput, match="private or reserved"):
        endpoints.create({"url": "https://169.254.169.254/"}, actor="t",
                         settings=runtime.settings, now=utcnow())
    assert WebhookEndpoint.select().count() == 0


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.builds("https://{}".format, st.text()),
                 st.builds("http://[{}]/".format, st.text(alphabet="0123456789abcdef:.%[]"))),
       st.booleans())
def test_check_url_raises_nothing_but_invalid_input(url, allow_private):
    try:
        assert isinstance(check_url(url, allow_private=allow_private), str)
    except InvalidInput:
        pass


def test_an_endpoint_saved_when_private_was_allowed_is_refused_at_connect_time(
        make_app, rep, receiver):
    make_app(**{"outbound.allow_private_urls": True})
    endpoint_to(receiver, event_types=["lead.mql"])
    make_app(**{"outbound.allow_private_urls": False})
    promoted(rep, at=utcnow())
    run_worker()
    [delivery] = WebhookDelivery.select()
    assert receiver.requests == []
    assert delivery.status == "pending" and delivery.attempts == 1
    assert delivery.last_error.startswith("refused: 127.0.0.1 resolves to a private")
    assert "outbound.allow_private_urls is off" in delivery.last_error


def test_a_name_that_resolves_to_loopback_at_send_time_is_refused(make_app, rep, receiver):
    """DNS rebinding: the name passed the check when it was saved, and now resolves to
    loopback."""
    make_app()
    WebhookEndpoint.create(url=f"https://localhost:{receiver.port}/hook", secret="whsec_"
                           + "A" * 32, event_types=["lead.mql"])
    promoted(rep, at=utcnow())
    run_worker()
    [delivery] = WebhookDelivery.select()
    assert receiver.requests == [] and delivery.status == "pending"
    assert "localhost resolves to a private or reserved address" in delivery.last_error


def test_the_sender_connects_to_the_address_it_checked(app, rep, receiver, monkeypatch):
    """The name is resolved once, checked, and the connection made to that address with the
    name in the Host header: a second answer from DNS (rebinding) is never used."""
    real = socket.getaddrinfo
    asked = []

    def rebinding_dns(host, port, *args, **kwargs):
        if host != "crm.rebind.test":
            return real(host, port, *args, **kwargs)
        asked.append(host)
        address = "127.0.0.1" if len(asked) == 1 else "192.0.2.1"  # then elsewhere
        return real(address, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    WebhookEndpoint.create(url=f"http://crm.rebind.test:{receiver.port}/hook",
                           secret="whsec_" + "A" * 32, event_types=["lead.mql"])
    promoted(rep, at=utcnow())
    run_worker()
    assert len(asked) == 1, "the connection did not look the name up again"
    [request] = receiver.requests
    assert request.headers["host"] == f"crm.rebind.test:{receiver.port}"
    assert WebhookDelivery.get().status == "delivered"
