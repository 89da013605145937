"""ComfyUI's image and mask nodes against their documented behaviour computed independently here (numpy loops,
scipy.ndimage, PIL), and the work estimate's shapes against what the nodes really produce."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.ndimage
import torch
from PIL import Image

from sdfleet.engine.executor import node_registry
from sdfleet.engine.work_estimate import propagate_shapes

CTX = SimpleNamespace(check_cancel=lambda: None)
RNG = np.random.default_rng(7)


def run(class_type: str, **inputs):
    """Execute one node's function directly (these nodes need no models)."""
    return node_registry().get(class_type).execute(CTX, **inputs)


def rand(*shape: int) -> torch.Tensor:
    return torch.from_numpy(RNG.random(shape, dtype=np.float32))


def test_solid_mask_and_mask_to_image_and_back():
    (mask,) = run("SolidMask", value=0.25, width=5, height=3)
    assert mask.shape == (1, 3, 5) and torch.all(mask == 0.25)
    (image,) = run("MaskToImage", mask=mask)
    assert image.shape == (1, 3, 5, 3) and torch.all(image == 0.25)
    picture = rand(2, 4, 6, 3)
    for index, channel in enumerate(("red", "green", "blue")):
        (got,) = run("ImageToMask", image=picture, channel=channel)
        np.testing.assert_array_equal(got.numpy(), picture.numpy()[..., index])
    (alpha,) = run("ImageToMask", image=picture, channel="alpha")
    assert torch.all(alpha == 1.0), "an RGB image is opaque"


def _composite_reference(dst: np.ndarray, src: np.ndarray, x: int, y: int, op: str) -> np.ndarray:
    out = dst.copy()
    for b in range(out.shape[0]):
        for row in range(src.shape[1]):
            for col in range(src.shape[2]):
                ty, tx = y + row, x + col
                if ty >= out.shape[1] or tx >= out.shape[2]:
                    continue
                d, s = float(out[b, ty, tx]), float(src[b, row, col])
                if op == "multiply":
                    v = d * s
                elif op == "add":
                    v = d + s
                elif op == "subtract":
                    v = d - s
                else:
                    a, c = round(d) >= 1, round(s) >= 1
                    v = float({"and": a and c, "or": a or c, "xor": a != c}[op])
                out[b, ty, tx] = min(max(v, 0.0), 1.0)
    return np.clip(out, 0, 1)


@pytest.mark.parametrize("operation", ["multiply", "add", "subtract", "and", "or", "xor"])
def test_mask_composite_matches_a_pixel_loop(operation):
    dst, src = rand(2, 6, 7), rand(2, 4, 4)
    (got,) = run("MaskComposite", destination=dst, source=src, x=5, y=3, operation=operation)
    np.testing.assert_allclose(got.numpy(), _composite_reference(dst.numpy(), src.numpy(), 5, 3, operation),
                               atol=1e-6)
    (outside,) = run("MaskComposite", destination=dst, source=src, x=7, y=0, operation=operation)
    np.testing.assert_array_equal(outside.numpy(), dst.numpy())


@pytest.mark.parametrize("expand", [3, -2, 0])
@pytest.mark.parametrize("tapered", [True, False])
def test_grow_mask_is_repeated_grey_dilation_or_erosion(expand, tapered):
    mask = (rand(2, 12, 9) > 0.8).float() * rand(2, 12, 9)
    (got,) = run("GrowMask", mask=mask, expand=expand, tapered_corners=tapered)
    c = 0 if tapered else 1
    footprint = np.array([[c, 1, c], [1, 1, 1], [c, 1, c]])
    expected = []
    for m in mask.numpy():
        for _ in range(abs(expand)):
            op = scipy.ndimage.grey_erosion if expand < 0 else scipy.ndimage.grey_dilation
            m = op(m, footprint=footprint)
        expected.append(m)
    np.testing.assert_array_equal(got.numpy(), np.stack(expected))


def test_grow_mask_stops_once_the_mask_cannot_change():
    mask = torch.zeros(1, 5, 4)
    mask[0, 2, 1] = 1
    (got,) = run("GrowMask", mask=mask, expand=16384, tapered_corners=True)
    assert torch.all(got == 1)


