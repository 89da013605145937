"""Key and prefix validation, ranges and chunking shared by every ObjectStore."""

from __future__ import annotations

import io

import pytest

from sdfleet.objects.base import (
    InvalidObjectKey,
    InvalidRange,
    iter_chunks,
    read_exactly,
    resolve_range,
    validate_key,
    validate_part_number,
    validate_prefix,
    validate_range,
)


@pytest.mark.parametrize(
    "key", ["models/0f3a", "uploads/u1/part.bin", "outputs/job/0.png", "inputs/u/é 1.png", "a", ".hidden/x", "a/.b"]
)
def test_valid_keys_pass(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "must not be empty"),
        ("/abs", "relative"),
        ("a\\b", "'/' as separator"),
        ("a\x00b", "control"),
        ("a\x1fb", "control"),
        ("a\x7fb", "control"),
        ("..", "'..'"),
        ("a/../b", "'..'"),
        ("a/./b", "'.'"),
        ("a//b", "empty"),
        ("a/", "end with '/'"),
        (".sdfleet/meta/x", "reserved"),
        ("x" * 1025, "1024 bytes"),
    ],
)
def test_unsafe_keys_name_the_problem(key: str, reason: str) -> None:
    with pytest.raises(InvalidObjectKey, match=reason):
        validate_key(key)


def test_non_string_key_is_refused() -> None:
    with pytest.raises(InvalidObjectKey, match="must be a str, got bytes"):
        validate_key(b"models/x")  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["", "outputs/", "outputs/job1", "a", ".sd"])
def test_valid_prefixes_pass(prefix: str) -> None:
    assert validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "/a", "..", "../", "a/..", "a/../", "a//", "a\\", ".sdfleet/"])
def test_unsafe_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(InvalidObjectKey):
        validate_prefix(prefix)


@pytest.mark.parametrize(("number", "ok"), [(1, True), (10_000, True), (0, False), (10_001, False), (True, False)])
def test_part_numbers_follow_s3(number: int, ok: bool) -> None:
    if ok:
        assert validate_part_number(number) == number
    else:
        with pytest.raises(ValueError, match="part_number"):
            validate_part_number(number)


def test_resolve_range_clamps_the_end_and_refuses_a_start_past_the_object() -> None:
    assert resolve_range(key="k", size=10, start=0, end=None) == (0, 10)
    assert resolve_range(key="k", size=0, start=0, end=None) == (0, 0)
    assert resolve_range(key="k", size=10, start=2, end=4) == (2, 5)
    assert resolve_range(key="k", size=10, start=2, end=400) == (2, 10)
    with pytest.raises(InvalidRange, match="start 10 is beyond the end of 'k' \\(10 bytes\\)"):
        resolve_range(key="k", size=10, start=10, end=None)
    with pytest.raises(InvalidRange):
        resolve_range(key="k", size=0, start=0, end=0)


def test_validate_range_names_the_bad_bound() -> None:
    with pytest.raises(InvalidRange, match="start must be >= 0, got -1"):
        validate_range(start=-1, end=None, chunk_size=1)
    with pytest.raises(InvalidRange, match="end must be >= start \\(5\\), got 4"):
        validate_range(start=5, end=4, chunk_size=1)
    with pytest.raises(ValueError, match="chunk_size must be > 0, got 0"):
        validate_range(start=0, end=None, chunk_size=0)


def test_iter_chunks_splits_bytes_and_files_alike() -> None:
    data = bytes(range(256)) * 10

    assert [len(c) for c in iter_chunks(data, chunk_size=1000)] == [1000, 1000, 560]
    assert b"".join(iter_chunks(io.BytesIO(data), chunk_size=7)) == data
    assert list(iter_chunks(b"", chunk_size=4)) == []


def test_iter_chunks_refuses_text_streams_and_other_types() -> None:
    with pytest.raises(TypeError, match="binary mode"):
        list(iter_chunks(io.StringIO("text")))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got int"):
        list(iter_chunks(42))  # type: ignore[arg-type]


def test_read_exactly_loops_over_short_reads() -> None:
    class Dribble(io.RawIOBase):
        def __init__(self) -> None:
            self._source = io.BytesIO(b"abcdefghij")

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            return self._source.read(min(size, 3))

    stream = Dribble()
    assert read_exactly(stream, 8) == b"abcdefgh"
    assert read_exactly(stream, 8) == b"ij"
    assert read_exactly(stream, 8) == b""
