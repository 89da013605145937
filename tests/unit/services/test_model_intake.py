"""Format sniffing and name rules of the registry intake."""

import pytest

from sdfleet.domain.checkpoints import check_model_name, safetensors_name
from sdfleet.domain.errors import InvalidInput
from sdfleet.services.model_intake import sniff_format


def test_sniff_format():
    assert sniff_format(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\"") == "safetensors"
    assert sniff_format(b"PK\x03\x04rest") == "zip"
    assert sniff_format(b"\x80\x02}q\x00") == "pickle"
    assert sniff_format(b"hello world, not") == "unknown"
    assert sniff_format(b"") == "unknown"


@pytest.mark.parametrize("name", ["a.safetensors", "My Style v2.safetensors", "old.ckpt", "x.PT", "名前.safetensors"])
def test_model_names_accepted(name):
    assert check_model_name(name) == name


@pytest.mark.parametrize("name", ["", "noext", "a.txt", "../a.safetensors", "a/b.safetensors", ".hidden.safetensors",
                                  " a.safetensors", "a\u202e.safetensors", ".safetensors", "x" * 300 + ".ckpt"])
def test_model_names_refused(name):
    with pytest.raises(InvalidInput) as info:
        check_model_name(name)
    assert info.value.field == "name"


def test_converted_pickles_are_renamed():
    assert safetensors_name("old.ckpt") == "old.safetensors"
    assert safetensors_name("a.b.pt") == "a.b.safetensors"
    assert safetensors_name("x.safetensors") == "x.safetensors"
