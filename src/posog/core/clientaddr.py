"""Whose request this is: the peer address, or — only when the peer is one of the configured trusted
reverse proxies (``POSOG_TRUSTED_PROXIES``) — the right-most address of ``X-Forwarded-For`` that is
not a trusted proxy.

A client can write anything into ``X-Forwarded-For``; a proxy appends the address it saw on the
right. So the entries are read from the right, skipping the trusted proxies' own, and the first
other entry is the address the nearest trusted proxy saw — a client that prepends forged entries
only adds entries to the left of it. ``posog serve`` gives uvicorn the same list, so uvicorn and
this module agree (resolving an already resolved address changes nothing)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FORWARDED_FOR = b"x-forwarded-for"
MAX_ADDRESS = 64  # longer entries are cut: nothing longer is an address, and keys stay small


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """The networks of ``values`` (addresses or CIDRs); ValueError names the first that is neither."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is neither an IP address nor a network (CIDR)") from None
    return tuple(networks)


def _bare(entry: str) -> str:
    """An ``X-Forwarded-For`` entry without a port or IPv6 brackets (``[::1]:80`` → ``::1``)."""
    entry = entry.strip()
    if entry.startswith("["):
        end = entry.find("]")
        return entry[1:end] if end > 0 else entry
    if entry.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has several colons
        return entry.split(":", 1)[0]
    return entry


class TrustedProxies:
    """The configured trusted proxies and the client address they vouch for."""

    def __init__(self, proxies: Sequence[str] = ()) -> None:
        self._networks = parse_networks(proxies)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, host: str | None) -> bool:
        """Whether ``host`` is a trusted proxy (anything that is not an address is not)."""
        if not host or not self._networks:
            return False
        try:
            address = ipaddress.ip_address(_bare(host))
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def client(self, peer: str | None, forwarded_for: Sequence[str]) -> str:
        """The client of a request from ``peer`` carrying these ``X-Forwarded-For`` header values."""
        if not self.trusts(peer) or not forwarded_for:
            return (peer or "unknown")[:MAX_ADDRESS]
        entries = [_bare(part) for value in forwarded_for for part in value.split(",")]
        entries = [entry for entry in entries if entry]
        if not entries:
            return (peer or "unknown")[:MAX_ADDRESS]
        for entry in reversed(entries):
            if not self.trusts(entry):
                return entry[:MAX_ADDRESS]
        return entries[0][:MAX_ADDRESS]  # a chain of trusted proxies only: the farthest one

    def client_of(self, scope: Scope) -> str:
        """The client of an ASGI request (its headers read only when the peer is a trusted proxy)."""
        peer = scope.get("client")
        host = peer[0] if peer else None
        if not self.trusts(host):
            return (host or "unknown")[:MAX_ADDRESS]
        values = [value.decode("latin-1") for name, value in scope["headers"] if name == FORWARDED_FOR]
        return self.client(host, values)
