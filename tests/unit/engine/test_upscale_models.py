"""Upscaler models: a random-weight ESRGAN of the real architecture (RRDBNet, ESRGAN's own key layout) saved as
.safetensors and as a RealESRGAN-style .pth, loaded through spandrel, run by ComfyUI's nodes and A1111's hires fix."""

from __future__ import annotations

import hashlib
import io
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sdfleet.engine.a1111 import compile_a1111
from sdfleet.engine.executor import Engine
from sdfleet.engine.files import DictModelFiles, ModelFile
from sdfleet.engine.image_admission import read_png_text
from sdfleet.engine.infotext import parse_infotext
from sdfleet.engine.nodes.hires import resize_image
from sdfleet.engine.tensor_file import save_safetensors
from sdfleet.engine.upscale_models import UpscaleModelError, load_upscale_model, upscale_pil


@pytest.fixture(scope="module")
def esrgan(tmp_path_factory) -> tuple[torch.nn.Module, dict[str, Path]]:
    from sdfleet.engine.upscale_models import _spandrel

    _spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    module = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4).eval()
    root = tmp_path_factory.mktemp("upscalers")
    state = {k: v.contiguous() for k, v in module.state_dict().items()}
    paths = {"safetensors": save_safetensors(state, root / "tiny-esrgan.safetensors", metadata={}),
             "pth": root / "tiny-esrgan.pth"}
    torch.save({"params_ema": state}, paths["pth"])
    paths["blob"] = root / hashlib.sha256(paths["pth"].read_bytes()).hexdigest()  # the worker's cache names
    shutil.copy(paths["pth"], paths["blob"])
    return module, paths


def _image(seed: int = 1, size: int = 64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8))


def test_both_file_kinds_load_as_the_same_model_without_torchvision(esrgan) -> None:
    module, paths = esrgan
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        expected = module(x).clamp(0, 1)  # spandrel clamps an upscaler's output
    assert expected.std() > 0.01
    for path in paths.values():
        model = load_upscale_model(path)
        assert model.scale == 4 and model.architecture.name == "ESRGAN"
        with torch.no_grad():
            assert torch.allclose(model(x), expected, atol=1e-5)
    assert "torchvision" not in sys.modules


def test_not_an_upscaler_is_refused(tmp_path) -> None:
    path = save_safetensors({"weight": torch.zeros(3, 3)}, tmp_path / "x.safetensors", metadata={})
    with pytest.raises(UpscaleModelError):
        load_upscale_model(path)
    (tmp_path / "junk").write_bytes(b"not a model")
    with pytest.raises(UpscaleModelError):
        load_upscale_model(tmp_path / "junk")


