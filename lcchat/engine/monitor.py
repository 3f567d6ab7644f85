"""Live figures for the panels and toolbars: process RSS, system RAM, VRAM, context fill.

Each read is cheap (a /proc read through psutil, one NVML call); front-ends call sample()
on a timer (about once a second), never per token. NVML comes from the optional
nvidia-ml-py package; without it, or without an NVIDIA GPU, vram is None ("CPU only").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger("lcchat.monitor")


@dataclass(frozen=True)
class Snapshot:
    rss: int  # bytes held by this process
    ram_used: int  # system-wide, bytes
    ram_total: int
    vram_used: int | None = None  # None: no GPU we can read
    vram_total: int | None = None

    @property
    def has_gpu(self) -> bool:
        return self.vram_total is not None


def human_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit in ("B", "KiB") else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class Monitor:
    def __init__(self, *, use_gpu: bool = True) -> None:
        import psutil

        self._psutil = psutil
        self._process = psutil.Process()
        self._nvml = None
        self._gpu = None
        if use_gpu:
            self._open_nvml()

    def _open_nvml(self) -> None:
        try:
            import pynvml  # nvidia-ml-py

            pynvml.nvmlInit()
            self._gpu = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._nvml = pynvml
        except Exception:  # no package, no driver, no GPU: all mean CPU only
            log.debug("no NVML; VRAM is not shown", exc_info=True)
            self._nvml = None

    def sample(self) -> Snapshot:
        vm = self._psutil.virtual_memory()
        vram_used = vram_total = None
        if self._nvml is not None:
            try:
                info = self._nvml.nvmlDeviceGetMemoryInfo(self._gpu)
                vram_used, vram_total = int(info.used), int(info.total)
            except Exception:  # noqa: BLE001
                vram_used = vram_total = None
        return Snapshot(
            rss=self._process.memory_info().rss,
            ram_used=int(vm.total - vm.available),
            ram_total=int(vm.total),
            vram_used=vram_used,
            vram_total=vram_total,
        )


def context_fill(used: int, size: int) -> float:
    return used / size if size else 0.0
