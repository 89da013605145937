import base64

import pytest

from sdfleet.domain.errors import InvalidInput
from sdfleet.domain.pagination import PageRequest, decode_cursor, encode_cursor, page_from_rows


def test_cursor_round_trip():
    assert decode_cursor(encode_cursor(["bob", 3])) == ["bob", 3]


@pytest.mark.parametrize("bad", ["%%%", "bm90IGpzb24", encode_cursor.__name__, "eyJhIjoxfQ"])
def test_foreign_cursor_is_invalid_input_on_cursor(bad):
    with pytest.raises(InvalidInput) as err:
        decode_cursor(bad)
    assert err.value.field == "cursor"


@pytest.mark.parametrize("limit", [0, -1, 201])
def test_limit_out_of_range(limit):
    with pytest.raises(InvalidInput) as err:
        PageRequest.parse(cursor=None, limit=limit)
    assert err.value.field == "limit"


def test_page_from_rows_sets_cursor_only_when_more():
    full = page_from_rows([1, 2, 3], limit=2, key=lambda r: [r])
    assert full.items == [1, 2] and decode_cursor(full.next_cursor) == [2]
    last = page_from_rows([1, 2], limit=2, key=lambda r: [r])
    assert last.items == [1, 2] and last.next_cursor is None


def _raw_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("key", ['["bob\\u0000"]', '["a", NaN]', '[Infinity]', '[-Infinity, "x"]', '[null]', '[["x"]]'])
def test_a_cursor_key_no_issued_cursor_holds_is_invalid_input(key):
    """A NUL would reach PostgreSQL as text (which refuses it: a 500); NaN/Infinity are JSON extensions."""
    with pytest.raises(InvalidInput) as err:
        decode_cursor(_raw_cursor(key))
    assert err.value.field == "cursor"