def test_feather_mask_matches_the_documented_ramps():
    mask = rand(1, 6, 8)
    (got,) = run("FeatherMask", mask=mask, left=3, top=2, right=20, bottom=0)
    expected = mask.numpy().copy()
    left, right, top = 3, 8, 2  # right is limited to the width
    for x in range(left):
        expected[:, :, x] *= (x + 1) / left
    for x in range(right):
        expected[:, :, -(x + 1)] *= (x + 1) / right
    for y in range(top):
        expected[:, y, :] *= (y + 1) / top
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def test_crop_mask_and_image_crop_clip_to_the_edges():
    mask, image = rand(2, 10, 12), rand(1, 10, 12, 3)
    (got,) = run("CropMask", mask=mask, x=4, y=6, width=5, height=100)
    np.testing.assert_array_equal(got.numpy(), mask.numpy()[:, 6:, 4:9])
    (edge,) = run("CropMask", mask=mask, x=50, y=50, width=5, height=5)
    assert edge.shape == (2, 1, 1) and edge[0, 0, 0] == mask[0, -1, -1]
    (crop,) = run("ImageCrop", image=image, width=4, height=3, x=9, y=2)
    np.testing.assert_array_equal(crop.numpy(), image.numpy()[:, 2:5, 9:12])


def test_empty_image_invert_and_batch():
    (image,) = run("EmptyImage", width=4, height=2, batch_size=3, color=0xFF8000)
    assert image.shape == (3, 2, 4, 3)
    np.testing.assert_allclose(image[0, 0, 0].numpy(), [1.0, 128 / 255, 0.0])
    (inverted,) = run("ImageInvert", image=image)
    np.testing.assert_allclose(inverted.numpy(), 1.0 - image.numpy())
    other = rand(2, 8, 4, 3)  # taller: centre-cropped to 2:1 (rows 3, 4), then bilinear to 2×4
    (batch,) = run("ImageBatch", image1=image, image2=other)
    assert batch.shape == (5, 2, 4, 3)
    expected = torch.nn.functional.interpolate(other[:, 3:5].movedim(-1, 1), size=(2, 4), mode="bilinear")
    np.testing.assert_allclose(batch[3:].numpy(), expected.movedim(1, -1).numpy(), atol=1e-6)


def _outpaint_reference(h: int, w: int, left: int, top: int, right: int, bottom: int, feathering: int):
    mask = np.ones((h + top + bottom, w + left + right), dtype=np.float32)
    inner = np.zeros((h, w), dtype=np.float32)
    if feathering > 0 and feathering * 2 < h and feathering * 2 < w:
        for i in range(h):
            for j in range(w):
                d = min(i if top else h, h - i if bottom else h, j if left else w, w - j if right else w)
                if d < feathering:
                    inner[i, j] = ((feathering - d) / feathering) ** 2
    mask[top:top + h, left:left + w] = inner
    return mask


@pytest.mark.parametrize("sides", [(8, 0, 16, 8), (0, 8, 0, 0)])
def test_image_pad_for_outpaint_matches_the_documented_feathering(sides):
    left, top, right, bottom = sides
    image = rand(2, 20, 24, 3)
    padded, mask = run("ImagePadForOutpaint", image=image, left=left, top=top, right=right, bottom=bottom,
                       feathering=6)
    assert padded.shape == (2, 20 + top + bottom, 24 + left + right, 3)
    np.testing.assert_array_equal(padded[:, top:top + 20, left:left + 24].numpy(), image.numpy())
    if left:
        assert torch.all(padded[:, :, :left] == 0.5)
    np.testing.assert_allclose(mask[0].numpy(), _outpaint_reference(20, 24, left, top, right, bottom, 6),
                               atol=1e-6)


@pytest.mark.parametrize("mode", ["normal", "multiply", "screen", "overlay", "soft_light", "difference"])
def test_image_blend_modes(mode):
    a, b = rand(1, 5, 6, 3).numpy(), rand(1, 5, 6, 3).numpy()
    g = np.where(a <= 0.25, ((16 * a - 12) * a + 4) * a, np.sqrt(a))
    blended = {"normal": b, "multiply": a * b, "screen": 1 - (1 - a) * (1 - b),
               "overlay": np.where(a <= 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b)),
               "soft_light": np.where(b <= 0.5, a - (1 - 2 * b) * a * (1 - a), a + (2 * b - 1) * (g - a)),
               "difference": a - b}[mode]
    (got,) = run("ImageBlend", image1=torch.from_numpy(a), image2=torch.from_numpy(b), blend_factor=0.3,
                 blend_mode=mode)
    np.testing.assert_allclose(got.numpy(), np.clip(a * 0.7 + blended * 0.3, 0, 1), atol=1e-6)


