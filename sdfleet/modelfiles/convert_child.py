"""Child process of `convert.py`: load a pickle checkpoint with `weights_only=True`, write safetensors.

Run as a script (`python -I convert_child.py LIMITS SRC DST`), never imported by the server: it imports
torch, and it is the only place a pickle from a user is ever opened. Resource limits are applied before
anything else runs. The outcome is one JSON line on stdout: {"ok": true, "tensors": n} or
{"ok": false, "code": ..., "message": ...}.
"""

from __future__ import annotations

import sys

# This file sits next to modules named `inspect.py` and `types.py`: if its directory were on sys.path
# (python run without -I/-P), they would shadow the standard library. Drop it before any other import.
sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import json  # noqa: E402
import pickle  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import zipfile  # noqa: E402
from typing import Any  # noqa: E402

#: exit statuses the parent maps to error codes
EXIT_UNSAFE = 3
EXIT_NO_WEIGHTS = 4
EXIT_FAILED = 5

#: dicts that wrap the real state dict in common checkpoint formats (LDM .ckpt, BasicSR .pth, others)
_WRAPPERS = ("state_dict", "params_ema", "params", "model", "module", "net", "generator")


def apply_limits(limits: dict[str, int]) -> None:
    """Cap address space, CPU seconds, written file size and open files for this process."""
    table = {
        "address_space": resource.RLIMIT_AS,
        "cpu_seconds": resource.RLIMIT_CPU,
        "file_size": resource.RLIMIT_FSIZE,
        "open_files": resource.RLIMIT_NOFILE,
    }
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for name, which in table.items():
        value = limits.get(name)
        if value is not None:
            resource.setrlimit(which, (value, value))


def _report(code: str | None, message: str, *, status: int, tensors: int = 0) -> int:
    if code is None:
        print(json.dumps({"ok": True, "tensors": tensors}), flush=True)
    else:
        print(json.dumps({"ok": False, "code": code, "message": message[:2000]}), flush=True)
    return status


def _stand_ins() -> list[Any]:
    """Inert look-alikes for the few harmless non-tensor classes real checkpoints pickle.

    SD 1.x .ckpt files carry a pytorch_lightning ModelCheckpoint callback and numpy scalars; these
    stand-ins let `weights_only` accept them without importing anything, and keep no state.
    """

    class ModelCheckpoint:
        def __setstate__(self, state: object) -> None:
            pass

    class NumpyDtype:
        def __init__(self, *args: object) -> None:
            pass

        def __setstate__(self, state: object) -> None:
            pass

    def scalar(*args: object) -> None:
        return None

    def reconstruct(*args: object) -> None:
        return None

    return [
        (ModelCheckpoint, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"),
        (NumpyDtype, "numpy.dtype"),
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (reconstruct, "numpy._core.multiarray._reconstruct"),
    ]


def _flatten(obj: dict[Any, Any], *, prefix: str, out: dict[str, Any], torch: Any) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            out[name] = value
        elif isinstance(value, dict):
            _flatten(value, prefix=f"{name}.", out=out, torch=torch)


def extract_tensors(obj: Any, *, torch: Any) -> dict[str, Any]:
    """Pull the tensor state dict out of a loaded checkpoint; non-tensor entries are dropped."""
    if not isinstance(obj, dict):
        return {}
    params = obj.get("string_to_param")
    if isinstance(params, dict) and len(params) == 1:
        # An A1111 textual-inversion .pt: store it the way A1111 writes embeddings as safetensors.
        (vectors,) = params.values()
        return {"emb_params": vectors} if isinstance(vectors, torch.Tensor) else {}
    for key in _WRAPPERS:
        inner = obj.get(key)
        if isinstance(inner, dict) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            obj = inner
            break
    out: dict[str, Any] = {}
    _flatten(obj, prefix="", out=out, torch=torch)
    return out


def _unshare(tensors: dict[str, Any]) -> dict[str, Any]:
    """Give every tensor its own contiguous storage: safetensors refuses tied or strided tensors."""
    seen: set[int] = set()
    out = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer and pointer in seen:
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        out[name] = tensor
    return out


def main(argv: list[str]) -> int:
    """Convert argv[2] (a pickle) to argv[3] (safetensors) under the JSON limits in argv[1]."""
    limits, src, dst = json.loads(argv[1]), argv[2], argv[3]
    # 1. Limits first: nothing from the file is read before they hold.
    apply_limits(limits)
    try:
        import torch
        from safetensors.torch import save_file
    except (ImportError, MemoryError, OSError) as exc:
        return _report(
            "conversion_failed", f"could not start the converter (memory limit too low?): {exc}", status=EXIT_FAILED
        )
    torch.set_num_threads(1)
    # 2. Load with the restricted unpickler: only tensors, containers and the inert stand-ins.
    try:
        is_zip = zipfile.is_zipfile(src)
        with torch.serialization.safe_globals(_stand_ins()):
            loaded = torch.load(src, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as exc:
        return _report("unsafe_pickle", _unsafe_reason(str(exc)), status=EXIT_UNSAFE)
    except MemoryError:
        return _report("conversion_failed", "loading the file exceeded the memory limit", status=EXIT_FAILED)
    except Exception as exc:  # any other failure: not a loadable checkpoint
        return _report(
            "conversion_failed", f"not a loadable torch checkpoint: {_first_lines(str(exc))}", status=EXIT_FAILED
        )
    # 3. Keep the tensors and write them.
    tensors = extract_tensors(loaded, torch=torch)
    if not tensors:
        return _report("conversion_failed", "the checkpoint holds no tensor state dict", status=EXIT_NO_WEIGHTS)
    try:
        save_file(_unshare(tensors), dst, metadata={"format": "pt"})
    except MemoryError:
        return _report("conversion_failed", "writing safetensors exceeded the memory limit", status=EXIT_FAILED)
    except Exception as exc:  # reported to the parent
        return _report("conversion_failed", f"could not write safetensors: {exc}", status=EXIT_FAILED)
    return _report(None, "", status=0, tensors=len(tensors))


def _unsafe_reason(text: str) -> str:
    """Say what the pickle tried to reach, without torch's advice to retry with weights_only=False."""
    found = re.search(r"GLOBAL ([\w.]+)", text) or re.search(r"unrecognized function (.+?)(?: which|$)", text)
    target = f" it refers to {found.group(1)}," if found else ""
    return (
        f"the file is a pickle that holds more than tensors:{target} which could run code when loaded; "
        "it was refused without being run (save it as safetensors, or as a plain state dict of tensors)"
    )


def _first_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[:count])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