def test_a1111_model_upscale_feeds_bgr_and_lanczos_to_the_size(esrgan) -> None:
    """A1111's resize_image with a 4× model to 2×: one model pass (BGR in, rounded), then Lanczos to 128²."""
    module, paths = esrgan
    model = load_upscale_model(paths["safetensors"])
    image = _image()
    out = resize_image(image, 128, 128, "model", lambda im: upscale_pil(model, im))
    bgr = torch.from_numpy(np.asarray(image)[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        big = module(bgr)[0].clamp(0, 1)
    big_rgb = (big.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[:, :, ::-1]
    reference = Image.fromarray(np.ascontiguousarray(big_rgb)).resize((128, 128), Image.Resampling.LANCZOS)
    assert out.size == (128, 128)
    assert np.abs(np.asarray(out).astype(int) - np.asarray(reference).astype(int)).max() <= 1


def _files(files: DictModelFiles, paths: dict[str, Path]) -> DictModelFiles:
    for name, key in (("tiny-esrgan.safetensors", "safetensors"), ("tiny-esrgan.pth", "blob")):
        files.add_model("upscale_models", name, ModelFile(paths[key], hashlib.sha256(
            paths[key].read_bytes()).hexdigest()))
    return files


def test_comfyui_upscale_nodes_run_the_model_in_rgb(files, esrgan, tmp_path) -> None:
    module, paths = esrgan
    _files(files, paths)
    image = _image(2, 32)
    image.save(tmp_path / "in.png")
    files.images["in.png"] = tmp_path / "in.png"
    for name in ("tiny-esrgan.safetensors", "tiny-esrgan.pth"):
        graph = {
            "load": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": name}},
            "image": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
            "up": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["load", 0],
                                                                     "image": ["image", 0]}},
            "save": {"class_type": "SaveImage", "inputs": {"images": ["up", 0], "filename_prefix": "up"}},
        }
        out = Engine().run(graph, files=files).images[0]
        with torch.no_grad():
            expected = module(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255)[0]
        expected = expected.clamp(0, 1).permute(1, 2, 0).numpy() * 255
        got = np.asarray(Image.open(io.BytesIO(out.png)).convert("RGB")).astype(float)
        assert got.shape == (128, 128, 3) and np.abs(got - expected).max() <= 1.0


def test_hires_fix_with_an_upscaler_model(files, esrgan) -> None:
    _, paths = esrgan
    _files(files, paths)
    compiled = compile_a1111("txt2img", {
        "prompt": "a red cube", "seed": 3, "sampler_name": "Euler", "steps": 2, "width": 64, "height": 64,
        "enable_hr": True, "hr_upscaler": "tiny-esrgan", "denoising_strength": 0.5,
        "override_settings": {"sd_model_checkpoint": "sd1.safetensors"}}, default_checkpoint=None, input_images=[],
        mask_image=None, upscaler_names=["tiny-esrgan.safetensors", "tiny-esrgan.pth"])
    graph = compiled.graph
    assert graph["hr_upscaler"]["inputs"]["model_name"] == "tiny-esrgan.safetensors"
    assert graph["hr_upscale0"]["inputs"]["upscaler"] == "model"
    out = Engine().run(graph, files=files).images[0]
    assert (out.width, out.height) == (128, 128)
    info = parse_infotext(read_png_text(out.png)["parameters"])
    assert info.params["Hires upscaler"] == "tiny-esrgan" and info.params["Size"] == "64x64"


def test_extras_upscale_as_a1111(files, esrgan, tmp_path) -> None:
    """/extra-single-image: Lanczos by 2 (one Lanczos pass), and a model to cover 100×80 centred on that canvas."""
    from sdfleet.engine.a1111_extras import ExtrasInput, compile_extras

    module, paths = esrgan
    _files(files, paths)
    image = _image(4, 32)
    image.save(tmp_path / "in.png")
    files.images["in.png"] = tmp_path / "in.png"
    inputs = [ExtrasInput("in.png", 32, 32)]
    compiled = compile_extras({"upscaler_1": "Lanczos", "upscaling_resize": 2}, inputs)
    assert compiled.info == "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"
    out = Engine().run(compiled.graph, files=files).images[0]
    reference = image.resize((64, 64), Image.Resampling.LANCZOS)
    assert np.abs(_pixels_of(out.png) - np.asarray(reference).astype(int)).max() <= 1
    compiled = compile_extras({"upscaler_1": "tiny-esrgan", "resize_mode": 1, "upscaling_resize_w": 100,
                               "upscaling_resize_h": 80}, inputs, upscaler_names=["tiny-esrgan.safetensors"])
    out = Engine().run(compiled.graph, files=files).images[0]
    # scale max(100/32, 80/32) = 3.125: one 4× pass (128), Lanczos to 96 (= 100 // 8 * 8), pasted at (2, -8)
    model = load_upscale_model(paths["safetensors"])
    big = upscale_pil(model, image).resize((96, 96), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (100, 80))
    canvas.paste(big, box=(2, -8))
    assert (out.width, out.height) == (100, 80)
    assert np.abs(_pixels_of(out.png) - np.asarray(canvas).astype(int)).max() <= 1
    assert compile_extras({"upscaler_1": "None"}, inputs).info == ""


def _pixels_of(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


@pytest.mark.parametrize(("fields", "name"), [
    ({"gfpgan_visibility": 0.5}, "gfpgan_visibility"), ({"codeformer_visibility": 1}, "codeformer_visibility"),
    ({"upscaler_2": "Lanczos", "extras_upscaler_2_visibility": 0.3}, "extras_upscaler_2_visibility"),
    ({"upscaler_1": "SwinIR_4x"}, "upscaler_1"), ({"resize_mode": 2}, "resize_mode"),
    ({"upscaler_1": "Lanczos", "upscaling_resize": 16, "resize_mode": 0}, "upscaling_resize"),
])
def test_extras_fields_refused_by_name(fields, name) -> None:
    from sdfleet.engine.a1111_extras import ExtrasInput, compile_extras
    from sdfleet.engine.a1111_fields import InvalidField, UnsupportedField

    with pytest.raises((InvalidField, UnsupportedField)) as info:
        compile_extras(fields, [ExtrasInput("in.png", 2048, 2048)])
    assert info.value.name == name
