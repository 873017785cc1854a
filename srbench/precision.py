"""Numeric precision: the one vocabulary (names, what each means) and how a request is resolved.

A record's ``precision`` field holds one of :data:`PRECISIONS`' names:

=========  ===================================================================================
fp32       float32; on its own the layout depends on the use (below)
fp32-cl    float32 with channels_last activations (training)
tf32       float32 with TF32 tensor-core matmul/conv (CUDA only; timing)
fp16       float16 autocast, channels_last (CUDA only; timing)
bf16       bfloat16 autocast, channels_last
auto       a training request only: chosen by the device's capabilities (resolved, never stored)
=========  ===================================================================================

Two uses resolve them, each accepting its own subset:

* **Inference** (:func:`inference_precision`: ``srbench run``'s evaluation and ``srbench
  profile``'s timing): fp32 runs in :func:`srbench.inference.memory_format` -- the layout
  evaluation runs in (channels_last on the CPU, NCHW on a GPU, with TF32 off) -- so an fp32 timing
  is one of ``srbench run``'s forward passes. tf32 and fp16 need a GPU.
* **Training** (:func:`training_precision`): ``auto`` picks by the hardware. Measured bare Adam
  steps (batch 16, LR patch 48, 2 threads, torch 2.14), ms/step:

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
  blocked fp32 kernels); others (AVX2) with plain fp32, where bf16 is emulated and slower.
  On AVX2 channels_last buys nothing: AMD EPYC Zen 3 (family 25 model 1), 1 thread, the other
  core training, EDSR-baseline x2 bare steps 7.5/6.3 s plain against 7.0/6.9 s channels_last,
  DRN-M 8.2/7.4 against 7.6/7.9 s (two alternating runs of 3 steps each, 2026-12-07). On
  CUDA: bf16 + channels_last where the GPU has bf16, else fp32 (channels_last). Master weights,
  the loss and the optimizer state are always fp32: autocast only lowers the convolutions' inputs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

import torch

from srbench.errors import ProfilingError, SRBenchError

__all__ = [
    "EVALUATION_PRECISION",
    "INFERENCE_PRECISIONS",
    "PRECISIONS",
    "TRAINING_PRECISIONS",
    "Precision",
    "cpu_choice",
    "cpu_flags",
    "inference_precision",
    "training_precision",
]

PRECISIONS: dict[str, str] = {
    "fp32": "float32",
    "fp32-cl": "float32, channels_last",
    "tf32": "float32 with TF32 tensor-core matmul/conv (CUDA)",
    "fp16": "float16 autocast (CUDA)",
    "bf16": "bfloat16 autocast",
    "auto": "training: chosen by the device's capabilities",
}
INFERENCE_PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
TRAINING_PRECISIONS = ("auto", "fp32", "fp32-cl", "bf16")
# What scoring computes in (srbench.evaluation.evaluate_image: fp32 forward passes in
# srbench.inference.memory_format): the ``precision`` of every per-image record.
EVALUATION_PRECISION = "fp32"


@dataclass(frozen=True)
class Precision:
    """A resolved precision: what runs, on one device."""

    name: str  # one of PRECISIONS, never "auto"
    label: str  # what tables show, e.g. "bf16-autocast (cpu)"
    autocast_dtype: torch.dtype | None
    channels_last: bool
    tf32: bool
    reason: str = "requested"  # why ``auto`` chose it

    @property
    def autocast_bf16(self) -> bool:
        return self.autocast_dtype == torch.bfloat16

    @contextlib.contextmanager
    def applied(self, device: torch.device) -> Iterator[None]:
        """TF32 flags set (and restored) and autocast entered for the duration."""
        stack = contextlib.ExitStack()
        if device.type == "cuda":
            stack.enter_context(tf32(self.tf32))
        if self.autocast_dtype is not None:
            stack.enter_context(torch.autocast(device.type, dtype=self.autocast_dtype))
        with stack:
            yield


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """torch's TF32 flags for matmuls and cuDNN convolutions set for the duration, then
    restored. They act on CUDA only; torch enables TF32 for cuDNN convolutions by default, so
    an "fp32" result on a GPU is fp32 only inside ``tf32(False)``."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _requested(request: str, allowed: tuple[str, ...], error: type[SRBenchError]) -> str:
    name = str(request).strip().lower()
    if name not in allowed:
        raise error(f"unknown precision {request!r} (choose from {', '.join(allowed)})")
    return name


def inference_precision(request: str, device: torch.device) -> Precision:
    """A forward pass's precision on ``device``; ProfilingError for one the device cannot run."""
    from srbench.inference import memory_format

    name = _requested(request, INFERENCE_PRECISIONS, ProfilingError)
    eval_cl = memory_format(device) == torch.channels_last  # the layout evaluation runs in
    if device.type == "cpu":
        if name == "fp32":
            return Precision("fp32", "fp32, channels_last", None, eval_cl, False)
        if name == "bf16":
            return Precision("bf16", "bf16-autocast (cpu)", torch.bfloat16, True, False)
        if name == "tf32":
            raise ProfilingError(
                "precision 'tf32' needs a CUDA GPU (TF32 is a tensor-core mode); on cpu use fp32 "
                "or bf16"
            )
        raise ProfilingError(
            "precision 'fp16' (float16 autocast) is not supported on cpu; use fp32 or bf16 there"
        )
    if name == "fp32":
        return Precision("fp32", "fp32 (TF32 off)", None, eval_cl, False)
    if name == "tf32":
        return Precision("tf32", "tf32 (fp32 with TF32 matmul/conv)", None, eval_cl, True)
    if name == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise ProfilingError(f"precision 'bf16' is not supported by this GPU ({device})")
    dtype = torch.float16 if name == "fp16" else torch.bfloat16
    return Precision(name, f"{name}-autocast, channels_last", dtype, True, False)


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it is not readable)."""
    from srbench.provenance import cpuinfo

    return frozenset(cpuinfo().get("flags", "").split())


def cpu_choice(flags: frozenset[str]) -> tuple[str, str]:
    """(precision, reason) for training on a CPU with these flags (see the module's table)."""
    bf16 = sorted(flags & {"amx_bf16", "avx512_bf16"})
    if bf16:
        return "bf16", f"CPU has {' and '.join(bf16)}: bf16 autocast + channels_last"
    if "avx512f" in flags:
        return "fp32-cl", "CPU has AVX-512 but no bf16 arithmetic: fp32 + channels_last"
    return "fp32", "CPU has no AVX-512: plain fp32 (bf16 would be emulated)"


def training_precision(request: str, device: torch.device) -> Precision:
    """What a training ``request`` (``auto`` included) means on ``device``."""
    name = _requested(request, TRAINING_PRECISIONS, SRBenchError)
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
    dtype = torch.bfloat16 if name == "bf16" else None
    label = ("bf16-autocast" if dtype else "fp32") + (", channels_last" if channels_last else "")
    return Precision(name, label, dtype, channels_last, False, reason)
