"""Long prompts cut into 77-token chunks as A1111 and ComfyUI cut them, with the real CLIP BPE tokenizer."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from sdfleet.engine.prompt_chunks import PLACEHOLDER, a1111_chunks, comfy_chunks
from sdfleet.engine.prompt_weights import parse_a1111_emphasis, parse_comfy_weights
from sdfleet.engine.tokenizers import load_clip_tokenizer

BOS, EOS = 49406, 49407


@pytest.fixture(scope="module")
def tokenizer():
    return load_clip_tokenizer()


@pytest.fixture(scope="module")
def ids(tokenizer):
    vocab = tokenizer.get_vocab()
    return {word: vocab[word + "</w>"] for word in ("cat", "dog", ",")}


def _a1111(prompt: str, tokenizer, **kwargs):
    return a1111_chunks(parse_a1111_emphasis(prompt), tokenizer=tokenizer, **kwargs)


def _body(chunk) -> list[int]:
    """The prompt tokens of a framed chunk (between BOS and the first EOS)."""
    assert chunk.tokens[0] == BOS and len(chunk.tokens) == len(chunk.weights) == 77
    return chunk.tokens[1:chunk.tokens.index(EOS)]


@pytest.mark.parametrize(("words", "chunks"), [(0, 1), (1, 1), (75, 1), (76, 2), (150, 2), (151, 3), (400, 6)])
def test_a1111_chunk_count_follows_75_token_chunks(tokenizer, ids, words: int, chunks: int) -> None:
    result = _a1111(" ".join(["cat"] * words), tokenizer)
    assert len(result) == chunks
    assert [len(_body(c)) for c in result] == [min(75, words - 75 * i) for i in range(chunks)] if words else [0]
    assert all(c.tokens[-1] == EOS for c in result)


def test_a1111_real_prompt_tokens(tokenizer) -> None:
    # "a photo of a cat" is [320, 1125, 539, 320, 2368] in SD's tokenizer, "," is 267: 6 tokens a phrase.
    chunks = _a1111("a photo of a cat, " * 15, tokenizer)
    phrase = [320, 1125, 539, 320, 2368, 267]
    # 90 tokens; the chunk fills at 75, 4 tokens after the comma ending phrase 12, which starts chunk 2
    assert [_body(c) for c in chunks] == [phrase * 12, phrase * 3]
    prompt = ("masterpiece, best quality, ultra-detailed, 8k wallpaper, a photograph of an old lighthouse on a "
              "rocky coast at dusk, dramatic clouds, crashing waves, warm light in the windows, seagulls, "
              "long exposure, by a famous landscape photographer, award winning, sharp focus, high dynamic "
              "range, intricate details, volumetric lighting, golden hour, cinematic composition, "
              "film grain, muted colors")
    chunks = _a1111(prompt, tokenizer)
    assert sum(len(_body(c)) for c in chunks) == len(tokenizer(prompt, add_special_tokens=False).input_ids) == 77
    assert len(chunks) == 2


def test_a1111_moves_words_after_a_near_comma_to_the_next_chunk(tokenizer, ids) -> None:
    near = _a1111(" ".join(["cat"] * 70) + ", " + " ".join(["dog"] * 10), tokenizer)
    assert _body(near[0]) == [ids["cat"]] * 70 + [ids[","]]
    assert _body(near[1]) == [ids["dog"]] * 10
    far = _a1111(" ".join(["cat"] * 50) + ", " + " ".join(["dog"] * 40), tokenizer)
    assert _body(far[0]) == [ids["cat"]] * 50 + [ids[","]] + [ids["dog"]] * 24
    off = _a1111(" ".join(["cat"] * 70) + ", " + " ".join(["dog"] * 10), tokenizer, comma_backtrack=0)
    assert len(_body(off[0])) == 75


def test_a1111_break_weights_and_padding(tokenizer, ids) -> None:
    chunks = _a1111("(cat:1.5) dog BREAK [dog]", tokenizer)
    assert [_body(c) for c in chunks] == [[ids["cat"], ids["dog"]], [ids["dog"]]]
    assert chunks[0].weights[:4] == [1.0, 1.5, 1.0, 1.0]
    assert chunks[1].weights[1] == pytest.approx(1 / 1.1)
    assert chunks[0].tokens[3:] == [EOS] * 74  # CLIP-L pads with EOS
    open_clip = load_clip_tokenizer(pad_token="!")
    padded = _a1111("cat", open_clip)[0].tokens
    assert padded[:3] == [BOS, ids["cat"], EOS] and set(padded[3:]) == {open_clip.pad_token_id}
    assert open_clip.pad_token_id == 0


@dataclass(frozen=True)
class FakeEmbedding:
    name: str
    length: int


def test_a1111_embedding_is_found_by_tokens_and_never_split(tokenizer, ids) -> None:
    style = FakeEmbedding("StyleEmbed", 4)
    chunks = _a1111(" ".join(["cat"] * 73) + " styleembed dog", tokenizer, embeddings=[style])
    assert _body(chunks[0]) == [ids["cat"]] * 73
    assert _body(chunks[1]) == [PLACEHOLDER] * 4 + [ids["dog"]]
    (insert,) = chunks[1].inserts
    assert (insert.start, insert.embedding, insert.first, insert.count) == (1, style, 0, 4)
    assert chunks[0].inserts == []


def test_comfy_keeps_short_segments_whole_and_splits_long_ones(tokenizer, ids) -> None:
    moved = comfy_chunks(parse_comfy_weights(" ".join(["dog"] * 74) + " (cat cat:1.2)"), tokenizer=tokenizer)
    assert [len(_body(c)) for c in moved] == [74, 2]
    assert moved[1].weights[1:3] == [1.2, 1.2]
    split = comfy_chunks(parse_comfy_weights(" ".join(["dog"] * 100)), tokenizer=tokenizer)
    assert [len(_body(c)) for c in split] == [75, 25]
    a1111 = _a1111(" ".join(["dog"] * 74) + " (cat cat:1.2)", tokenizer)
    assert [len(_body(c)) for c in a1111] == [75, 1]  # A1111 fills token by token


def test_comfy_embedding_words(tokenizer, ids) -> None:
    style = FakeEmbedding("style", 3)
    found = {"style": style}
    chunks = comfy_chunks(parse_comfy_weights("cat embedding:style, dog (embedding:style:1.2) embedding:nope"),
                          tokenizer=tokenizer, find_embedding=found.get)
    body = _body(chunks[0])
    assert body[:4] == [ids["cat"], 0, 0, 0]
    # "style," is not found, "style" is: the comma stays text; an unknown embedding is skipped
    assert body[4:6] == [ids[","], ids["dog"]]
    assert [(i.start, i.count) for i in chunks[0].inserts] == [(2, 3), (7, 3)]
    assert chunks[0].weights[7:10] == [1.2] * 3
    assert len(body) == 1 + 3 + 2 + 3
