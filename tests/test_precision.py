"""One precision vocabulary (srbench.precision): each use resolves the names it accepts to the
same fields records have always carried, and every value in the committed store is a name of it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from srbench.errors import ProfilingError, SRBenchError
from srbench.precision import (
    EVALUATION_PRECISION,
    INFERENCE_PRECISIONS,
    PRECISIONS,
    TRAINING_PRECISIONS,
    cpu_choice,
    inference_precision,
    training_precision,
)

RESULTS = Path(__file__).resolve().parents[1] / "results"
CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_every_use_draws_on_the_one_vocabulary():
    assert set(INFERENCE_PRECISIONS) <= set(PRECISIONS)
    assert set(TRAINING_PRECISIONS) <= set(PRECISIONS)
    assert set(INFERENCE_PRECISIONS) | set(TRAINING_PRECISIONS) == set(PRECISIONS)


def _fields(p) -> tuple:
    return p.name, p.label, p.autocast_dtype, p.channels_last, p.tf32


@pytest.mark.parametrize(
    ("request_", "device", "expected"),
    [
        # fp32 runs in the layout evaluation runs in (srbench.inference.memory_format).
        ("fp32", CPU, ("fp32", "fp32, channels_last", None, True, False)),
        ("bf16", CPU, ("bf16", "bf16-autocast (cpu)", torch.bfloat16, True, False)),
        ("fp32", CUDA, ("fp32", "fp32 (TF32 off)", None, False, False)),
        ("tf32", CUDA, ("tf32", "tf32 (fp32 with TF32 matmul/conv)", None, False, True)),
        ("FP16", CUDA, ("fp16", "fp16-autocast, channels_last", torch.float16, True, False)),
    ],
)
def test_inference_precision_fields(request_, device, expected):
    assert _fields(inference_precision(request_, device)) == expected


@pytest.mark.parametrize("request_", ["tf32", "fp16", "fp32-cl", "auto", "int8"])
def test_inference_refuses_what_the_cpu_cannot_run_in_one_line(request_):
    with pytest.raises(ProfilingError) as info:
        inference_precision(request_, CPU)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("request_", "device", "expected"),
    [
        ("fp32", CPU, ("fp32", "fp32", None, False, False)),
        ("fp32-cl", CPU, ("fp32-cl", "fp32, channels_last", None, True, False)),
        ("bf16", CPU, ("bf16", "bf16-autocast, channels_last", torch.bfloat16, True, False)),
        ("fp32", CUDA, ("fp32", "fp32, channels_last", None, True, False)),
    ],
)
def test_training_precision_fields(request_, device, expected):
    resolved = training_precision(request_, device)
    assert _fields(resolved) == expected
    assert resolved.reason == "requested"
    assert resolved.autocast_bf16 == (request_ == "bf16")


def test_training_refuses_an_inference_only_name():
    with pytest.raises(SRBenchError, match="unknown precision 'tf32'"):
        training_precision("tf32", CPU)


def _stored_values(field: str) -> dict[str, int]:
    """Every value of ``field`` in the committed store's JSON and JSON-lines files."""
    pattern = re.compile(rf'"{field}": *"([^"]*)"')
    counts: dict[str, int] = {}
    for path in RESULTS.rglob("*.json*"):
        for value in pattern.findall(path.read_text(encoding="utf-8", errors="replace")):
            counts[value] = counts.get(value, 0) + 1
    return counts


def test_a_runs_records_carry_the_evaluation_precision(tmp_path):
    """Scoring's precision is the vocabulary's fp32 (the value every stored record has): a run
    of bicubic on one synthetic image stores exactly that."""
    import numpy as np

    from srbench.data import HRImage, pixels_sha256
    from srbench.runner import RunConfig, iter_run
    from srbench.sources import DatasetSource

    assert inference_precision(EVALUATION_PRECISION, CPU).name == EVALUATION_PRECISION == "fp32"
    pixels = np.random.default_rng(0).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    image = HRImage("synthetic", "a", pixels, pixels_sha256(pixels), None)
    source = DatasetSource("synthetic", "test", ["a"], lambda name: image, is_standard=False)
    config = RunConfig(models=["bicubic"], datasets=["synthetic"], scales=[2],
                       results_dir=tmp_path, cache_lr=False, crops=False)  # fmt: skip
    records = [e.record for e in iter_run(config, [source]) if e.record]
    assert [r["precision"] for r in records] == ["fp32"]


def test_every_stored_precision_is_a_name_of_the_vocabulary():
    stored = _stored_values("precision")
    assert stored and stored["fp32"] > 0
    assert set(stored) <= set(PRECISIONS) - {"auto"}, stored


def test_stored_auto_reasons_are_still_what_auto_says():
    flags = {"avx512f", "amx_bf16", "avx512_bf16"}
    reasons = {
        cpu_choice(frozenset(f))[1] for f in (flags, flags - {"amx_bf16"}, {"avx512f"}, set())
    }
    stored = set(_stored_values("precision_reason")) - {"requested"}
    assert stored <= reasons, stored


def test_stored_profile_records_keep_their_precision_fields():
    """The committed profiles (NCHW fp32 timings from before profiles matched `run`) still read
    as fp32, and are the ones the report does not take latency from."""
    from srbench.shown_costs import timed_as_run

    lines = (RESULTS / "profile.jsonl").read_text().splitlines()
    records = [r for r in map(json.loads, lines) if "model" in r]
    assert records
    assert all(r["precision"] in INFERENCE_PRECISIONS for r in records)
    nchw = [r for r in records if r.get("memory_format") is None]
    assert nchw and all(r["channels_last"] is False and not timed_as_run(r) for r in nchw)


def test_evaluation_runs_with_tf32_off_and_restores_the_flags():
    """torch turns TF32 on for cuDNN convolutions by default: an "fp32" record made on a GPU
    would be TF32's. Evaluation turns both TF32 flags off around the forward pass (they act on
    CUDA only, so this is seen on any machine) and restores what was set."""
    import numpy as np

    from srbench.evaluation import evaluate_image
    from srbench.protocols import LEGACY_Y, Prepared

    seen = []

    class Upscale(torch.nn.Module):
        def forward(self, x):
            seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
            return torch.nn.functional.interpolate(x, scale_factor=2)

    prepared = Prepared(np.full((1, 8, 8), 0.5), np.full((16, 16), 128.0), 2)
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        evaluate_image(Upscale(), prepared, LEGACY_Y, torch.device("cpu"))
        assert seen == [(False, False)]
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (
            True,
            True,
        )
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
