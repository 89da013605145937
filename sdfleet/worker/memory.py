"""The worker's memory figures for its reports: system RAM from /proc/meminfo, VRAM from CUDA."""

from __future__ import annotations

from pathlib import Path

MEMINFO = Path("/proc/meminfo")


def ram_bytes(meminfo: Path = MEMINFO) -> tuple[int, int]:
    """(total, available) system RAM in bytes; (0, 0) where /proc/meminfo cannot be read."""
    try:
        lines = meminfo.read_text().splitlines()
    except OSError:
        return 0, 0
    values: dict[str, int] = {}
    for line in lines:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isascii() and parts[0].isdigit():
            values[key] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    total = values.get("MemTotal", 0)
    return total, values.get("MemAvailable", values.get("MemFree", 0))


def vram_bytes(device: str) -> tuple[int, int]:
    """(total, free) memory of a CUDA device in bytes; (0, 0) for the CPU or when CUDA is unavailable."""
    if not device.startswith("cuda"):
        return 0, 0
    import torch

    if not torch.cuda.is_available():
        return 0, 0
    free, total = torch.cuda.mem_get_info(torch.device(device))
    return int(total), int(free)


def memory_report(device: str) -> dict[str, int]:
    """`{ram_total, ram_free, vram_total, vram_free}` in bytes, as workers send in their report `info`."""
    ram_total, ram_free = ram_bytes()
    vram_total, vram_free = vram_bytes(device)
    return {"ram_total": ram_total, "ram_free": ram_free, "vram_total": vram_total, "vram_free": vram_free}
