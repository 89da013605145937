"""ControlNet files of the original SD 1.5 layout, and A1111 ControlNet units against diffusers' ControlNet pipeline."""

from __future__ import annotations

import copy
import hashlib
import io
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel, EulerDiscreteScheduler, StableDiffusionControlNetPipeline, UNet2DConditionModel
from PIL import Image

from sdfleet.engine.a1111 import compile_a1111
from sdfleet.engine.a1111_fields import InvalidField, UnsupportedField
from sdfleet.engine.checkpoints import read_state_dict
from sdfleet.engine.controlnet_files import (
    controlnet_to_ldm,
    ldm_controlnet_config,
    load_ldm_controlnet,
    write_ldm_controlnet,
)
from sdfleet.engine.executor import Engine
from sdfleet.engine.files import DictModelFiles, ModelFile
from sdfleet.engine.tiny import SD15_HINT_CHANNELS, tiny_controlnet
from sdfleet.modelfiles.architecture import detect_architecture

TOLERANCE = 2  # out of 255, as the engine-vs-diffusers tests
CN_FILE = "control_v11p_sd15_tiny.safetensors"


@pytest.fixture(scope="module")
def sd1(model_dir: Path):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline.from_pretrained(model_dir / "sd1", safety_checker=None)


@pytest.fixture(scope="module")
def controlnet(sd1) -> ControlNetModel:
    return tiny_controlnet(sd1.unet, seed=0)


@pytest.fixture(scope="module")
def cn_dir(tmp_path_factory, controlnet) -> Path:
    root = tmp_path_factory.mktemp("controlnet")
    write_ldm_controlnet(controlnet, root / CN_FILE)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "hint.png")
    Image.fromarray(rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)).save(root / "wide.png")
    return root


@pytest.fixture()
def cn_files(files: DictModelFiles, cn_dir: Path) -> DictModelFiles:
    path = cn_dir / CN_FILE
    files.add_model("controlnet", CN_FILE, ModelFile(path, hashlib.sha256(path.read_bytes()).hexdigest()))
    files.images["hint.png"] = cn_dir / "hint.png"
    files.images["wide.png"] = cn_dir / "wide.png"
    return files


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _payload(*, empty: bool = False, **unit) -> dict:
    base = {"enabled": True, "module": "none", "model": "control_v11p_sd15_tiny [0123abcd]", "weight": 0.8}
    return {"prompt": "a red cat", "negative_prompt": "blurry", "steps": 5, "cfg_scale": 6.5, "width": 64,
            "height": 64, "seed": 7, "sampler_name": "Euler",
            "alwayson_scripts": {"controlnet": {"args": [] if empty else [{**base, **unit}]}}}


def _compile(params: dict, *, images: dict | None = None, task: str = "txt2img", input_images=()):
    return compile_a1111(task, params, default_checkpoint="sd1.safetensors", input_images=list(input_images),
                         mask_image=None, control_images={0: "hint.png"} if images is None else images,
                         controlnet_names=[CN_FILE])


# -- the file -------------------------------------------------------------------------------------


def test_file_has_the_released_sd15_controlnet_layout(cn_dir: Path, controlnet: ControlNetModel) -> None:
    tensors, metadata = read_state_dict(cn_dir / CN_FILE)
    assert "sdfleet.configs" not in metadata  # nothing a released file lacks
    heads = {k.split(".")[0] for k in tensors}
    assert heads == {"time_embed", "input_blocks", "middle_block", "input_hint_block", "zero_convs", "middle_block_out"}
    assert {int(k.split(".")[1]) for k in tensors if k.startswith("input_hint_block.")} == set(range(0, 15, 2))
    blocks = {int(k.split(".")[1]) for k in tensors if k.startswith("input_blocks.")}
    assert {int(k.split(".")[1]) for k in tensors if k.startswith("zero_convs.")} == blocks
    detection = detect_architecture({k: tuple(v.shape) for k, v in tensors.items()})
    assert (str(detection.model_type), detection.layout) == ("ControlNet", "ldm")


