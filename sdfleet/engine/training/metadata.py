"""kohya-style `ss_*` metadata of a trained LoRA, plus sdfleet's lineage (what it was trained from, by whom)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sdfleet.engine.training.config import TrainingConfig

BASE_MODEL_VERSIONS = {"sd1": "sd_v1", "sd2": "sd_v2", "sdxl": "sdxl_base_v1-0"}
LINEAGE_KEY = "sdfleet.lineage"


@dataclass(frozen=True, kw_only=True)
class Lineage:
    """Where a LoRA comes from."""

    base_sha256: str
    base_name: str = ""
    dataset_id: str = ""
    dataset_hash: str = ""
    job_id: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def kohya_metadata(*, config: TrainingConfig, family: str, lineage: Lineage, output_name: str, steps: int,
                   epoch: int, captions: list[str], image_count: int, precision: str,
                   started_at: datetime | None = None) -> dict[str, str]:
    """The header metadata A1111's and kohya's tools show for a LoRA."""
    tags = Counter(t.strip() for c in captions for t in c.split(",") if t.strip())
    values = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": config.network_rank,
        "ss_network_alpha": config.network_alpha,
        "ss_base_model_version": BASE_MODEL_VERSIONS.get(family, family),
        "ss_sd_model_name": lineage.base_name,
        "ss_new_sd_model_hash": lineage.base_sha256,
        "ss_output_name": output_name,
        "ss_learning_rate": config.unet_lr,
        "ss_unet_lr": config.unet_lr,
        "ss_text_encoder_lr": config.text_encoder_lr if config.train_text_encoder else 0,
        "ss_network_train_unet_only": not config.train_text_encoder,
        "ss_optimizer": config.optimizer,
        "ss_lr_scheduler": config.lr_scheduler,
        "ss_lr_warmup_steps": config.lr_warmup_steps,
        "ss_max_train_steps": steps,
        "ss_steps": steps,
        "ss_epoch": epoch,
        "ss_batch_size_per_device": config.train_batch_size,
        "ss_gradient_accumulation_steps": config.gradient_accumulation_steps,
        "ss_resolution": f"({config.resolution}, {config.resolution})",
        "ss_enable_bucket": config.enable_bucket,
        "ss_min_bucket_reso": config.bucket_range[0],
        "ss_max_bucket_reso": config.bucket_range[1],
        "ss_flip_aug": config.random_flip,
        "ss_caption_dropout_rate": config.caption_dropout_rate,
        "ss_noise_offset": config.noise_offset,
        "ss_min_snr_gamma": config.min_snr_gamma if config.min_snr_gamma is not None else "None",
        "ss_mixed_precision": precision,
        "ss_seed": config.seed,
        "ss_num_train_images": image_count,
        "ss_dataset_dirs": json.dumps({lineage.dataset_id or "dataset": {"n_repeats": 1, "img_count": image_count}}),
        "ss_tag_frequency": json.dumps({lineage.dataset_id or "dataset": dict(tags.most_common(500))}),
        "ss_training_started_at": (started_at or datetime.now(UTC)).timestamp(),
        "ss_training_finished_at": datetime.now(UTC).timestamp(),
        "ss_training_comment": f"trained by sdfleet{' job ' + lineage.job_id if lineage.job_id else ''}",
        "sshs_model_hash": "",
        LINEAGE_KEY: json.dumps({"base_sha256": lineage.base_sha256, "base_name": lineage.base_name,
                                 "dataset_id": lineage.dataset_id, "dataset_hash": lineage.dataset_hash,
                                 "job_id": lineage.job_id, "parameters": config.to_dict(), **lineage.extra},
                                sort_keys=True),
    }
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
