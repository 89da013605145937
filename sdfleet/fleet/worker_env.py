"""The environment a local replica starts with: an allow-list, never the server's whole environment.

The server's environment holds its secrets (SDFLEET_ADMIN_PASSWORD, the database URL, S3 keys, SMTP
passwords); a worker needs none of them: it talks to the server over HTTP with its own token."""

from __future__ import annotations

from collections.abc import Mapping

#: variables passed as they are: the process basics a Python + torch process needs
PASSED_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP", "SYSTEMROOT",
    "PYTHONPATH", "PYTHONHOME", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "VIRTUAL_ENV",
    "LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "MPLCONFIGDIR",
    # the worker's own settings (the rest of SDFLEET_* belongs to the server)
    "SDFLEET_MAX_IMAGE_PIXELS", "SDFLEET_DRAIN_SECONDS", "SDFLEET_WORKER_THREADS",
})
#: families passed by prefix: locale, accelerators, thread pools, model-library caches
PASSED_PREFIXES = ("LC_", "XDG_", "CUDA_", "NVIDIA_", "HIP_", "ROCR_", "HSA_", "ROCM_", "PYTORCH_", "TORCH_",
                   "OMP_", "MKL_", "OPENBLAS_", "KMP_", "HF_", "TRANSFORMERS_", "DIFFUSERS_")
#: never passed, even inside an allowed family (HF_TOKEN, …)
SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "CREDENTIAL")


def is_passed(name: str) -> bool:
    """Whether a variable of the server's environment reaches a local replica."""
    if name in PASSED_NAMES:
        return True
    upper = name.upper()
    return name.startswith(PASSED_PREFIXES) and not any(marker in upper for marker in SECRET_MARKERS)


def worker_environment(parent: Mapping[str, str], *, token: str, extra: Mapping[str, str]) -> dict[str, str]:
    """The replica's environment: the allowed part of `parent`, its token, and the fleet's `extra` settings."""
    env = {name: value for name, value in parent.items() if is_passed(name)}
    return {**env, "SDFLEET_WORKER_TOKEN": token, **extra}
