"""A1111 model titles: one parser, and a matcher that checks the bracketed hash."""

from dataclasses import dataclass

from sdfleet.modelfiles.titles import ModelTitle, match_title, parse_title, title_of


@dataclass(frozen=True)
class Model:
    name: str
    sha256: str


A = Model("a.safetensors", "0123456789" + "a" * 54)
B = Model("b.ckpt", "fedcba9876" + "b" * 54)


def test_parse_title():
    assert parse_title("a.safetensors [0123456789]") == ModelTitle("a.safetensors", "0123456789")
    assert parse_title("  a.safetensors  ") == ModelTitle("a.safetensors", None)
    assert parse_title("a [ABCDEF12]") == ModelTitle("a", "abcdef12")
    assert parse_title("a [xyz]") == ModelTitle("a [xyz]", None)  # not a hash: part of the name
    assert title_of(A.name, A.sha256) == "a.safetensors [0123456789]"


def test_match_by_title_name_stem_and_hash():
    models = [A, B]
    assert match_title(models, "a.safetensors [0123456789]") is A
    assert match_title(models, "a.safetensors") is A and match_title(models, "a") is A
    assert match_title(models, "b") is B
    assert match_title(models, "fedcba98") is B and match_title(models, B.sha256) is B


def test_a_wrong_hash_matches_nothing():
    assert match_title([A, B], "a.safetensors [fedcba9876]") is None
    assert match_title([A, B], "c.safetensors") is None
