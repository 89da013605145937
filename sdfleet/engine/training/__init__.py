"""LoRA training on diffusers + peft: buckets, resumable runs, kohya-format output.

Import from the modules (`config`, `trainer`, …): `config` and `metadata` are torch-free, so the server reads the
training parameters without loading torch."""
