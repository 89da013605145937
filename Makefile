# sdfleet — two commands: `make serve` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch first and pinned: any range lets pip pull a multi-GB CUDA build (docs/dependencies.md).
TORCH  := torch==2.13.0
# Carries the real CLIP BPE vocabulary; installed without its dependencies (they would pull torchvision).
OPENCLIP := open-clip-torch==3.3.0
# The sampler oracle of the tests; its package imports torchvision (which would pull a CUDA torch), so it is
# installed without dependencies and the tests load only its sampling code (torchdiffeq is in the dev extra).
KDIFFUSION := k-diffusion==0.1.1.post1
# Upscaler architectures (ESRGAN, SwinIR, …), as ComfyUI loads them; without its dependencies: its torchvision
# would pull a CUDA torch (sdfleet/engine/upscale_models.py stands in for the two imports it makes).
SPANDREL := spandrel==0.4.2

.PHONY: serve test install install-dev lint unit integration browser bench clean help

help:
	@echo "make serve   install, migrate and start sdfleet on ./sdfleet-data (SQLite + local objects)"
	@echo "make test    install dev dependencies, start what the tests need, run lint + the whole suite"

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m pip install -q --no-deps $(OPENCLIP)
	$(BIN)/python -m pip install -q --no-deps $(SPANDREL)
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps $(KDIFFUSION)
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

serve: install
	$(BIN)/sdfleet serve

lint: install-dev
	$(BIN)/ruff check sdfleet tests bench
	$(BIN)/lint-imports

test: install-dev
	bash scripts/test-services.sh
	$(BIN)/ruff check sdfleet tests bench
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: install-dev
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts
