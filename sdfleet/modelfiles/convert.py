"""Convert a pickle checkpoint (.ckpt, .pt, .bin, .pth) to safetensors in an isolated, limited subprocess.

The server never unpickles a user's file. A fresh interpreter (`python -I`, empty environment, a temp
working directory) caps its own address space, CPU time, written file size and open files, then loads
the file with torch's restricted `weights_only` unpickler and writes safetensors. The parent validates
the output header before moving it into place.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from sdfleet.modelfiles.errors import ModelFileError
from sdfleet.modelfiles.safetensors_header import read_safetensors_header

CHILD_SCRIPT = Path(__file__).with_name("convert_child.py")
#: address space the converter needs besides the file: the interpreter and torch's libraries (a CUDA build
#: maps several GB of them even when no GPU is used)
BASE_MEMORY_BYTES = 6 * 1024**3
DEFAULT_TIMEOUT_S = 900.0
#: output may not exceed the input by more than this (pickles only shrink when converted)
OUTPUT_SLACK_BYTES = 64 * 1024**2
OPEN_FILES = 256


def convert_pickle_to_safetensors(
    src: Path,
    dst: Path,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_limit_bytes: int | None = None,
) -> None:
    """Convert `src` (a torch pickle) to safetensors at `dst`; raise ModelFileError if it is refused.

    Args:
        memory_limit_bytes: address-space cap of the child; by default 6 GiB plus three times the file size.
    """
    # 1. Check inputs
    src = Path(src).resolve()
    dst = Path(dst).resolve()
    if not src.is_file():
        raise ModelFileError("conversion_failed", f"source {src} is not a file")
    size = src.stat().st_size
    if memory_limit_bytes is None:
        memory_limit_bytes = BASE_MEMORY_BYTES + 3 * size
    limits = {
        "address_space": int(memory_limit_bytes),
        "cpu_seconds": max(1, int(timeout_s) + 1),
        "file_size": 2 * size + OUTPUT_SLACK_BYTES,
        "open_files": OPEN_FILES,
    }
    partial = dst.with_name(dst.name + ".partial")
    # 2. Run the child in an empty environment and a throwaway working directory
    try:
        with tempfile.TemporaryDirectory(prefix="sdfleet-convert-") as workdir:
            outcome = _run_child(limits, src=src, out=partial, workdir=workdir, timeout_s=timeout_s)
        # 3. Trust nothing the child wrote until its header validates
        if not outcome.get("ok"):
            raise ModelFileError(str(outcome.get("code", "conversion_failed")), str(outcome.get("message")))
        try:
            read_safetensors_header(partial)
        except ModelFileError as exc:
            raise ModelFileError("conversion_failed", f"converter wrote an invalid file: {exc.message}") from None
        os.replace(partial, dst)
    finally:
        partial.unlink(missing_ok=True)


def _run_child(limits: dict[str, int], *, src: Path, out: Path, workdir: str, timeout_s: float) -> dict[str, object]:
    command = [sys.executable, "-I", str(CHILD_SCRIPT), json.dumps(limits), str(src), str(out)]
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": workdir,
        "TMPDIR": workdir,
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    try:
        completed = subprocess.run(
            command,
            cwd=workdir,
            env=environment,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
            close_fds=True,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        raise ModelFileError("conversion_failed", f"conversion took longer than {timeout_s:g} s") from None
    return _outcome(completed)


def _outcome(completed: subprocess.CompletedProcess[bytes]) -> dict[str, object]:
    lines = completed.stdout.decode("utf-8", "replace").strip().splitlines()
    if lines:
        try:
            outcome = json.loads(lines[-1])
        except json.JSONDecodeError:
            outcome = None
        if isinstance(outcome, dict) and "ok" in outcome:
            return outcome
    status = completed.returncode
    if status < 0:
        reasons = {
            signal.SIGXCPU: "it used up its CPU time limit",
            signal.SIGXFSZ: "its output exceeded the file size limit",
            signal.SIGKILL: "it was killed (out of memory?)",
            signal.SIGSEGV: "it crashed (memory limit?)",
        }
        reason = reasons.get(signal.Signals(-status), f"signal {signal.Signals(-status).name}")
        return {"ok": False, "code": "conversion_failed", "message": f"converter stopped: {reason}"}
    tail = completed.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
    return {"ok": False, "code": "conversion_failed", "message": f"converter exited with {status}: {tail[0][:500]}"}
