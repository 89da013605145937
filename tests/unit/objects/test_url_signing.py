"""Signed download URLs for the local and memory stores."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from sdfleet.objects.signing import UrlSigner, content_disposition

SECRET = b"0123456789abcdef-secret"


class FakeClock:
    """A settable time source."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def parse(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, {name: values[0] for name, values in parse_qs(parts.query).items()}


def test_url_carries_key_expiry_and_a_signature_that_verifies() -> None:
    clock = FakeClock(1_000_000.0)
    signer = UrlSigner(secret_key=SECRET, public_base_url="https://sd.example.com/", clock=clock)

    url = signer.url("outputs/job 1/0.png", expires_in=300)

    assert url.startswith("https://sd.example.com/api/v1/objects/outputs/job%201/0.png?")
    path, query = parse(url)
    assert query["expires"] == "1000300"
    assert len(query["signature"]) == 64
    assert signer.verify("outputs/job 1/0.png", expires=1_000_300, signature=query["signature"])


def test_tampered_parameters_do_not_verify() -> None:
    clock = FakeClock(1_000_000.0)
    signer = UrlSigner(secret_key=SECRET, public_base_url="http://h", clock=clock)
    _, query = parse(signer.url("models/a", expires_in=60, filename="a.safetensors"))
    expires, signature = int(query["expires"]), query["signature"]

    assert query["filename"] == "a.safetensors"
    assert signer.verify("models/a", expires=expires, signature=signature, filename="a.safetensors")
    assert not signer.verify("models/b", expires=expires, signature=signature, filename="a.safetensors")
    assert not signer.verify("models/a", expires=expires + 3600, signature=signature, filename="a.safetensors")
    assert not signer.verify("models/a", expires=expires, signature=signature, filename="evil.exe")
    assert not signer.verify("models/a", expires=expires, signature=signature)
    flipped = ("1" if signature[0] == "0" else "0") + signature[1:]
    assert not signer.verify("models/a", expires=expires, signature=flipped, filename="a.safetensors")
    assert not signer.verify("models/a", expires=expires, signature="", filename="a.safetensors")


def test_signature_expires() -> None:
    clock = FakeClock(5_000.0)
    signer = UrlSigner(secret_key=SECRET, public_base_url="http://h", clock=clock)
    _, query = parse(signer.url("k", expires_in=10))
    expires, signature = int(query["expires"]), query["signature"]

    clock.now = 5_010.0
    assert signer.verify("k", expires=expires, signature=signature)
    clock.now = 5_010.5
    assert not signer.verify("k", expires=expires, signature=signature)


def test_another_secret_does_not_verify() -> None:
    mine = UrlSigner(secret_key=SECRET, public_base_url="http://h", clock=FakeClock(0))
    theirs = UrlSigner(secret_key=b"another-secret-of-16+", public_base_url="http://h", clock=FakeClock(0))
    _, query = parse(mine.url("k", expires_in=10))

    assert not theirs.verify("k", expires=int(query["expires"]), signature=query["signature"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"secret_key": b"short", "public_base_url": "http://h"}, "at least 16 bytes, got 5"),
        ({"secret_key": "text-secret-0123456", "public_base_url": "http://h"}, "must be bytes, got str"),
        ({"secret_key": SECRET, "public_base_url": "ftp://h"}, "must start with http"),
    ],
)
def test_signer_refuses_bad_configuration(options: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        UrlSigner(**options)


def test_expires_in_must_be_positive_and_at_most_a_week() -> None:
    signer = UrlSigner(secret_key=SECRET, public_base_url="http://h")

    with pytest.raises(ValueError, match="got 0"):
        signer.url("k", expires_in=0)
    with pytest.raises(ValueError, match="got 604801"):
        signer.url("k", expires_in=7 * 24 * 3600 + 1)


def test_content_disposition_quotes_safely() -> None:
    assert content_disposition("cat.png") == "attachment; filename=\"cat.png\"; filename*=UTF-8''cat.png"
    header = content_disposition('é"\r\n.png')
    assert "\r" not in header and "\n" not in header
    assert header.startswith('attachment; filename="____.png";')
    assert "filename*=UTF-8''%C3%A9%22%0D%0A.png" in header
