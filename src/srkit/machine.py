"""Which CPU ran something: this project's machines differ from day to day (AVX2, AVX-512, AMX), and a benchmark
figure or a training step range means little without it."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu() -> str:
    """Model name, cores, torch's vector ISA and the bf16 units, e.g. 'AMD EPYC, 2 cores, AVX512, avx512_bf16'."""
    name, flags = platform.processor() or platform.machine(), set()
    info = Path("/proc/cpuinfo")
    if info.exists():
        lines = info.read_text().splitlines()
        names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
        name = names[0] if names else name
        flags = {f for line in lines if line.startswith("flags") for f in line.split(":", 1)[1].split()}
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]  # bf16 training pays only with one of these
    return ", ".join([name, f"{os.cpu_count()} cores", torch.backends.cpu.get_cpu_capability(), *bf16])
