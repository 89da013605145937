"""The prompt parsers against A1111's and ComfyUI's documented examples."""

from __future__ import annotations

import pytest

from sdfleet.engine.prompt_schedule import prompt_schedule
from sdfleet.engine.prompt_weights import PromptSyntaxError, parse_a1111_emphasis, parse_comfy_weights

# A1111's `parse_prompt_attention` docstring examples (expected values as it documents them), then cases
# its rules imply: weights multiply through nesting, `BREAK` is its own segment unless bracketed.
A1111_EMPHASIS = [
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", [
        ("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
        (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1)]),
    ("((x))", [("x", 1.1 * 1.1)]),
    ("[x]", [("x", 1 / 1.1)]),
    ("[[x]]", [("x", 1 / 1.1 / 1.1)]),
    ("(x:1.5)", [("x", 1.5)]),
    ("((x:1.5))", [("x", 1.5 * 1.1)]),
    ("(x: 0.5 )", [("x", 0.5)]),
    ("a) b]", [("a) b]", 1.0)]),
    ("a\\\\b", [("a\\b", 1.0)]),
    ("a BREAK b", [("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]),
    ("(a BREAK b)", [("a", 1.1), ("BREAK", -1.1), ("b", 1.1)]),
    ("", [("", 1.0)]),
]


@pytest.mark.parametrize(("prompt", "expected"), A1111_EMPHASIS)
def test_a1111_emphasis(prompt: str, expected: list[tuple[str, float]]) -> None:
    parsed = parse_a1111_emphasis(prompt)
    assert [text for text, _ in parsed] == [text for text, _ in expected]
    assert [weight for _, weight in parsed] == pytest.approx([weight for _, weight in expected], abs=1e-12)


def test_a1111_bad_weight_is_an_error_naming_it() -> None:
    with pytest.raises(PromptSyntaxError, match="1.2.3"):
        parse_a1111_emphasis("(cat:1.2.3)")


# ComfyUI's `token_weights` docstring examples: an explicit weight replaces the outer one.
COMFY_WEIGHTS = [
    ("(foo)", [("foo", 1.1)]),
    ("(foo)(bar)", [("foo", 1.1), ("bar", 1.1)]),
    ("(foo:2.0)", [("foo", 2.0)]),
    ("((foo))", [("foo", 1.21)]),
    ("((foo):1.1)", [("foo", 1.21)]),
    ("((foo:1.1))", [("foo", 1.1)]),
    ("(foo:0.0)", [("foo", 0.0)]),
    ("((foo:1.0):0.0)", [("foo", 1.0)]),
    ("foo ((((lol (cat:666) attack:100)))) baz",
     [("foo ", 1.0), ("lol ", 100.0), ("cat", 666.0), (" attack", 100.0), (" baz", 1.0)]),
    ("foo ((((lol (cat:666) attack):100))) baz",
     [("foo ", 1.0), ("lol ", 110.0), ("cat", 666.0), (" attack", 110.0), (" baz", 1.0)]),
    ("\\(foo\\)(bar)", [("(foo)", 1.0), ("bar", 1.1)]),
    ("[foo]", [("[foo]", 1.0)]),
    ("(foo:bar)", [("foo:bar", 1.1)]),
    ("", []),
]


@pytest.mark.parametrize(("prompt", "expected"), COMFY_WEIGHTS)
def test_comfy_weights(prompt: str, expected: list[tuple[str, float]]) -> None:
    parsed = parse_comfy_weights(prompt)
    assert [text for text, _ in parsed] == [text for text, _ in expected]
    assert [weight for _, weight in parsed] == pytest.approx([weight for _, weight in expected])


# A1111's `get_learned_conditioning_prompt_schedules` docstring examples, 10 steps.
SCHEDULES = [
    ("test", [(10, "test")]),
    ("a [b:3]", [(3, "a "), (10, "a b")]),
    ("a [b: 3]", [(3, "a "), (10, "a b")]),
    ("a [[[b]]:2]", [(2, "a "), (10, "a [[b]]")]),
    ("[(a:2):3]", [(3, ""), (10, "(a:2)")]),
    ("a [b : c : 1] d", [(1, "a b  d"), (10, "a  c  d")]),
    ("a[b:[c:d:2]:1]e", [(1, "abe"), (2, "ace"), (10, "ade")]),
    ("a [unbalanced", [(10, "a [unbalanced")]),
    ("a [b:.5] c", [(5, "a  c"), (10, "a b c")]),
    ("((a][:b:c [d:3]", [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    ("[a|(b:1.1)]", [(s, "a" if s % 2 else "(b:1.1)") for s in range(1, 11)]),
    ("[fe|]male", [(s, "female" if s % 2 else "male") for s in range(1, 11)]),
    ("[fe|||]male", [(s, "female" if s % 4 == 1 else "male") for s in range(1, 11)]),
    # The docstring's `a [{b|d{:.5] c` line ("not handling this right now") predates `|` leaving plain
    # text in A1111's grammar: a `|` outside an alternation makes the prompt unreadable, so it is used as is.
    ("a [{b|d{:.5] c", [(10, "a [{b|d{:.5] c")]),
    ("a | b", [(10, "a | b")]),
    ("[cat:dog:0]", [(10, "dog")]),
    ("[cat:dog:25]", [(10, "cat")]),
    ("[ in foreground::0.6]", [(6, " in foreground"), (10, "")]),
    ("(" * 300 + "x", [(10, "(" * 300 + "x")]),
]


@pytest.mark.parametrize(("prompt", "expected"), SCHEDULES)
def test_a1111_prompt_schedule(prompt: str, expected: list[tuple[int, str]]) -> None:
    assert [(s.until_step, s.text) for s in prompt_schedule(prompt, 10)] == expected


@pytest.mark.parametrize(("prompt", "expected"), [
    ("a [b:.5] c", [(10, "a b c")]),
    ("a [b:1.5] c", [(5, "a  c"), (10, "a b c")]),
    ("a [b:13] c", [(3, "a  c"), (10, "a b c")]),
])
def test_a1111_hires_pass_schedule(prompt: str, expected: list[tuple[int, str]]) -> None:
    assert [(s.until_step, s.text) for s in prompt_schedule(prompt, 10, hires_steps=10)] == expected


def test_long_prompts_and_unclosed_brackets_parse() -> None:
    long = prompt_schedule("[a:b:3] [x|y] (z:1.1), " * 3000, 20)
    assert len(long) == 20 and long[0].text.startswith("a x (z:1.1), a x")
    unclosed = prompt_schedule("[a:b:3] [x|y] (z:1.1) [" * 150, 20)  # each unclosed `[` is plain text
    assert len(unclosed) == 20 and unclosed[3].text.startswith("b y (z:1.1) [b y")


def test_embeddings_named_in_prompts() -> None:
    from sdfleet.engine.embedding_names import embeddings_named_in

    files = ["EasyNegative.safetensors", "bad hands.pt", "style", "unused.safetensors"]
    a1111 = embeddings_named_in(["(easynegative:1.2), blurry", "BAD   Hands, style"], files, dialect="a1111")
    assert a1111 == ["EasyNegative.safetensors", "bad hands.pt", "style"]
    comfy = embeddings_named_in(["a cat, embedding:EasyNegative.safetensors (embedding:style:1.1)",
                                 "easynegative"], files, dialect="comfy")
    assert comfy == ["EasyNegative.safetensors", "style"]
