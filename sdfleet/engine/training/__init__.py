"""LoRA training on diffusers + peft: buckets, resumable runs, kohya-format output."""

from sdfleet.engine.training.base_model import BaseModel, UnsupportedBaseModel, load_base_model
from sdfleet.engine.training.config import SampleSettings, TrainingConfig, TrainingConfigError
from sdfleet.engine.training.data import ImageSet, TrainingItem
from sdfleet.engine.training.metadata import Lineage, kohya_metadata
from sdfleet.engine.training.state import TrainingState, dump_state, read_state, write_state
from sdfleet.engine.training.trainer import Trainer, TrainingHooks, TrainingProgress

__all__ = [
    "BaseModel", "ImageSet", "Lineage", "SampleSettings", "Trainer", "TrainingConfig", "TrainingConfigError",
    "TrainingHooks", "TrainingItem", "TrainingProgress", "TrainingState", "UnsupportedBaseModel", "dump_state",
    "kohya_metadata", "load_base_model", "read_state", "write_state",
]
