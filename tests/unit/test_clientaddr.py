"""Whose request it is (issue 13): ``X-Forwarded-For`` is believed only from the configured trusted
proxies, and then its right-most address that is not a trusted proxy is the client."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from posog.core.clientaddr import TrustedProxies
from posog.settings import Settings


def scope(peer: str | None, *forwarded: str) -> dict[str, object]:
    return {
        "type": "http",
        "client": (peer, 40000) if peer else None,
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded] + [(b"host", b"lko.test")],
    }


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() -> None:
    proxies = TrustedProxies()
    assert not proxies
    assert proxies.client_of(scope("198.51.100.9", "1.2.3.4")) == "198.51.100.9"
    assert proxies.client_of(scope(None, "1.2.3.4")) == "unknown"


def test_an_untrusted_peer_cannot_name_another_client() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    assert proxies.client_of(scope("198.51.100.9", "10.0.0.1", "1.2.3.4")) == "198.51.100.9"


def test_from_a_trusted_proxy_the_right_most_untrusted_address_is_the_client() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "192.168.1.1"])
    # A client prepending forged entries only adds to the left of what the proxy saw.
    assert proxies.client_of(scope("10.0.0.2", "6.6.6.6, 203.0.113.7")) == "203.0.113.7"
    # Chains of proxies: their own entries are skipped.
    assert proxies.client_of(scope("10.0.0.2", "6.6.6.6, 203.0.113.7, 192.168.1.1, 10.9.9.9")) == "203.0.113.7"
    # Several header lines are one list, in order.
    assert proxies.client_of(scope("10.0.0.2", "6.6.6.6", "203.0.113.8")) == "203.0.113.8"
    # Ports and IPv6 brackets are not part of the address.
    assert proxies.client_of(scope("10.0.0.2", "203.0.113.9:5555")) == "203.0.113.9"
    assert proxies.client_of(scope("10.0.0.2", "[2001:db8::7]:443")) == "2001:db8::7"
    # Only trusted proxies in the header: the farthest of them; no header at all: the proxy itself.
    assert proxies.client_of(scope("10.0.0.2", "10.1.1.1, 10.2.2.2")) == "10.1.1.1"
    assert proxies.client_of(scope("10.0.0.2")) == "10.0.0.2"
    assert proxies.client_of(scope("10.0.0.2", " , ")) == "10.0.0.2"


def test_ipv6_networks_and_long_entries() -> None:
    proxies = TrustedProxies(["2001:db8:ffff::/48"])
    assert proxies.trusts("2001:db8:ffff::1")
    assert not proxies.trusts("2001:db8:fffe::1")
    assert not proxies.trusts("not-an-address")
    assert len(proxies.client_of(scope("2001:db8:ffff::1", "x" * 500))) == 64


def test_the_setting_takes_a_list_a_comma_separated_string_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).trusted_proxies == []  # type: ignore[call-arg]
    monkeypatch.setenv("POSOG_TRUSTED_PROXIES", "10.0.0.1, 172.16.0.0/12")
    assert Settings(_env_file=None).trusted_proxies == ["10.0.0.1", "172.16.0.0/12"]  # type: ignore[call-arg]
    monkeypatch.setenv("POSOG_TRUSTED_PROXIES", '["10.0.0.1"]')
    assert Settings(_env_file=None).trusted_proxies == ["10.0.0.1"]  # type: ignore[call-arg]
    monkeypatch.setenv("POSOG_TRUSTED_PROXIES", "[]")
    assert Settings(_env_file=None).trusted_proxies == []  # type: ignore[call-arg]
    monkeypatch.setenv("POSOG_TRUSTED_PROXIES", "10.0.0.1, proxy.example")
    with pytest.raises(ValidationError, match=r"POSOG_TRUSTED_PROXIES: 'proxy\.example' is neither"):
        Settings(_env_file=None)  # type: ignore[call-arg]
