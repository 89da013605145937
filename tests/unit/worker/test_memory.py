"""The worker's memory figures: /proc/meminfo parsing, CPU devices report no VRAM."""

from __future__ import annotations

from sdfleet.worker.memory import memory_report, ram_bytes, vram_bytes


def test_ram_from_meminfo_prefers_available(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000 kB\nMemFree:         1000 kB\nMemAvailable:    8000 kB\n"
                       "HugePages_Total:       0\n")
    assert ram_bytes(meminfo) == (16000 * 1024, 8000 * 1024)


def test_ram_falls_back_to_free_and_to_zero(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 2048 kB\nMemFree: 512 kB\n")
    assert ram_bytes(meminfo) == (2048 * 1024, 512 * 1024)
    assert ram_bytes(tmp_path / "missing") == (0, 0)


def test_cpu_worker_reports_this_machines_ram_and_no_vram():
    assert vram_bytes("cpu") == (0, 0)
    report = memory_report("cpu")
    assert set(report) == {"ram_total", "ram_free", "vram_total", "vram_free"}
    assert report["ram_total"] > report["ram_free"] > 0
    assert report["vram_total"] == report["vram_free"] == 0


def test_cuda_worker_reports_its_devices_free_and_total(monkeypatch):
    import torch

    asked = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: asked.append(device) or (3 << 30, 80 << 30))
    assert vram_bytes("cuda:1") == (80 << 30, 3 << 30)
    assert asked == [torch.device("cuda:1")]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert vram_bytes("cuda:0") == (0, 0)
