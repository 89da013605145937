"""Applying prompt styles as A1111 does (modules/styles.py: `{prompt}` placeholder, else ", " + style)."""

from datetime import UTC, datetime

import pytest

from sdfleet.domain.styles import PromptStyle, apply_styles, merge_prompt


def style(prompt: str, negative: str = "") -> PromptStyle:
    return PromptStyle(id="s", name="s", prompt=prompt, negative_prompt=negative, team=False, owner_id="u",
                       updated_at=datetime(2026, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(("style_text", "prompt", "expected"), [
    ("oil painting, masterpiece", "a fox", "a fox, oil painting, masterpiece"),
    ("a photo of {prompt}, 35mm", "a fox", "a photo of a fox, 35mm"),
    ("oil painting", "", "oil painting"),
    ("", "a fox", "a fox"),
    ("{prompt} {prompt}", "x", "x x"),
    ("  trailing  ", "  a fox ", "a fox, trailing"),
])
def test_merge_prompt_follows_a1111(style_text, prompt, expected):
    assert merge_prompt(style_text, prompt) == expected


def test_styles_apply_in_order_to_both_prompts():
    styles = [style("art of {prompt}", "blurry"), style("detailed", "{prompt}, lowres")]
    assert apply_styles("a fox", "ugly", styles) == ("art of a fox, detailed", "ugly, blurry, lowres")
