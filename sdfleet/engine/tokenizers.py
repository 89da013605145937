"""CLIP tokenizers built offline: the real 49,408-token SD tokenizer and the tiny byte-level one."""

from __future__ import annotations

import copy
import functools
import gzip
import importlib.util
import json
import os
import tempfile
from pathlib import Path

from transformers import CLIPTokenizer

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
#: Number of BPE merges in the CLIP vocabulary (49,408 = 2 * 256 + merges + 2 specials).
CLIP_MERGES = 49152 - 256 - 2
VOCAB_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"


def default_cache_dir() -> Path:
    """Where tokenizer folders are built when the caller gives no directory."""
    return Path(tempfile.gettempdir()) / "sdfleet-tokenizers"


def byte_unicode_chars() -> list[str]:
    """GPT-2's byte-to-unicode characters in CLIP's vocabulary order: printable bytes first, then the rest."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    rest = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + n) for n in range(len(rest))]


def find_clip_vocab_file() -> Path:
    """Locate `bpe_simple_vocab_16e6.txt.gz` in the installed open-clip-torch wheel without importing it."""
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / VOCAB_FILE_NAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{VOCAB_FILE_NAME} not found: install open-clip-torch==3.3.0 with --no-deps to get the CLIP vocabulary"
    )


def clip_vocab_and_merges(vocab_file: Path) -> tuple[dict[str, int], list[str]]:
    """Build the CLIP BPE vocabulary and merge list from open_clip's gzipped merges file."""
    lines = gzip.decompress(vocab_file.read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : CLIP_MERGES + 1]
    chars = byte_unicode_chars()
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges] + [BOS, EOS]
    return {token: i for i, token in enumerate(tokens)}, merges


def byte_vocab() -> dict[str, int]:
    """The 514-token vocabulary of the tiny models: specials, 256 byte characters, the same with `</w>`."""
    chars = byte_unicode_chars()
    tokens = [BOS, EOS] + chars + [c + "</w>" for c in chars]
    return {token: i for i, token in enumerate(tokens)}


def _write_folder(folder: Path, *, vocab: dict[str, int], merges: list[str], pad_token: str) -> None:
    """Write a tokenizer folder atomically so concurrent processes never read a half-written one."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    (staging / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (staging / "merges.txt").write_text("\n".join(["#version: 0.2", *merges]) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": pad_token,
        "do_lower_case": True,
    }
    (staging / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    special = {k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    (staging / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    try:
        os.rename(staging, folder)
    except OSError:  # another process won the race; its folder is identical
        for child in staging.iterdir():
            child.unlink()
        staging.rmdir()


def _pad_suffix(pad_token: str) -> str:
    return "pad-eos" if pad_token == EOS else f"pad-{ord(pad_token[0]):x}-{len(pad_token)}"


def clip_tokenizer_folder(*, pad_token: str = EOS, cache_dir: Path | None = None) -> Path:
    """Build (once) and return a folder holding the real CLIP tokenizer, loadable by `from_pretrained`."""
    folder = (cache_dir or default_cache_dir()) / f"clip-{_pad_suffix(pad_token)}"
    if not (folder / "special_tokens_map.json").is_file():
        vocab, merges = clip_vocab_and_merges(find_clip_vocab_file())
        _write_folder(folder, vocab=vocab, merges=merges, pad_token=pad_token)
    return folder


def byte_tokenizer_folder(*, pad_token: str = EOS, cache_dir: Path | None = None) -> Path:
    """Build (once) and return a folder holding the tiny 514-token byte-level tokenizer."""
    folder = (cache_dir or default_cache_dir()) / f"bytes-{_pad_suffix(pad_token)}"
    if not (folder / "special_tokens_map.json").is_file():
        _write_folder(folder, vocab=byte_vocab(), merges=[], pad_token=pad_token)
    return folder


@functools.lru_cache(maxsize=8)
def _load_shared(folder: str) -> CLIPTokenizer:
    return CLIPTokenizer.from_pretrained(folder)


def _load(folder: str) -> CLIPTokenizer:
    # A copy per caller: textual inversion adds tokens to a tokenizer, which must not leak to others.
    return copy.deepcopy(_load_shared(folder))


def load_clip_tokenizer(*, pad_token: str = EOS, cache_dir: Path | None = None) -> CLIPTokenizer:
    """The real 49,408-token CLIP tokenizer of SD 1.x (`pad_token="!"` for SD 2.x and SDXL's second)."""
    return _load(str(clip_tokenizer_folder(pad_token=pad_token, cache_dir=cache_dir)))


def load_byte_tokenizer(*, pad_token: str = EOS, cache_dir: Path | None = None) -> CLIPTokenizer:
    """The tiny models' byte-level tokenizer: one token per character, none unknown."""
    return _load(str(byte_tokenizer_folder(pad_token=pad_token, cache_dir=cache_dir)))


def load_tokenizer(kind: str, *, pad_token: str = EOS, cache_dir: Path | None = None) -> CLIPTokenizer:
    """Load a tokenizer by kind: "clip" (real SD vocabulary) or "bytes" (tiny models)."""
    if kind == "clip":
        return load_clip_tokenizer(pad_token=pad_token, cache_dir=cache_dir)
    if kind == "bytes":
        return load_byte_tokenizer(pad_token=pad_token, cache_dir=cache_dir)
    raise ValueError(f"tokenizer kind must be 'clip' or 'bytes', got {kind!r}")
