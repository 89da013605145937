"""Browser helpers for the web UI tests: sign in, set range inputs, make small images."""

from __future__ import annotations

import io

from PIL import Image

from tests.fixtures.runtime import ADMIN_PASSWORD


def sign_in(page, base_url: str, *, username: str = "admin", password: str = ADMIN_PASSWORD,
            path: str = "/") -> None:
    """Open `path`, get sent to the login form, sign in and land back on `path`."""
    page.goto(f"{base_url}{path}")
    assert "/login?next=" in page.url, page.url
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}{path}")


def set_value(page, selector: str, value) -> None:
    """Set an input (range inputs cannot be `fill`ed) and fire `input` + `change`."""
    page.eval_on_selector(selector, """(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true}));
        el.dispatchEvent(new Event('change', {bubbles: true})); }""", str(value))


def png_bytes(size: int = 64, color: tuple[int, int, int] = (200, 60, 40)) -> bytes:
    """A small solid PNG with a lighter square in the middle."""
    image = Image.new("RGB", (size, size), color)
    image.paste((240, 220, 120), (size // 4, size // 4, 3 * size // 4, 3 * size // 4))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
