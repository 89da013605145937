"""Server-side request forgery guard: parse a URL strictly and decide whether its addresses may be reached.

Every spelling of an IP literal (decimal `2130706433`, octal `0177.0.0.1`, hex `0x7f.1`, short `127.1`,
IPv6 `[::1]`, IPv4-mapped `[::ffff:7f00:1]`, NAT64 / 6to4 / IPv4-compatible embeddings) is normalised
to one address before it is judged, so no spelling slips past the checks.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 8192
DEFAULT_PORTS = {"http": 80, "https": 443}

#: host names of cloud metadata services and of this machine, refused before any lookup
BLOCKED_NAMES = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "ip6-localhost",
        "ip6-loopback",
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
#: metadata endpoints; most already fall in a refused range, the Azure wire server does not
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "168.63.129.16", "192.0.0.192")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMERIC_LABEL = re.compile(r"(0[xX][0-9a-fA-F]*|[0-9]+)")


class FetchError(Exception):
    """A URL could not be fetched; `code` is stable, `reason` says why."""

    code = "fetch_error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UrlRefused(FetchError):
    """A URL, an address it leads to, or the size of its answer is not allowed."""

    code = "url_refused"


@dataclass(frozen=True)
class UrlTarget:
    """A strictly parsed http(s) URL: the normalised host, the port, and the path to request."""

    scheme: str
    #: lower-case ASCII host name, or the compressed text of an IP address (no brackets)
    host: str
    port: int
    #: percent-encoded path and query, starting with "/"
    target: str
    #: the address, when the host is an IP literal
    literal: IPAddress | None = None

    @property
    def host_header(self) -> str:
        """The Host header: host, bracketed if IPv6, with the port unless it is the scheme's default."""
        host = f"[{self.host}]" if isinstance(self.literal, ipaddress.IPv6Address) else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The normalised URL."""
        return f"{self.scheme}://{self.host_header}{self.target}"

    def matches(self, allowed_hosts: frozenset[str]) -> bool:
        """True when the host, or host:port, is in the allow-list."""
        host = f"[{self.host}]" if isinstance(self.literal, ipaddress.IPv6Address) else self.host
        return host in allowed_hosts or f"{host}:{self.port}" in allowed_hosts


def parse_url(url: str) -> UrlTarget:
    """Parse an http(s) URL strictly; raise UrlRefused naming what is wrong with it."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"URL is {len(url)} characters long, at most {MAX_URL_LENGTH} are accepted")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F or c == "\\" for c in url):
        raise UrlRefused("URL contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UrlRefused(f"malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlRefused(f"URL scheme must be http or https, got {parts.scheme or 'none'!r}")
    if "@" in parts.netloc:
        raise UrlRefused("URL may not contain a user name or password")
    raw_host, port_text = _split_netloc(parts.netloc)
    port = _parse_port(port_text, default=DEFAULT_PORTS[scheme])
    host, literal = normalise_host(raw_host)
    target = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        target += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    return UrlTarget(scheme=scheme, host=host, port=port, target=target, literal=literal)


def _split_netloc(netloc: str) -> tuple[str, str]:
    if not netloc:
        raise UrlRefused("URL has no host")
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise UrlRefused("URL has an unclosed '[' in its host")
        rest = netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise UrlRefused(f"unexpected {rest!r} after the IPv6 address")
        return netloc[: end + 1], rest[1:]
    if netloc.count(":") > 1:
        raise UrlRefused("an IPv6 host must be written in brackets")
    host, _, port = netloc.partition(":")
    return host, port


def _parse_port(text: str, *, default: int) -> int:
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise UrlRefused(f"port must be a number from 1 to 65535, got {text!r}")
    return int(text)


def normalise_host(raw: str) -> tuple[str, IPAddress | None]:
    """Return (host text, address if the host is an IP literal) in one canonical spelling."""
    if raw.startswith("["):
        inner = raw[1:-1]
        if "%" in inner:
            raise UrlRefused("IPv6 zone identifiers are not allowed in URLs")
        try:
            address = ipaddress.IPv6Address(inner)
        except ValueError:
            raise UrlRefused(f"malformed IPv6 address {inner!r}") from None
        return str(address), address
    if "%" in raw:
        raise UrlRefused("percent-encoded host names are not allowed")
    host = raw.lower().removesuffix(".")
    if not host:
        raise UrlRefused("URL has an empty host")
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        # As browsers do: a host whose last label is a number is an IPv4 address, in any spelling.
        address = _parse_ipv4(labels, raw=raw)
        return str(address), address
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UrlRefused(f"host {raw!r} is not a valid domain name") from None
    if len(ascii_host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in ascii_host.split(".")):
        raise UrlRefused(f"host {raw!r} is not a valid domain name")
    return ascii_host, None


def _parse_ipv4(labels: list[str], *, raw: str) -> ipaddress.IPv4Address:
    if len(labels) > 4:
        raise UrlRefused(f"host {raw!r} looks like an IPv4 address but has {len(labels)} parts")
    numbers = []
    for label in labels:
        if not _NUMERIC_LABEL.fullmatch(label):
            raise UrlRefused(f"host {raw!r} mixes numbers and names")
        if label[:2].lower() == "0x":
            numbers.append(int(label[2:] or "0", 16))
        elif len(label) > 1 and label.startswith("0"):
            if not set(label) <= set("01234567"):
                raise UrlRefused(f"host {raw!r} has an invalid octal part {label!r}")
            numbers.append(int(label, 8))
        else:
            numbers.append(int(label))
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        raise UrlRefused(f"host {raw!r} is out of the IPv4 range")
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64, IPv4-compatible), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _NAT64) or address in _IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress) -> str | None:
    """Why this address may not be reached (loopback, private …), or None when it is a public address."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        inner_reason = address_refusal(inner) if inner is not None else None
        if inner_reason is not None:
            return f"{inner_reason} ({inner}) embedded in IPv6"
    checks = (
        ("is_loopback", "a loopback address"),
        ("is_unspecified", "the unspecified address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    )
    for attribute, reason in checks:
        if getattr(address, attribute):
            return reason
    if isinstance(address, ipaddress.IPv4Address) and address in _CGNAT:
        return "a carrier-grade NAT address"
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "a site-local address"
    if not address.is_global:
        return "not a public address"
    return None


def check_name(host: str) -> None:
    """Refuse host names of this machine and of cloud metadata services before any lookup."""
    if host in BLOCKED_NAMES or host.endswith(".localhost"):
        raise UrlRefused(f"host {host!r} is a local or metadata host name")
