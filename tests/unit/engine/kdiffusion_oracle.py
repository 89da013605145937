"""The k-diffusion package's sampling code, loaded without its package `__init__` (which imports torchvision).

`k_diffusion/sampling.py` and `external.py` need only torch, scipy, torchsde, torchdiffeq, tqdm and
`utils.append_dims`; they are loaded as modules of a small stand-in package that provides just that.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from functools import lru_cache
from pathlib import Path

import pytest

PACKAGE = "_kdiffusion_oracle"


def _append_dims(x, target_dims):
    """Append singleton dimensions until x has target_dims dimensions (k-diffusion's utils.append_dims)."""
    missing = target_dims - x.ndim
    if missing < 0:
        raise ValueError(f"input has {x.ndim} dims but target_dims is {target_dims}, which is less")
    return x[(...,) + (None,) * missing]


@lru_cache(maxsize=1)
def load() -> types.SimpleNamespace:
    """k_diffusion.sampling and k_diffusion.external; skips the test when k-diffusion is not installed."""
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("k-diffusion (the sampler oracle, dev extra) is not installed")
    folder = Path(next(iter(spec.submodule_search_locations)))
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(folder)]
    utils = types.ModuleType(f"{PACKAGE}.utils")
    utils.append_dims = _append_dims
    sys.modules[PACKAGE], sys.modules[f"{PACKAGE}.utils"] = package, utils
    package.utils = utils
    modules = {}
    for name in ("sampling", "external"):
        module_spec = importlib.util.spec_from_file_location(f"{PACKAGE}.{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        module_spec.loader.exec_module(module)
        setattr(package, name, module)
        modules[name] = module
    return types.SimpleNamespace(**modules)
