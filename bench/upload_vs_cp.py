"""Benchmark: upload a model file through the API (local store) vs `cp` of the same file on the same disk.

Prints the throughput ratio (goal >= 0.5) and the server's peak RSS (goal < 300 MB).
Run: `.venv/bin/python -m bench.upload_vs_cp [--size-mib 2048] [--dir /path/on/disk]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from sdfleet.cli_models import ApiClient, upload_file

KEY = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"
PASSWORD = "bench-password-123"


def write_model(path: Path, size_mib: int) -> int:
    """A kohya LoRA of about `size_mib` MiB (the bulk is one down weight), written in 8 MiB chunks."""
    width = size_mib * 1024 * 1024 // (2 * 4)
    tensors = {f"{KEY}.lora_down.weight": (4, width), f"{KEY}.lora_up.weight": (320, 4), f"{KEY}.alpha": ()}
    header, offset = {}, 0
    for name, shape in tensors.items():
        count = 1
        for dim in shape:
            count *= dim
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + 2 * count]}
        offset += 2 * count
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    block = os.urandom(8 * 1024 * 1024)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        remaining = offset
        while remaining:
            n = min(remaining, len(block))
            handle.write(block[:n])
            remaining -= n
    return path.stat().st_size


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--dir", type=Path, default=None, help="Where the file, the copy and the server data go.")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sdfleet-bench-", dir=args.dir))
    server = None
    try:
        source = root / "bench-model.safetensors"
        size = write_model(source, args.size_mib)
        # 1. cp on the same disk
        started = time.perf_counter()
        subprocess.run(["cp", str(source), str(root / "copy.safetensors")], check=True)
        os.sync()
        cp_s = time.perf_counter() - started
        (root / "copy.safetensors").unlink()
        # 2. The server on the same disk (no local workers: nothing but the API in the process)
        port = free_port()
        env = {**os.environ, "SDFLEET_ADMIN_PASSWORD": PASSWORD, "SDFLEET_LOCAL_WORKERS": "0",
               "SDFLEET_DATA_DIR": str(root / "data"), "SDFLEET_PORT": str(port), "SDFLEET_LOG_LEVEL": "WARNING"}
        server = subprocess.Popen([sys.executable, "-m", "sdfleet.cli", "serve", "--no-demo"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        token = httpx.post(f"{url}/api/v1/auth/login", json={"username": "admin", "password": PASSWORD}).json()["token"]
        client = ApiClient(url, token)
        started = time.perf_counter()
        checkpoint = upload_file(client, source, model_type="Lora", name=None, roles=None, server=url)
        upload_s = time.perf_counter() - started
        rss = peak_rss_mb(server.pid)
        ratio = cp_s / upload_s
        print(f"file: {size / 2**20:.0f} MiB; cp {cp_s:.2f} s ({size / 2**20 / cp_s:.0f} MiB/s); "
              f"API upload (sha256 + parts + assemble + inspect + register) {upload_s:.2f} s "
              f"({size / 2**20 / upload_s:.0f} MiB/s)")
        print(f"throughput ratio upload/cp: {ratio:.2f} (goal >= 0.5)   server peak RSS: {rss:.0f} MB (goal < 300)")
        print(f"registered {checkpoint['name']} {checkpoint['short_hash']}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
