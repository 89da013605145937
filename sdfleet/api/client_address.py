"""The client's address: the peer, or what trusted proxies say in `X-Forwarded-For` (SDFLEET_TRUSTED_PROXIES)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from starlette.requests import HTTPConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def parse_networks(items: tuple[str, ...]) -> tuple[Network, ...]:
    """Addresses or CIDR networks, as `ip_network`s."""
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _is_trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def forwarded_client(peer: str | None, forwarded_for: list[str], trusted: tuple[str, ...]) -> str | None:
    """Walk `X-Forwarded-For` from the right while each hop was added by a trusted proxy; the first address
    a trusted proxy vouches for and that is not itself a trusted proxy is the client. Without trusted
    proxies (the default) the header is ignored."""
    networks = parse_networks(trusted)
    if peer is None or not networks or not _is_trusted(peer, networks):
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    client = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            break  # garbage from the client side: believe no further
        client = hop
        if not _is_trusted(hop, networks):
            break
    return client


def client_address(connection: HTTPConnection) -> str | None:
    """The address of whoever sent this request (HTTP or WebSocket)."""
    peer = connection.client.host if connection.client else None
    trusted = getattr(connection.app.state, "trusted_proxies", ())
    return forwarded_client(peer, connection.headers.getlist("x-forwarded-for"), trusted)