def test_ldm_file_loads_to_the_weights_it_was_written_from(cn_dir: Path, controlnet: ControlNetModel) -> None:
    loaded = load_ldm_controlnet(read_state_dict(cn_dir / CN_FILE)[0])
    expected = controlnet.state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())
    # the older `control_model.`-prefixed files read the same
    prefixed = {f"control_model.{k}": v for k, v in read_state_dict(cn_dir / CN_FILE)[0].items()}
    assert torch.equal(load_ldm_controlnet(prefixed).controlnet_mid_block.weight, controlnet.controlnet_mid_block.weight)


def test_real_size_sd15_controlnet_config_is_read_from_shapes() -> None:
    configs = json.loads(resources.files("sdfleet.engine.configs").joinpath("sd15.json").read_text())
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(configs["unet"])
        model = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=SD15_HINT_CHANNELS,
                                          load_weights_from_unet=False)
    tensors = controlnet_to_ldm(model)
    # shapes a released control_v11p_sd15_*.safetensors holds
    assert tuple(tensors["input_hint_block.14.weight"].shape) == (320, 256, 3, 3)
    assert tuple(tensors["zero_convs.11.0.weight"].shape) == (1280, 1280, 1, 1)
    assert tuple(tensors["input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"].shape) == (320, 768)
    assert tuple(tensors["middle_block_out.0.weight"].shape) == (1280, 1280, 1, 1)
    config = ldm_controlnet_config(tensors)
    assert config["block_out_channels"] == [320, 640, 1280, 1280] and config["layers_per_block"] == 2
    assert config["down_block_types"] == configs["unet"]["down_block_types"]
    assert (config["cross_attention_dim"], config["attention_head_dim"]) == (768, 8)
    assert config["conditioning_embedding_out_channels"] == list(SD15_HINT_CHANNELS)


# -- A1111 units against the oracle -----------------------------------------------------------------


