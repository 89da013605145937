"""ComfyUI's latent nodes and the Primitive* value nodes against their documented behaviour computed here, the
work estimate's shapes through them, and LatentFromBatch drawing the noise its item had in the whole batch
(run on the tiny SD1 model)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from sdfleet.engine.executor import Engine, node_registry
from sdfleet.engine.files import DictModelFiles
from sdfleet.engine.work_estimate import Shape, estimate_work, propagate_shapes
from tests.unit.engine.conftest import txt2img_graph

CTX = SimpleNamespace(check_cancel=lambda: None)
RNG = np.random.default_rng(11)


def run(class_type: str, **inputs):
    return node_registry().get(class_type).execute(CTX, **inputs)


def latent(batch: int, height: int, width: int) -> dict:
    return {"samples": torch.from_numpy(RNG.standard_normal((batch, 4, height, width), dtype=np.float32))}


def _feathered_reference(to: np.ndarray, piece: np.ndarray, x: int, y: int, feather: int) -> np.ndarray:
    out = to.copy()
    ph, pw = min(piece.shape[2], to.shape[2] - y), min(piece.shape[3], to.shape[3] - x)
    for row in range(ph):
        for col in range(pw):
            w = 1.0
            for t in range(feather):
                f = (t + 1) / feather
                w *= f if (y != 0 and row == t) else 1
                w *= f if (y + ph < to.shape[2] and row == ph - 1 - t) else 1
                w *= f if (x != 0 and col == t) else 1
                w *= f if (x + pw < to.shape[3] and col == pw - 1 - t) else 1
            out[:, :, y + row, x + col] = piece[:, :, row, col] * w + to[:, :, y + row, x + col] * (1 - w)
    return out


@pytest.mark.parametrize("feather", [0, 16])
def test_latent_composite_pastes_with_the_documented_feather(feather):
    to, piece = latent(2, 10, 12), latent(1, 6, 6)
    (got,) = run("LatentComposite", samples_to=to, samples_from=piece, x=48, y=16, feather=feather)
    expected = _feathered_reference(to["samples"].numpy(), np.repeat(piece["samples"].numpy(), 2, axis=0), 6, 2,
                                    feather // 8)
    np.testing.assert_allclose(got["samples"].numpy(), expected, atol=1e-6)
    assert not torch.equal(got["samples"], to["samples"]), "the destination is not changed in place"


def test_latent_composite_masked_blends_through_the_mask_in_latent_units():
    dst, src = latent(1, 8, 8), latent(1, 4, 4)
    mask = torch.zeros(1, 32, 32)  # pixel-sized mask over the 4×4 source: bilinear down to 4×4
    mask[:, :, 16:] = 1
    (got,) = run("LatentCompositeMasked", destination=dst, source=src, x=16, y=40, resize_source=False, mask=mask)
    expected = dst["samples"].numpy().copy()
    m = torch.nn.functional.interpolate(mask[:, None], size=(4, 4), mode="bilinear").numpy()
    region = expected[:, :, 5:8, 2:6]
    expected[:, :, 5:8, 2:6] = src["samples"].numpy()[:, :, :3] * m[:, :, :3] + region * (1 - m[:, :, :3])
    np.testing.assert_allclose(got["samples"].numpy(), expected, atol=1e-6)


def test_latent_blend_flip_rotate_crop():
    a, b = latent(2, 6, 8), latent(2, 6, 8)
    (blend,) = run("LatentBlend", samples1=a, samples2=b, blend_factor=0.25)
    np.testing.assert_allclose(blend["samples"].numpy(), a["samples"].numpy() * 0.25 + b["samples"].numpy() * 0.75,
                               atol=1e-6)
    x = a["samples"].numpy()
    (flip,) = run("LatentFlip", samples=a, flip_method="x-axis: vertically")
    np.testing.assert_array_equal(flip["samples"].numpy(), x[:, :, ::-1])
    (flip,) = run("LatentFlip", samples=a, flip_method="y-axis: horizontally")
    np.testing.assert_array_equal(flip["samples"].numpy(), x[:, :, :, ::-1])
    for rotation, k in (("none", 0), ("90 degrees", 1), ("180 degrees", 2), ("270 degrees", 3)):
        (turned,) = run("LatentRotate", samples=a, rotation=rotation)
        np.testing.assert_array_equal(turned["samples"].numpy(), np.rot90(x, k=-k, axes=(2, 3)))  # clockwise
    big = latent(1, 20, 24)
    (crop,) = run("LatentCrop", samples=big, width=64, height=80, x=40, y=1000)
    # y is pulled back so 64 px remain (20 - 8 = 12); x = 40 // 8 = 5
    np.testing.assert_array_equal(crop["samples"].numpy(), big["samples"].numpy()[:, :, 12:20, 5:13])


def test_latent_from_batch_and_repeat_keep_batch_indices():
    batch = latent(5, 4, 4)
    batch["noise_mask"] = torch.rand(5, 1, 32, 32)
    (picked,) = run("LatentFromBatch", samples=batch, batch_index=3, length=10)
    np.testing.assert_array_equal(picked["samples"].numpy(), batch["samples"].numpy()[3:5])
    np.testing.assert_array_equal(picked["noise_mask"].numpy(), batch["noise_mask"].numpy()[3:5])
    assert picked["batch_index"] == [3, 4]
    (again,) = run("RepeatLatentBatch", samples=picked, amount=2)
    assert again["batch_index"] == [3, 4, 5, 6]
    (last,) = run("LatentFromBatch", samples=batch, batch_index=63, length=1)
    assert last["batch_index"] == [4]


def test_latent_from_batch_samples_the_image_it_had_in_the_batch(files: DictModelFiles) -> None:
    engine = Engine()
    whole = engine.run(txt2img_graph(seed=5, batch=3, steps=3), files=files)
    graph = txt2img_graph(seed=5, batch=3, steps=3)
    graph["20"] = {"class_type": "LatentFromBatch", "inputs": {"samples": ["5", 0], "batch_index": 2, "length": 1}}
    graph["3"]["inputs"]["latent_image"] = ["20", 0]
    alone = engine.run(graph, files=files)
    assert len(alone.images) == 1

    def pixels(png: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)

    assert np.abs(pixels(alone.images[0].png) - pixels(whole.images[2].png)).max() <= 1
    assert np.abs(pixels(alone.images[0].png) - pixels(whole.images[0].png)).mean() > 5


def test_primitives_pass_their_value_and_the_estimate_reads_through_them(files: DictModelFiles) -> None:
    graph = txt2img_graph(steps=2)
    graph["30"] = {"class_type": "PrimitiveInt", "inputs": {"value": 72}}
    graph["31"] = {"class_type": "PrimitiveString", "inputs": {"value": "a blue dog"}}
    graph["32"] = {"class_type": "PrimitiveFloat", "inputs": {"value": 6.5}}
    graph["5"]["inputs"]["width"] = ["30", 0]
    graph["6"]["inputs"]["text"] = ["31", 0]
    graph["3"]["inputs"]["cfg"] = ["32", 0]
    graph["3"]["inputs"]["steps"] = ["30", 0]
    estimate = estimate_work(graph, image_size=lambda name: (0, 0))
    sampler = next(n for n in estimate.nodes if n.node_id == "3")
    assert sampler.shape == Shape(72, 64) and sampler.steps == 72
    graph["3"]["inputs"]["steps"] = 2
    result = Engine().run(graph, files=files)
    assert (result.images[0].width, result.images[0].height) == (72, 64)
    (flag,) = run("PrimitiveBoolean", value=True)
    assert flag is True


def test_latent_shapes_the_estimate_propagates_equal_the_nodes_outputs():
    graph = {
        "1": {"class_type": "EmptyLatentImage", "inputs": {"width": 192, "height": 128, "batch_size": 4}},
        "2": {"class_type": "LatentFromBatch", "inputs": {"samples": ["1", 0], "batch_index": 1, "length": 2}},
        "3": {"class_type": "LatentCrop", "inputs": {"samples": ["2", 0], "width": 120, "height": 64, "x": 96,
                                                     "y": 8}},
        "4": {"class_type": "LatentRotate", "inputs": {"samples": ["3", 0], "rotation": "90 degrees"}},
        "5": {"class_type": "LatentFlip", "inputs": {"samples": ["4", 0], "flip_method": "x-axis: vertically"}},
        "6": {"class_type": "LatentComposite", "inputs": {"samples_to": ["1", 0], "samples_from": ["5", 0],
                                                          "x": 8, "y": 8, "feather": 8}},
        "7": {"class_type": "LatentCompositeMasked", "inputs": {"destination": ["5", 0], "source": ["1", 0],
                                                                "x": 0, "y": 0, "resize_source": True}},
        "8": {"class_type": "LatentBlend", "inputs": {"samples1": ["7", 0], "samples2": ["1", 0],
                                                      "blend_factor": 0.5}},
    }
    shapes = propagate_shapes(graph, lambda name: (0, 0))
    values: dict[str, tuple] = {}
    for node_id, node in graph.items():
        kwargs = {k: values[v[0]][v[1]] if isinstance(v, list) else v for k, v in node["inputs"].items()}
        values[node_id] = node_registry().get(node["class_type"]).execute(CTX, **kwargs) \
            if node["class_type"] != "EmptyLatentImage" else ({"samples": torch.zeros(4, 4, 16, 24)},)
        samples = values[node_id][0]["samples"]
        shape = shapes[(node_id, 0)]
        assert (shape.batch, shape.height, shape.width) == (samples.shape[0], samples.shape[2] * 8,
                                                            samples.shape[3] * 8), (node_id, node["class_type"])
