"""Which CPU a benchmark ran on: this project's machines differ from day to day (AVX2 or AVX-512), and a figure
means little without it."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu() -> str:
    """Model name, cores and the vector ISA torch's kernels use, e.g. 'AMD EPYC, 2 cores, AVX2'."""
    name = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.exists():
        lines = [line for line in info.read_text().splitlines() if line.startswith("model name")]
        name = lines[0].split(":", 1)[1].strip() if lines else name
    return f"{name}, {os.cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()}"