def _oracle(sd1, controlnet, cn_dir: Path) -> np.ndarray:
    pipe = StableDiffusionControlNetPipeline(
        vae=sd1.vae, text_encoder=sd1.text_encoder, tokenizer=sd1.tokenizer, unet=sd1.unet, controlnet=controlnet,
        scheduler=EulerDiscreteScheduler.from_config(sd1.scheduler.config, timestep_spacing="linspace"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    expected = pipe("a red cat", image=Image.open(cn_dir / "hint.png"), negative_prompt="blurry",
                    num_inference_steps=5, guidance_scale=6.5, controlnet_conditioning_scale=0.8, height=64,
                    width=64, generator=torch.Generator("cpu").manual_seed(7), output_type="np").images[0]
    return (expected * 255).round().astype(int)


def test_a1111_unit_matches_controlnet_pipeline(cn_files: DictModelFiles, cn_dir: Path, sd1, controlnet) -> None:
    compiled = _compile(_payload())  # resize_mode unset: the extension's "Crop and Resize"
    got = _pixels(Engine().run(compiled.graph, files=cn_files).images[0].png)
    expected = _oracle(sd1, controlnet, cn_dir)
    assert np.abs(got - expected).max() <= TOLERANCE
    # without the unit the image differs, so the comparison can fail
    plain = _compile({k: v for k, v in _payload().items() if k != "alwayson_scripts"})
    assert np.abs(_pixels(Engine().run(plain.graph, files=cn_files).images[0].png) - expected).max() > 10


@pytest.mark.parametrize("mode", [1, 2])
def test_control_modes_match_the_extension_rule(cn_files: DictModelFiles, cn_dir: Path, sd1, controlnet,
                                                mode: int) -> None:
    """sd-webui-controlnet (hook.py): modes 1 and 2 scale residual i of 13 by 0.825 ** (12 - i) (zipped with the
    residuals), and mode 2 applies the control to the conditional rows only. The reference wraps the diffusers
    ControlNet of the pipeline with that rule (the pipeline batches [negative, positive])."""
    compiled = _compile(_payload(control_mode=mode))
    assert compiled.graph["cn0"]["class_type"] == "ControlNetApplyA1111"
    got = _pixels(Engine().run(compiled.graph, files=cn_files).images[0].png)

    patched = copy.deepcopy(controlnet)
    plain_forward = patched.forward

    def extension_rule(*args, **kwargs):
        down, mid = plain_forward(*args, **kwargs)
        scales = [0.825 ** float(12 - i) for i in range(13)]
        outs = [c * s for c, s in zip([*down, mid], scales, strict=False)]
        if mode == 2:
            half = outs[0].shape[0] // 2
            mark = torch.tensor([0.0] * half + [1.0] * half).view(-1, 1, 1, 1)
            outs = [c * mark for c in outs]
        return outs[:-1], outs[-1]

    patched.forward = extension_rule
    expected = _oracle(sd1, patched, cn_dir)
    assert np.abs(got - expected).max() <= TOLERANCE
    balanced = _oracle(sd1, controlnet, cn_dir)
    assert np.abs(balanced - expected).max() > TOLERANCE  # the mode changes the image


def test_disabled_units_and_empty_args_compile_to_no_controlnet() -> None:
    for params in (_payload(enabled=False), _payload(empty=True), {**_payload(), "alwayson_scripts": {"ControlNet": {}}}):
        graph = _compile(params, images={}).graph
        assert not any(n["class_type"].startswith("ControlNet") for n in graph.values())


def test_unit_fields_and_aliases_reach_the_nodes() -> None:
    graph = _compile(_payload(input_image="ignored-here", guidance_start=0.2, guidance=0.7, weight=1.3,
                              resize_mode="Just Resize", control_mode="Balanced", pixel_perfect=True,
                              processor_res=-1, threshold_a=-1, threshold_b=-1, lowvram=True)).graph
    apply = graph["cn0"]["inputs"]
    assert (apply["strength"], apply["start_percent"], apply["end_percent"]) == (1.3, 0.2, 0.7)
    assert apply["image"] == ["cn0_hint", 0] and graph["cn0_image"]["inputs"]["image"] == "hint.png"
    assert graph["cn0_hint"]["inputs"] == {"image": ["cn0_image", 0], "width": 64, "height": 64,
                                           "resize_mode": "Just Resize"}
    assert graph["sample0"]["inputs"]["positive"] == ["cn0", 0]
    assert graph["cn0_model"]["inputs"]["control_net_name"] == CN_FILE
    for mode, name in ((None, "Crop and Resize"), (1, "Crop and Resize"), (2, "Resize and Fill"),
                       ("Envelope (Outer Fit)", "Resize and Fill"), (3, "Just Resize")):
        unit = {} if mode is None else {"resize_mode": mode}
        assert _compile(_payload(**unit)).graph["cn0_hint"]["inputs"]["resize_mode"] == name, mode
    # img2img without a unit image uses the init image, as the extension does
    i2i = _compile({**_payload(), "denoising_strength": 0.5}, images={}, task="img2img", input_images=["init.png"])
    assert i2i.graph["cn0_image"]["inputs"]["image"] == "init.png"


def test_either_image_field_carries_the_control_image() -> None:
    from sdfleet.engine.a1111_controlnet import unit_images

    for unit, field in (({"input_image": "b64", "image": None}, "input_image"),
                        ({"image": None, "input_image": "b64"}, "input_image"),
                        ({"image": "b64", "input_image": ""}, "image"),
                        ({"image": {"image": "b64", "mask": None}}, "image.image")):
        found = unit_images({"alwayson_scripts": {"controlnet": {"args": [{"enabled": False}, unit]}}})
        assert found == [(1, f"alwayson_scripts.controlnet.args[1].{field}", "b64")], unit


def _blocks(height: int, width: int, colours: list[tuple[int, int, int]]) -> torch.Tensor:
    """[1, H, W, 3]: vertical stripes of equal width, one per colour."""
    image = torch.zeros(1, height, width, 3)
    step = width // len(colours)
    for i, colour in enumerate(colours):
        image[:, :, i * step:(i + 1) * step] = torch.tensor(colour) / 255
    return image


def test_hint_resize_modes_follow_the_extension() -> None:
    from sdfleet.engine.nodes.controlnet_hint import size_hint

    red, green, blue = (255, 0, 0), (0, 255, 0), (0, 0, 255)
    # 16 × 32 stripes red | green green | blue, to 64 × 64
    image = _blocks(16, 32, [red, green, green, blue])
    just = size_hint(image, width=64, height=64, resize_mode="Just Resize")
    assert just.shape == (1, 64, 64, 3) and torch.allclose(just[0, :, 2], torch.tensor(red) / 255)
    # cover (64 × 128), crop the middle 64 columns: the green half only (two edge columns blend)
    crop = size_hint(image, width=64, height=64, resize_mode="Crop and Resize")
    assert crop.shape == (1, 64, 64, 3) and torch.allclose(crop[0, :, 2:62], torch.tensor(green) / 255)
    # fit (32 × 64) in the middle rows; the rows above and below take numpy's per-channel median of the border
    image = _blocks(16, 32, [red, green, green, green])
    pixels = (image[0].numpy() * 255).round().astype(np.uint8)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]], axis=0)
    colour = tuple(int(v) for v in np.median(border, axis=0).astype(np.uint8))
    assert colour == green  # 64 of the 96 border pixels are green
    fill = size_hint(image, width=64, height=64, resize_mode="Resize and Fill")
    assert torch.equal(fill[0, :16], torch.tensor(green).expand(16, 64, 3) / 255)
    assert torch.equal(fill[0, 48:], torch.tensor(green).expand(16, 64, 3) / 255)
    assert torch.allclose(fill[0, 16:48, 2], torch.tensor(red) / 255)
    # already at size: unchanged in every mode
    same = _blocks(64, 64, [red, blue])
    assert all(torch.equal(size_hint(same, width=64, height=64, resize_mode=m), same)
               for m in ("Just Resize", "Crop and Resize", "Resize and Fill"))


