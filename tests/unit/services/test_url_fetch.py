"""SSRF-safe downloads: every spelling of an internal address is refused; allowed hosts download."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from sdfleet.services.url_fetch import (
    FetchFailed,
    FetchPolicy,
    UrlRefused,
    choose_filename,
    fetch_to_file,
)

SLOW_SERVER_SECONDS = 30.0  #: how long /hang and /drip take: far longer than any timeout under test
BODY = bytes(range(256)) * 40  # 10 240 bytes


def _policy(*allowed: str, max_bytes: int = 1 << 20, **kwargs: float) -> FetchPolicy:
    return FetchPolicy(
        allowed_hosts=frozenset(allowed),
        max_bytes=max_bytes,
        connect_timeout=kwargs.pop("connect_timeout", 2.0),
        read_timeout=kwargs.pop("read_timeout", 2.0),
        **kwargs,  # type: ignore[arg-type]
    )


def _no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"DNS lookup of {host!r} must not happen")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/models/cat.safetensors":
            self._send(200, BODY, {"Content-Type": "application/octet-stream"})
        elif parts.path == "/host":
            self._send(200, self.headers["Host"].encode())
        elif parts.path == "/disposition":
            disposition = "attachment; filename*=UTF-8''..%2F..%2Fetc%2Fcat%20%C3%A9.safetensors"
            self._send(200, b"x", {"Content-Disposition": disposition})
        elif parts.path == "/redirect":
            self._send(302, b"", {"Location": query["to"]})
        elif parts.path == "/loop":
            self._send(301, b"", {"Location": "/loop"})
        elif parts.path == "/unbounded":
            # No Content-Length: the body ends when the connection closes.
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(BODY * 4)
            self.close_connection = True
        elif parts.path == "/hang":
            time.sleep(SLOW_SERVER_SECONDS)
            self._send(200, b"late")
        elif parts.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "40")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(SLOW_SERVER_SECONDS / 40)
        else:
            self._send(404, b"missing")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]  # clients hang up early
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.0.0.1./",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://0x7f.1/",
        "http://0x7f000001/",
        "http://127.1/",
        "http://0/",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[0:0:0:0:0:ffff:7f00:1]:8080/",
        "http://[fe80::1%25eth0]/",
        "http://[fe80::1]/",
        "http://[64:ff9b::a00:1]/",
        "http://[2002:c0a8:101::1]/",
        "http://[::7f00:1]/",
        "http://[fc00::1]/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://255.255.255.255/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0xa9fea9fe/",
        "https://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://168.63.129.16/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./",
        "http://localhost/",
        "http://LocalHost:8000/",
        "http://api.localhost/",
        "ftp://example.com/model.ckpt",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://user:secret@example.com/",
        "http://example.com\\@127.0.0.1/",
        "http://1.2.3.4.5/",
        "http://08.0.0.1/",
        "http://256.0.0.1/",
        "http://[::1/",
        "http://::1/",
        "http://exa mple.com/",
        "http://%31%32%37.0.0.1/",
        "http:///path",
        "http://example.com:0/",
        "http://example.com:99999/",
    ],
)
def test_internal_and_malformed_urls_are_refused_without_network(url: str) -> None:
    dest = io.BytesIO()
    with pytest.raises(UrlRefused):
        fetch_to_file(url, dest, policy=_policy(), resolver=_no_dns)
    assert dest.getvalue() == b""


@pytest.mark.parametrize("answers", [["10.0.0.5"], ["93.184.215.14", "127.0.0.1"], ["fe80::1%eth0"], ["::1"]])
def test_a_name_resolving_to_any_internal_address_is_refused(answers: list[str]) -> None:
    with pytest.raises(UrlRefused, match="resolves to"):
        fetch_to_file("https://models.example/x", io.BytesIO(), policy=_policy(), resolver=lambda h, p: answers)


def test_local_server_is_refused_without_allow_list(server: str) -> None:
    with pytest.raises(UrlRefused, match="loopback"):
        fetch_to_file(f"http://{server}/models/cat.safetensors", io.BytesIO(), policy=_policy())


def test_allowed_host_downloads_with_progress(server: str) -> None:
    dest = io.BytesIO()
    progress: list[tuple[int, int | None]] = []

    result = fetch_to_file(
        f"http://{server}/models/cat.safetensors",
        dest,
        policy=_policy(server),
        on_progress=lambda *a: progress.append(a),
    )

    assert dest.getvalue() == BODY
    assert (result.size, result.filename, result.content_type) == (
        len(BODY),
        "cat.safetensors",
        "application/octet-stream",
    )
    assert result.final_url == f"http://{server}/models/cat.safetensors"
    assert progress[-1] == (len(BODY), len(BODY))
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_connection_is_pinned_to_the_checked_address_with_the_original_host(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    lookups: list[str] = []

    def resolver(host: str, _port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    dest = io.BytesIO()
    fetch_to_file(f"http://files.test:{port}/host", dest, policy=_policy(f"files.test:{port}"), resolver=resolver)

    assert dest.getvalue() == f"files.test:{port}".encode()
    assert lookups == ["files.test"]


@pytest.mark.parametrize(
    "to",
    [
        "http://localhost:{port}/models/cat.safetensors",
        "http://[::1]:{port}/",
        "http://2130706433:{port}/",
        "http://evil.test:{port}/",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
    ],
)
def test_redirect_from_allowed_host_to_internal_address_is_refused(server: str, to: str) -> None:
    port = server.rsplit(":", 1)[1]
    resolver = {"evil.test": ["10.1.2.3"], "localhost": ["127.0.0.1"]}
    url = f"http://{server}/redirect?to={to.format(port=port)}"
    # Only the exact host:port is allowed; 2130706433 normalises to 127.0.0.1 but with that port it is the
    # allowed server itself, so give it a different port.
    if "2130706433" in to:
        url = f"http://{server}/redirect?to=http://2130706433:1/"
    with pytest.raises(UrlRefused):
        fetch_to_file(url, io.BytesIO(), policy=_policy(server), resolver=lambda h, p: resolver[h])


def test_redirects_within_allowed_host_are_followed_and_capped(server: str) -> None:
    dest = io.BytesIO()
    result = fetch_to_file(f"http://{server}/redirect?to=/models/cat.safetensors", dest, policy=_policy(server))
    assert dest.getvalue() == BODY and result.final_url.endswith("/models/cat.safetensors")
    with pytest.raises(UrlRefused, match="more than 3 redirects"):
        fetch_to_file(f"http://{server}/loop", io.BytesIO(), policy=_policy(server, max_redirects=3))


def test_size_cap_from_content_length_and_while_streaming(server: str) -> None:
    announced = io.BytesIO()
    with pytest.raises(UrlRefused, match="more than the 1000"):
        fetch_to_file(f"http://{server}/models/cat.safetensors", announced, policy=_policy(server, max_bytes=1000))
    assert announced.getvalue() == b""
    streamed = io.BytesIO()
    with pytest.raises(UrlRefused, match="sent more than"):
        fetch_to_file(f"http://{server}/unbounded", streamed, policy=_policy(server, max_bytes=len(BODY)))
    assert len(streamed.getvalue()) <= len(BODY)


def test_read_and_total_timeouts(server: str) -> None:
    # The server takes SLOW_SERVER_SECONDS; ending well before it shows the timeout fired, whatever the load.
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="timed out"):
        fetch_to_file(f"http://{server}/hang", io.BytesIO(), policy=_policy(server, read_timeout=0.3))
    assert time.monotonic() - started < SLOW_SERVER_SECONDS / 2
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="longer than 0.5"):
        fetch_to_file(f"http://{server}/drip", io.BytesIO(), policy=_policy(server, total_timeout=0.5))
    assert time.monotonic() - started < SLOW_SERVER_SECONDS / 2


def test_http_errors_fail_clearly(server: str) -> None:
    with pytest.raises(FetchFailed, match="404"):
        fetch_to_file(f"http://{server}/nope", io.BytesIO(), policy=_policy(server))


def test_filename_from_disposition_is_sanitised(server: str) -> None:
    result = fetch_to_file(f"http://{server}/disposition", io.BytesIO(), policy=_policy(server))
    assert result.filename == "cat é.safetensors"


@pytest.mark.parametrize(
    ("disposition", "path", "expected"),
    [
        ('attachment; filename="model v2.safetensors"', "/x", "model v2.safetensors"),
        ("attachment; filename=lora.safetensors", "/x", "lora.safetensors"),
        ('attachment; filename="..\\\\..\\\\boot.ini"', "/x", "boot.ini"),
        (None, "/api/download/models/12345?type=Model", "12345"),
        (None, "/files/my%20lora%3B.safetensors", "my lora_.safetensors"),
        (None, "/", "download"),
        ('attachment; filename=".bashrc"', "/x", "bashrc"),
    ],
)
def test_choose_filename(disposition: str | None, path: str, expected: str) -> None:
    assert choose_filename(disposition, path=path) == expected


def test_policy_validates_and_normalises() -> None:
    with pytest.raises(ValueError, match="max_bytes must be positive, got 0"):
        FetchPolicy(max_bytes=0, connect_timeout=1, read_timeout=1)
    policy = FetchPolicy(
        allowed_hosts=frozenset({" Files.Example:8080"}), max_bytes=1, connect_timeout=1, read_timeout=1
    )
    assert policy.allowed_hosts == frozenset({"files.example:8080"})
