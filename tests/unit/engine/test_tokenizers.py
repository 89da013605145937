"""The offline CLIP tokenizers: the real SD vocabulary and the tiny byte-level one."""

from __future__ import annotations

from pathlib import Path

import pytest

from sdfleet.engine import tokenizers


def test_real_clip_tokenizer_matches_stable_diffusion(tmp_path: Path) -> None:
    tokenizer = tokenizers.load_clip_tokenizer(cache_dir=tmp_path)
    assert len(tokenizer) == 49408
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokenizer.model_max_length == 77
    assert tokenizer.pad_token_id == 49407
    assert (tmp_path / "clip-pad-eos" / "vocab.json").is_file()


def test_sd2_pad_token_is_exclamation_mark(tmp_path: Path) -> None:
    tokenizer = tokenizers.load_clip_tokenizer(pad_token="!", cache_dir=tmp_path)
    ids = tokenizer("cat", padding="max_length").input_ids
    assert len(ids) == 77
    assert ids[-1] == 0 == tokenizer.pad_token_id  # "!" is the first byte character


def test_byte_tokenizer_gives_one_token_per_character(tmp_path: Path) -> None:
    tokenizer = tokenizers.load_byte_tokenizer(cache_dir=tmp_path)
    assert len(tokenizer) == 514
    ids = tokenizer("a cat!").input_ids
    assert ids[0] == 0 and ids[-1] == 1
    assert len(ids) == 2 + len("acat!")  # spaces split words, every character is one token
    assert tokenizer.unk_token_id not in ids[1:-1]


def test_tokenizer_copies_are_independent(tmp_path: Path) -> None:
    first = tokenizers.load_byte_tokenizer(cache_dir=tmp_path)
    first.add_tokens(["<my-embedding>"])
    second = tokenizers.load_byte_tokenizer(cache_dir=tmp_path)
    assert len(first) == 515 and len(second) == 514


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="'clip' or 'bytes', got 'gpt2'"):
        tokenizers.load_tokenizer("gpt2")


def test_vocab_file_is_found_without_importing_open_clip() -> None:
    import sys

    path = tokenizers.find_clip_vocab_file()
    assert path.name == "bpe_simple_vocab_16e6.txt.gz"
    assert "open_clip" not in sys.modules
