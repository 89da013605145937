"""Download a URL to a file without letting the URL reach this machine's network (SSRF-safe).

The host is resolved once; every address it resolves to must be public, and the connection goes to the
checked address (the original Host header and TLS server name are kept), so a second DNS answer cannot
swap in an internal address. Redirects are followed by hand and every hop is checked again.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import unquote, urljoin

import httpx

from sdfleet.services.url_guard import (
    FetchError,
    IPAddress,
    UrlRefused,
    UrlTarget,
    address_refusal,
    check_name,
    parse_url,
)

__all__ = ["FetchError", "FetchFailed", "FetchPolicy", "FetchResult", "UrlRefused", "checked_address", "fetch_to_file",
           "system_resolver"]

MAX_FILENAME_CHARS = 200
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

#: resolves (host, port) to the addresses a connection could go to
Resolver = Callable[[str, int], list[str]]
ProgressCallback = Callable[[int, int | None], None]


class FetchFailed(FetchError):
    """The URL was allowed but the download did not succeed (timeout, HTTP error, connection error)."""

    code = "fetch_failed"


@dataclass(frozen=True, kw_only=True)
class FetchPolicy:
    """What a download may do: which hosts skip the address check, how much, how long, how many hops."""

    #: exact hosts ("files.example", "[::1]") or host:port entries that may resolve to any address
    allowed_hosts: frozenset[str] = frozenset()
    max_bytes: int
    connect_timeout: float
    read_timeout: float
    max_redirects: int = 5
    #: wall-clock cap for the whole download, so a slow drip cannot hold a worker forever
    total_timeout: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_bytes", "connect_timeout", "read_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.max_redirects < 0:
            raise ValueError(f"max_redirects must be 0 or more, got {self.max_redirects}")
        if self.total_timeout is not None and not self.total_timeout > 0:
            raise ValueError(f"total_timeout must be positive or None, got {self.total_timeout!r}")
        # Host names compare in lower case, as parse_url writes them.
        object.__setattr__(self, "allowed_hosts", frozenset(h.strip().lower() for h in self.allowed_hosts))


@dataclass(frozen=True)
class FetchResult:
    """A finished download: where it ended up after redirects, its size, type and a safe file name."""

    final_url: str
    size: int
    content_type: str | None
    filename: str


def fetch_to_file(
    url: str,
    dest: BinaryIO,
    *,
    policy: FetchPolicy,
    on_progress: ProgressCallback | None = None,
    resolver: Resolver | None = None,
) -> FetchResult:
    """Stream `url` into `dest`; raise UrlRefused for a forbidden target or size, FetchFailed otherwise.

    Bytes may already be in `dest` when an error is raised: the caller discards the file.
    """
    resolve = resolver or system_resolver(policy.connect_timeout)
    deadline = None if policy.total_timeout is None else time.monotonic() + policy.total_timeout
    target = parse_url(url)
    for _hop in range(policy.max_redirects + 1):
        address = checked_address(target, policy=policy, resolve=resolve)
        location = _get(target, address, dest, policy=policy, on_progress=on_progress, deadline=deadline)
        if isinstance(location, FetchResult):
            return location
        target = parse_url(urljoin(target.url, location))
    raise UrlRefused(f"more than {policy.max_redirects} redirects")


def system_resolver(timeout: float) -> Resolver:
    """getaddrinfo with a timeout (it has none of its own)."""

    def resolve(host: str, port: int) -> list[str]:
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            infos = pool.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM).result(timeout=timeout)
        except FutureTimeout:
            raise FetchFailed(f"resolving {host!r} took longer than {timeout:g} s") from None
        except OSError as exc:
            raise FetchFailed(f"cannot resolve {host!r}: {exc.strerror or exc}") from None
        finally:
            pool.shutdown(wait=False)
        return [str(info[4][0]) for info in infos]

    return resolve


def checked_address(target: UrlTarget, *, policy: FetchPolicy, resolve: Resolver) -> IPAddress:
    """Resolve the host once and return the address to connect to, refusing any non-public answer."""
    allowed = target.matches(policy.allowed_hosts)
    if target.literal is not None:
        addresses = [target.literal]
    else:
        if not allowed:
            check_name(target.host)
        addresses = [_parse_answer(text, host=target.host) for text in resolve(target.host, target.port)]
        if not addresses:
            raise FetchFailed(f"host {target.host!r} has no address")
    if not allowed:
        for address in addresses:
            reason = address_refusal(address)
            if reason is not None:
                if target.literal is not None:
                    raise UrlRefused(f"address {address} is {reason}")
                raise UrlRefused(f"host {target.host!r} resolves to {address}, {reason}")
    return addresses[0]


def _parse_answer(text: str, *, host: str) -> IPAddress:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        raise FetchFailed(f"resolving {host!r} gave {text!r}, not an address") from None


def _get(
    target: UrlTarget,
    address: IPAddress,
    dest: BinaryIO,
    *,
    policy: FetchPolicy,
    on_progress: ProgressCallback | None,
    deadline: float | None,
) -> FetchResult | str:
    """Request one hop from the pinned address: a FetchResult when done, the Location when redirected."""
    pinned = httpx.URL(scheme=target.scheme, host=str(address), port=target.port, raw_path=target.target.encode())
    extensions = {"sni_hostname": target.host} if target.scheme == "https" and target.literal is None else {}
    headers = {"Host": target.host_header, "Accept-Encoding": "identity", "User-Agent": "sdfleet-fetch/1"}
    timeout = httpx.Timeout(
        connect=policy.connect_timeout, read=policy.read_timeout, write=policy.read_timeout, pool=policy.connect_timeout
    )
    # A fresh client per hop: no connection made for one host name is ever reused for another.
    with httpx.Client(trust_env=False, follow_redirects=False, timeout=timeout) as client:
        try:
            request = client.build_request("GET", pinned, headers=headers, extensions=extensions)
            response = client.send(request, stream=True)
        except httpx.TimeoutException:
            raise FetchFailed(f"{target.url}: connecting or waiting for the answer timed out") from None
        except httpx.HTTPError as exc:
            raise FetchFailed(f"{target.url}: {exc}") from None
        try:
            return _read_answer(
                response, dest, target=target, policy=policy, on_progress=on_progress, deadline=deadline
            )
        finally:
            response.close()


def _read_answer(
    response: httpx.Response,
    dest: BinaryIO,
    *,
    target: UrlTarget,
    policy: FetchPolicy,
    on_progress: ProgressCallback | None,
    deadline: float | None,
) -> FetchResult | str:
    if response.status_code in REDIRECT_STATUSES:
        location = response.headers.get("location")
        if not location:
            raise FetchFailed(f"{target.url}: redirect {response.status_code} without a Location")
        return location
    if response.status_code != 200:
        raise FetchFailed(f"{target.url}: server answered {response.status_code} {response.reason_phrase}")
    size = _stream_body(response, dest, target=target, policy=policy, on_progress=on_progress, deadline=deadline)
    return FetchResult(
        final_url=target.url,
        size=size,
        content_type=response.headers.get("content-type"),
        filename=choose_filename(response.headers.get("content-disposition"), path=target.target),
    )


def _stream_body(
    response: httpx.Response,
    dest: BinaryIO,
    *,
    target: UrlTarget,
    policy: FetchPolicy,
    on_progress: ProgressCallback | None,
    deadline: float | None,
) -> int:
    total = _content_length(response)
    if total is not None and total > policy.max_bytes:
        raise UrlRefused(f"{target.url} is {total} bytes, more than the {policy.max_bytes} allowed")
    received = 0
    try:
        for chunk in response.iter_bytes():
            received += len(chunk)
            if received > policy.max_bytes:
                raise UrlRefused(f"{target.url} sent more than the {policy.max_bytes} bytes allowed")
            if deadline is not None and time.monotonic() > deadline:
                raise FetchFailed(f"{target.url}: download took longer than {policy.total_timeout:g} s")
            dest.write(chunk)
            if on_progress is not None:
                on_progress(received, total)
    except httpx.TimeoutException:
        raise FetchFailed(f"{target.url}: no data for {policy.read_timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise FetchFailed(f"{target.url}: {exc}") from None
    if total is not None and received != total:
        raise FetchFailed(f"{target.url}: got {received} of {total} bytes")
    return received


def _content_length(response: httpx.Response) -> int | None:
    text = response.headers.get("content-length")
    if text is None:
        return None
    if not (text.strip().isascii() and text.strip().isdigit()):
        raise FetchFailed(f"invalid Content-Length {text!r}")
    return int(text)


_DISPOSITION_EXTENDED = re.compile(r"filename\*\s*=\s*([\w!#$%&+^`{}~-]+)'[^']*'([^;]+)", re.IGNORECASE)
_DISPOSITION_PLAIN = re.compile(r'filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))', re.IGNORECASE)


def choose_filename(disposition: str | None, *, path: str) -> str:
    """A safe file name from Content-Disposition, else from the URL path; "download" if neither gives one."""
    candidate = ""
    if disposition:
        extended = _DISPOSITION_EXTENDED.search(disposition)
        plain = _DISPOSITION_PLAIN.search(disposition)
        if extended:
            candidate = unquote(extended.group(2).strip(), encoding=extended.group(1), errors="replace")
        elif plain:
            candidate = plain.group(1) if plain.group(1) is not None else plain.group(2)
            candidate = re.sub(r"\\(.)", r"\1", candidate)
    if not candidate:
        candidate = unquote(path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])
    return sanitise_filename(candidate)


def sanitise_filename(name: str) -> str:
    """Keep the last path component, letters, digits and a few marks; no leading dots; bounded length."""
    name = re.split(r"[/\\]", name)[-1]
    name = re.sub(r"[^\w.\-()+ ]", "_", name, flags=re.UNICODE).strip(" ._")
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, extension = name.rpartition(".")
        keep = extension if dot and len(extension) <= 16 else ""
        name = name[: MAX_FILENAME_CHARS - len(keep) - 1] + ("." + keep if keep else "")
    return name or "download"