def test_image_scale_to_total_pixels_keeps_the_aspect_and_lanczos_is_pils():
    image = rand(1, 30, 40, 3)
    (got,) = run("ImageScaleToTotalPixels", image=image, upscale_method="lanczos", megapixels=0.01,
                 resolution_steps=1)
    # 0.01 MP = 10485.76 px at 4:3 → scale √(10485.76/1200) ≈ 2.956: 118×89
    assert got.shape == (1, 89, 118, 3)
    pil = Image.fromarray((image[0].numpy() * 255).clip(0, 255).astype(np.uint8)).resize(
        (118, 89), resample=Image.Resampling.LANCZOS)
    np.testing.assert_allclose(got[0].numpy(), np.asarray(pil, dtype=np.float32) / 255, atol=1e-6)
    (stepped,) = run("ImageScaleToTotalPixels", image=image, upscale_method="bilinear", megapixels=0.01,
                     resolution_steps=16)
    assert stepped.shape == (1, 96, 112, 3)


def test_shapes_the_work_estimate_propagates_equal_the_nodes_outputs():
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 40, "height": 24, "batch_size": 2, "color": 0}},
        "2": {"class_type": "ImageCrop", "inputs": {"image": ["1", 0], "width": 30, "height": 99, "x": 16, "y": 4}},
        "3": {"class_type": "ImagePadForOutpaint", "inputs": {"image": ["2", 0], "left": 8, "top": 0, "right": 16,
                                                              "bottom": 8, "feathering": 4}},
        "4": {"class_type": "ImageBatch", "inputs": {"image1": ["3", 0], "image2": ["1", 0]}},
        "5": {"class_type": "ImageScaleToTotalPixels", "inputs": {"image": ["4", 0], "upscale_method": "area",
                                                                  "megapixels": 0.01, "resolution_steps": 8}},
        "6": {"class_type": "ImageToMask", "inputs": {"image": ["5", 0], "channel": "green"}},
        "7": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 8, "height": 8}},
        "8": {"class_type": "MaskComposite", "inputs": {"destination": ["6", 0], "source": ["7", 0], "x": 2,
                                                        "y": 2, "operation": "add"}},
        "9": {"class_type": "CropMask", "inputs": {"mask": ["8", 0], "x": 3, "y": 5, "width": 1000, "height": 9}},
        "10": {"class_type": "GrowMask", "inputs": {"mask": ["9", 0], "expand": 2, "tapered_corners": True}},
        "11": {"class_type": "FeatherMask", "inputs": {"mask": ["10", 0], "left": 2, "top": 2, "right": 2,
                                                       "bottom": 2}},
        "12": {"class_type": "MaskToImage", "inputs": {"mask": ["11", 0]}},
        "13": {"class_type": "ImageBlend", "inputs": {"image1": ["12", 0], "image2": ["1", 0], "blend_factor": 0.5,
                                                      "blend_mode": "screen"}},
        "14": {"class_type": "ImageInvert", "inputs": {"image": ["13", 0]}},
        "15": {"class_type": "ImageCompositeMasked", "inputs": {"destination": ["14", 0], "source": ["4", 0],
                                                                "x": 0, "y": 0, "resize_source": False}},
    }
    shapes = propagate_shapes(graph, lambda name: (0, 0))
    values: dict[str, tuple] = {}
    for node_id, node in graph.items():
        kwargs = {k: values[v[0]][v[1]] if isinstance(v, list) else v for k, v in node["inputs"].items()}
        values[node_id] = run(node["class_type"], **kwargs)
        for index, value in enumerate(values[node_id]):
            shape = shapes[(node_id, index)]
            batch, height, width = value.shape[:3]  # MASK [B, H, W] and IMAGE [B, H, W, C]
            assert (shape.batch, shape.height, shape.width) == (batch, height, width), (node_id, node["class_type"])
