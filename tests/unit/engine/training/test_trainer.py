"""The trainer: a resumed run equals the uninterrupted one bit for bit; the saved LoRA (kohya keys, ss_* metadata)
gives, in diffusers' `load_lora_weights` and in sdfleet's engine, the image the in-memory adapter gives."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from PIL import Image
from safetensors import safe_open

from sdfleet.engine.executor import Engine
from sdfleet.engine.files import DictModelFiles, ModelFile
from sdfleet.engine.training.base_model import load_base_model
from sdfleet.engine.training.config import TrainingConfig
from sdfleet.engine.training.metadata import Lineage, kohya_metadata
from sdfleet.engine.training.sampling import evaluation_grid, pipeline_of, sample_images
from sdfleet.engine.training.state import read_state, write_state
from sdfleet.engine.training.trainer import TrainingHooks
from tests.unit.engine.conftest import txt2img_graph
from tests.unit.engine.training.conftest import make_trainer

TOLERANCE = 2  # out of 255
EVERYTHING = dict(network_rank=2, network_alpha=2.0, max_train_steps=4, resolution=64, train_batch_size=2,
                  gradient_accumulation_steps=2, save_every_n_steps=2, random_flip=True, caption_dropout_rate=0.3,
                  noise_offset=0.05, min_snr_gamma=5.0, lr_scheduler="cosine", lr_warmup_steps=1,
                  train_text_encoder=True, unet_lr=1e-3, text_encoder_lr=1e-3, seed=11)


def _equal_states(a, b) -> bool:
    return a.keys() == b.keys() and all(
        a[c].keys() == b[c].keys() and all(torch.equal(a[c][k], b[c][k]) for k in a[c]) for c in a)


def test_a_resumed_run_is_the_uninterrupted_run(bases, items, tmp_path):
    config = TrainingConfig(**EVERYTHING)
    saved = {}
    first = make_trainer(bases["sd1"], items, config)
    progress = []
    first.run(TrainingHooks(on_checkpoint=lambda s: saved.setdefault(s.step, write_state(s, tmp_path / f"{s.step}")),
                            on_progress=progress.append))
    assert list(saved) == [2] and first.step == 4
    assert [p.step for p in progress] == [1, 2, 3, 4] and all(p.loss > 0 and p.lr >= 0 for p in progress)
    resumed = make_trainer(bases["sd1"], items, config)
    resumed.restore(read_state(saved[2]))
    assert resumed.step == 2
    resumed.run()
    assert _equal_states(first.adapter_state(), resumed.adapter_state())
    assert [s for s, _ in resumed.losses] == [1, 2, 3, 4]
    assert resumed.losses == first.losses
    # The comparison can fail: a run with another seed ends elsewhere.
    other = make_trainer(bases["sd1"], items, TrainingConfig(**{**EVERYTHING, "seed": 12}))
    other.run()
    assert not _equal_states(first.adapter_state(), other.adapter_state())


def test_a_checkpoint_of_other_parameters_is_refused(bases, items, tmp_path):
    config = TrainingConfig(**{**EVERYTHING, "max_train_steps": 2, "gradient_accumulation_steps": 1})
    trainer = make_trainer(bases["sd1"], items, config)
    trainer.train_step()
    other = make_trainer(bases["sd1"], items, TrainingConfig(**{**config.to_dict(), "network_rank": 8}))
    with pytest.raises(ValueError, match="other parameters"):
        other.restore(trainer.state())


def _pixels(image) -> np.ndarray:
    if isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
    return np.asarray(image.convert("RGB")).astype(int)


def _generate(pipe, seed=5):
    pipe.set_progress_bar_config(disable=True)
    return pipe("a red cat", negative_prompt="blurry", num_inference_steps=4, guidance_scale=7.0, height=64, width=64,
                generator=torch.Generator("cpu").manual_seed(seed)).images[0]


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_the_saved_lora_gives_the_in_memory_image_in_diffusers_and_the_engine(bases, items, tmp_path, family):
    config = TrainingConfig(network_rank=4, network_alpha=4.0, max_train_steps=3, resolution=64, unet_lr=5e-2,
                            text_encoder_lr=5e-2, train_text_encoder=True, seed=1)
    trainer = make_trainer(bases[family], items, config)
    trainer.run()
    base_sha = hashlib.sha256(bases[family].read_bytes()).hexdigest()
    metadata = kohya_metadata(config=config, family=family, lineage=Lineage(base_sha256=base_sha, job_id="j1"),
                              output_name="sks", steps=trainer.step, epoch=1,
                              captions=[i.caption for i in items], image_count=len(items), precision="no")
    path = trainer.save_lora(tmp_path / "sks.safetensors", metadata=metadata)
    in_memory = _pixels(_generate(pipeline_of(trainer.base)))
    # 1. The file: kohya keys, an alpha per module, ss_* metadata with the lineage.
    with safe_open(str(path), framework="pt") as f:
        keys, header = set(f.keys()), f.metadata()
    te = ("lora_te1_", "lora_te2_") if family == "sdxl" else ("lora_te_",)
    assert {k.split("_text_model")[0] + "_" for k in keys if k.startswith("lora_te")} == set(te)
    assert any(k.startswith("lora_unet_") and k.endswith(".lora_down.weight") for k in keys)
    assert all(k.rsplit(".", 2)[0] + ".alpha" in keys for k in keys if k.endswith("lora_up.weight"))
    assert header["ss_network_dim"] == "4" and header["ss_new_sd_model_hash"] == base_sha
    assert '"job_id": "j1"' in header["sdfleet.lineage"]
    # 2. diffusers' load_lora_weights on a fresh pipeline from the same base file.
    pipe_class = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    fresh = pipeline_of(load_base_model(bases[family], device="cpu", dtype=torch.float32))
    plain = _pixels(_generate(fresh))
    fresh.load_lora_weights(str(path), adapter_name="sks")
    assert isinstance(fresh, pipe_class)
    assert np.abs(_pixels(_generate(fresh)) - in_memory).max() <= TOLERANCE
    assert np.abs(plain - in_memory).max() > TOLERANCE  # the LoRA changes the image
    # 3. sdfleet's engine: LoraLoader in a ComfyUI graph.
    files = DictModelFiles()
    files.add_model("checkpoints", "base.safetensors", ModelFile(bases[family], base_sha))
    files.add_model("loras", "sks.safetensors", ModelFile(path, hashlib.sha256(path.read_bytes()).hexdigest()))
    graph = txt2img_graph(ckpt="base.safetensors", seed=5)
    graph["20"] = {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1],
                                                          "lora_name": "sks.safetensors",
                                                          "strength_model": 1.0, "strength_clip": 1.0}}
    for node_id in ("6", "7"):
        graph[node_id]["inputs"]["clip"] = ["20", 1]
    graph["3"]["inputs"]["model"] = ["20", 0]
    result = Engine().run(graph, files=files)
    assert np.abs(_pixels(result.images[0].png) - in_memory).max() <= TOLERANCE


def test_samples_and_the_evaluation_grid(bases, items):
    config = TrainingConfig(network_rank=4, network_alpha=4.0, max_train_steps=2, resolution=64, unet_lr=5e-2,
                            sample_every_n_steps=1,
                            samples={"prompts": ("sks thing", "a house"), "steps": 2, "seed": 3})
    trainer = make_trainer(bases["sd1"], items, config)
    seen = []
    trainer.run(TrainingHooks(on_samples=lambda step, images: seen.append((step, [i.size for i in images]))))
    assert seen == [(1, [(64, 64), (64, 64)]), (2, [(64, 64), (64, 64)])]
    before = trainer.adapter_state()
    grid = evaluation_grid(trainer, ["sks thing", "a house"])
    assert grid.size == (3 * 64, 2 * (64 + 14))
    # weight 0 is the base model; the grid leaves the trained weights as they were
    assert _equal_states(before, trainer.adapter_state())
    again = sample_images(trainer, ["sks thing"])[0]
    assert np.array_equal(_pixels(again), _pixels(sample_images(trainer, ["sks thing"], weight=1.0)[0]))
