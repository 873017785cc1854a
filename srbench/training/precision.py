"""Training precision: what ``precision: auto`` means on this machine, decided by its capabilities.

Measured bare Adam steps (batch 16, LR patch 48, 2 threads, torch 2.14), ms/step:

=====================  ============  ===========  =============  ===========
CPU                    model          fp32         fp32 + CL      bf16 + CL
=====================  ============  ===========  =============  ===========
Intel Xeon, AMX-BF16   EDSR-b x2      1063         842            212
                       IDN x2         630          490            196
                       DRN-S x2       740          594            274
AMD EPYC, AVX512-BF16  EDSR-b x2      1694         983            431
                       IDN x2         633          502            283
                       DRN-S x2       640          619            377
=====================  ============  ===========  =============  ===========

So: a CPU that multiplies bf16 in hardware (AMX-BF16 or AVX512-BF16) trains fastest with bf16
autocast + channels_last; one with AVX-512 but no bf16 with fp32 + channels_last (oneDNN's
blocked fp32 kernels); others (AVX2) with plain fp32, where bf16 is emulated and slower. On CUDA:
bf16 + channels_last where the GPU has bf16, else fp32. Master weights, the loss and the optimizer
state are always fp32: autocast only lowers the convolutions' inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch

PRECISIONS = ("auto", "fp32", "fp32-cl", "bf16")


@dataclass(frozen=True)
class TrainPrecision:
    name: str  # fp32 | fp32-cl | bf16 (resolved; never auto)
    autocast_bf16: bool
    channels_last: bool
    reason: str  # why ``auto`` chose it (or "requested")


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it is not readable)."""
    from srbench.provenance import cpuinfo

    return frozenset(cpuinfo().get("flags", "").split())


def cpu_choice(flags: frozenset[str]) -> tuple[str, str]:
    """(precision, reason) for a CPU with these flags (see the module's table)."""
    bf16 = sorted(flags & {"amx_bf16", "avx512_bf16"})
    if bf16:
        return "bf16", f"CPU has {' and '.join(bf16)}: bf16 autocast + channels_last"
    if "avx512f" in flags:
        return "fp32-cl", "CPU has AVX-512 but no bf16 arithmetic: fp32 + channels_last"
    return "fp32", "CPU has no AVX-512: plain fp32 (bf16 would be emulated)"


def resolve(precision: str, device: torch.device) -> TrainPrecision:
    name = str(precision).lower()
    if name not in PRECISIONS:
        from srbench.errors import SRBenchError

        raise SRBenchError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    reason = "requested"
    if name == "auto":
        if device.type == "cuda":
            ok = torch.cuda.is_bf16_supported()
            name = "bf16" if ok else "fp32"
            reason = "CUDA GPU with bf16" if ok else "CUDA GPU without bf16"
        elif device.type == "cpu":
            name, reason = cpu_choice(cpu_flags())
        else:
            name, reason = "fp32", f"{device.type}: fp32"
    channels_last = name in ("bf16", "fp32-cl") or (device.type == "cuda" and name == "fp32")
    return TrainPrecision(name, name == "bf16", channels_last, reason)
