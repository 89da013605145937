"""Image admission: headers checked before decoding, PNG text read without decoding, same answers as Pillow."""

from __future__ import annotations

import io
import zlib
from types import SimpleNamespace

import pytest
from PIL import Image, PngImagePlugin

from sdfleet.engine.executor import Engine, NodeExecutionError
from sdfleet.engine.files import DictModelFiles
from sdfleet.engine.image_admission import (
    ImageRejected,
    ImageTooLarge,
    UnreadableImage,
    admit_image,
    open_admitted,
    read_png_text,
)
from sdfleet.engine.nodes.image import load_image_mask
from tests.fixtures.images import png_bomb, png_chunk, png_image

LIMIT = 4096 * 4096


@pytest.fixture(scope="module")
def bomb() -> bytes:
    return png_bomb(12000, 12000, text={"parameters": "a cat\nSteps: 20, Size: 12000x12000"})


def test_a_bomb_is_refused_from_its_header(bomb):
    with pytest.raises(ImageTooLarge) as caught:
        admit_image(bomb, max_pixels=LIMIT)
    assert (caught.value.width, caught.value.height, caught.value.max_pixels) == (12000, 12000, LIMIT)
    assert "12000x12000" in str(caught.value) and str(LIMIT) in str(caught.value)
    assert "SDFLEET_MAX_IMAGE_PIXELS" in str(caught.value)


def test_the_header_is_checked_before_any_pixel_is_decoded():
    # The pixel data is garbage: decoding it would fail as unreadable, so "too large" proves nothing was decoded.
    broken = png_bomb(5000, 5000)
    idat = broken.index(b"IDAT")
    broken = broken[:idat + 4] + b"\xff" * 64 + broken[idat + 68:]
    with pytest.raises(ImageTooLarge):
        admit_image(broken, max_pixels=LIMIT)
    with pytest.raises(UnreadableImage):
        admit_image(broken[:20], max_pixels=LIMIT)


def test_an_image_within_the_limit_is_admitted_and_decodes():
    header = admit_image(png_image(64, 32), max_pixels=64 * 32)
    assert (header.format, header.width, header.height, header.pixels) == ("PNG", 64, 32, 2048)
    with open_admitted(png_image(8, 8, "blue"), max_pixels=64) as image:
        assert image.convert("RGB").getpixel((0, 0)) == (0, 0, 255)
    with pytest.raises(ImageTooLarge):
        admit_image(png_image(64, 32), max_pixels=64 * 32 - 1)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "GIF", "BMP"])
def test_common_formats_are_admitted(fmt):
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "green").save(buffer, format=fmt)
    assert admit_image(buffer.getvalue(), max_pixels=LIMIT).format == fmt
    with pytest.raises(ImageTooLarge):
        admit_image(buffer.getvalue(), max_pixels=40 * 30 - 1)


@pytest.mark.parametrize("fmt", ["TIFF", "ICO", "PPM"])
def test_rarer_decoders_are_never_reached(fmt):
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format=fmt)
    with pytest.raises(UnreadableImage):
        admit_image(buffer.getvalue(), max_pixels=LIMIT)


def test_png_text_matches_pillow_without_decoding_pixels():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat, <lora:x:0.5>\nNegative prompt: dog\nSteps: 20, Sampler: Euler a")
    info.add_text("prompt", '{"3": {"class_type": "KSampler"}}' * 50, zip=True)
    info.add_itxt("workflow", "ünïcødé ✓", lang="en", tkey="Workflow", zip=True)
    info.add_itxt("plain", "not compressed ✓", zip=False)
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buffer, format="PNG", pnginfo=info)
    png = buffer.getvalue()
    with Image.open(io.BytesIO(png)) as reference:
        reference.load()
        expected = {k: str(v) for k, v in reference.text.items()}
    assert read_png_text(png) == expected and len(expected) == 4


def test_png_text_of_a_bomb_is_read_without_decoding(bomb):
    assert read_png_text(bomb) == {"parameters": "a cat\nSteps: 20, Size: 12000x12000"}


def test_text_after_the_pixels_is_found():
    png = png_image()
    end = png.index(b"IEND") - 4
    tail = png_chunk(b"tEXt", b"late\0after IDAT")
    assert read_png_text(png[:end] + tail + png[end:]) == {"late": "after IDAT"}


def test_a_compressed_text_bomb_is_refused():
    text_bomb = png_chunk(b"zTXt", b"k\0\0" + zlib.compress(b" " * (64 * 1024 * 1024), 9))
    png = png_image()
    end = png.index(b"IEND") - 4
    with pytest.raises(ImageRejected, match="inflates past"):
        read_png_text(png[:end] + text_bomb + png[end:])


def test_damaged_text_and_other_formats():
    png = png_image()
    end = png.index(b"IEND") - 4
    chunk = bytearray(png_chunk(b"tEXt", b"k\0v"))
    chunk[-1] ^= 0xFF
    with pytest.raises(UnreadableImage, match="CRC"):
        read_png_text(png[:end] + bytes(chunk) + png[end:])
    with pytest.raises(UnreadableImage):
        read_png_text(png[:end] + png_chunk(b"tEXt", b"k\0v")[:-6])
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG")
    assert read_png_text(buffer.getvalue()) == {}


def test_the_engine_refuses_a_bomb_naming_the_node(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(2000, 2000))
    files = DictModelFiles(images={"bomb.png": path})
    graph = {"7": {"class_type": "LoadImage", "inputs": {"image": "bomb.png"}},
             "9": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "x"}}}
    with pytest.raises(NodeExecutionError) as caught:
        Engine(device="cpu", max_image_pixels=1000 * 1000).run(graph, files=files)
    assert caught.value.node_id == "7" and caught.value.class_type == "LoadImage"
    assert isinstance(caught.value.error, ImageTooLarge) and "1000000 pixels" in str(caught.value)
    # the same file under a higher limit loads
    assert len(Engine(device="cpu", max_image_pixels=2000 * 2000).run(graph, files=files).images) == 1


def test_load_image_mask_refuses_a_bomb(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(2000, 2000))
    ctx = SimpleNamespace(files=DictModelFiles(images={"bomb.png": path}), max_image_pixels=1000 * 1000)
    with pytest.raises(ImageTooLarge):
        load_image_mask(ctx, image="bomb.png", channel="alpha")
    ctx.max_image_pixels = 2000 * 2000
    assert load_image_mask(ctx, image="bomb.png", channel="alpha")[0].shape == (1, 2000, 2000)
