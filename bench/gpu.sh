#!/usr/bin/env bash
# Engine vs raw diffusers, and LoRA training, on one H100/H200-class GPU with no network, in under 12 minutes.
# Real SD 1.5 and SDXL architectures with random weights, fp16, 20 steps, batch 1 and 4.
# Wheels the GPU image may lack (diffusers, peft, transformers, accelerate, safetensors) are
# installed from bench/wheels/ (carried beside this script: `pip download --no-deps -d bench/wheels
# diffusers==0.42.1 peft==0.21.2 transformers==5.23.0 accelerate==1.15.0 safetensors==0.8.0`).
# Dry run on a CPU with tiny models: DRY_RUN=1 bench/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1

if ! "$PY" -c "import diffusers, peft, transformers" 2>/dev/null; then
  if [ -d bench/wheels ]; then
    "$PY" -m pip install --no-index --find-links bench/wheels --quiet diffusers peft transformers accelerate safetensors
  else
    echo "diffusers/peft missing and no bench/wheels folder to install them from" >&2
    exit 2
  fi
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"

run() { timeout "${STEP_TIMEOUT:-150}" "$PY" bench/engine_vs_diffusers.py "$@" || echo "FAILED or timed out: $*"; }
# LoRA training: SD 1.5 architecture (random weights), 512², batch 1, rank 16, 1000 steps; the baseline loop
# (diffusers' train_text_to_image_lora.py structure) runs 100 steps for the steps/s ratio.
train() { timeout "${TRAIN_TIMEOUT:-420}" "$PY" bench/train_lora.py "$@" || echo "FAILED or timed out: train $*"; }

if [ "${DRY_RUN:-0}" = "1" ]; then
  run --family sd1 --device cpu --size 64 --steps 4 --batch 1 --runs 2
  run --family sd1 --device cpu --size 64 --steps 4 --batch 4 --runs 2
  run --family sdxl --device cpu --size 64 --steps 4 --batch 1 --runs 2
  run --family sdxl --device cpu --size 64 --steps 4 --batch 4 --runs 2
  train --device cpu --size 64 --batch 1 --rank 16 --steps 6 --baseline-steps 3 --runs 1
  exit 0
fi

run --family sd1 --real --size 512 --steps 20 --batch 1 --runs 20
run --family sd1 --real --size 512 --steps 20 --batch 4 --runs 8
run --family sdxl --real --size 1024 --steps 20 --batch 1 --runs 6
run --family sdxl --real --size 1024 --steps 20 --batch 4 --runs 3
train --device cuda --real --size 512 --batch 1 --rank 16 --steps 1000 --baseline-steps 100 --precision bf16 --runs 1