def test_hires_fix_applies_the_units_to_both_passes() -> None:
    graph = _compile({**_payload(), "enable_hr": True, "hr_scale": 2, "hr_upscaler": "Latent"}).graph
    assert graph["hr_sample0"]["inputs"]["positive"] == ["hr_cn0", 0]
    assert graph["hr_cn0_hint"]["inputs"]["width"] == 128
    # the extension's hr_option: which passes the unit controls
    hires = {"enable_hr": True, "hr_scale": 2, "hr_upscaler": "Latent"}
    low = _compile({**_payload(hr_option="Low res only"), **hires}).graph
    assert low["sample0"]["inputs"]["positive"] == ["cn0", 0] and low["hr_sample0"]["inputs"]["positive"] == [
        "hr_prompt", 0]
    high = _compile({**_payload(hr_option=2), **hires}).graph
    assert high["sample0"]["inputs"]["positive"] == ["prompt", 0]
    assert high["hr_sample0"]["inputs"]["positive"] == ["hr_cn0", 0]
    # without hires fix a "High res only" unit does nothing, as in the extension
    alone = _compile(_payload(hr_option="High res only")).graph
    assert alone["sample0"]["inputs"]["positive"] == ["prompt", 0]


@pytest.mark.parametrize(("unit", "field", "error"), [
    ({"module": "canny"}, "module", UnsupportedField),
    ({"control_mode": 7}, "control_mode", InvalidField),
    ({"resize_mode": 5}, "resize_mode", InvalidField),
    ({"resize_mode": "Stretch"}, "resize_mode", InvalidField),
    ({"mask": "abc"}, "mask", UnsupportedField),
    ({"guessmode": True}, "guessmode", UnsupportedField),
    ({"hr_option": "Sometimes"}, "hr_option", InvalidField),
    ({"frobnicate": 1}, "frobnicate", UnsupportedField),
    ({"model": "no_such_model [12345678]"}, "model", InvalidField),
    ({"model": "None"}, "model", InvalidField),
    ({"weight": -1}, "weight", InvalidField),
    ({"guidance_start": 0.8, "guidance_end": 0.5}, "guidance_start", InvalidField),
])
def test_refused_unit_options_name_the_field(unit: dict, field: str, error: type) -> None:
    with pytest.raises(error) as caught:
        _compile(_payload(**unit))
    assert caught.value.name == f"alwayson_scripts.controlnet.args[0].{field}"


def test_an_enabled_unit_without_an_image_is_refused() -> None:
    with pytest.raises(InvalidField) as caught:
        _compile(_payload(), images={})
    assert caught.value.name == "alwayson_scripts.controlnet.args[0].image"
