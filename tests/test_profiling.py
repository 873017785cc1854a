"""Efficiency numbers (srbench.profiling): MACs against the literature, parameter counts, the
fvcore / FlopCounterMode cross-check, latency record structure and input validation.

MACs at 1280x720 are counted with ``method="auto"``, which for these sizes counts at small probe
sizes and extrapolates only when verified exact (see srbench/profiling/__init__.py); one test proves the
extrapolation equal to a full-size fvcore trace for IDN x4, and the literature test also checks
each count against FlopCounterMode run on the meta device at full size.
"""

from __future__ import annotations

import copy
import io
import json
import math
from pathlib import Path

import pytest
import torch
from rich.console import Console
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from typer.testing import CliRunner

from srbench.cli import app
from srbench.errors import ProfilingError, SRBenchError
from srbench.precision import inference_precision
from srbench.profiling import (
    count_macs,
    lr_shape,
    param_counts,
    parse_size,
    profile_model,
    trainable_params,
)
from srbench.registry import (
    ModelCard,
    create_model,
    get_card,
    list_models,
    register_model,
    unregister_model,
)

HD = parse_size("720p")


def macs_at(name: str, scale: int, size=HD, method: str = "auto"):
    card = get_card(name)
    return count_macs(create_model(name, scale), lr_shape(card, scale, size), method=method)


# ------------------------------------------------------------------------------------------------
# MACs against the literature (docs/PUBLISHED.md, "Model size and cost")
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "scale", "published_gmacs"),
    [
        ("srcnn", 2, 52.7),
        ("srcnn", 3, 52.7),
        ("srcnn", 4, 52.7),
        ("srcnn_915", 3, 7.40),
        ("vdsr", 2, 612.6),
        ("vdsr", 4, 612.6),
        ("edsr_baseline", 2, 316.25),
        ("edsr_baseline", 3, 160.31),  # LR 427x240 (round(1280/3) x round(720/3)): +0.08 %
        ("edsr_baseline", 4, 114.23),
    ],
)
def test_network_macs_at_720p_match_the_literature(name, scale, published_gmacs):
    macs = macs_at(name, scale)
    assert macs.network_macs / 1e9 == pytest.approx(published_gmacs, rel=0.005)
    # The same count from torch's FlopCounterMode at full size (meta device, no compute).
    assert macs.flop_counter_check["status"] == "ok"
    assert macs.flop_counter_check["matches"], macs.flop_counter_check
    assert macs.uncounted_ops == {}


def test_idn_x4_macs_with_transposed_conv_counted_per_lr_pixel():
    macs = macs_at("idn", 4)
    lr_pixels = 180 * 320
    # 64 -> 1 channels, 17x17 kernel, once per LR (input) pixel: fvcore's transposed-conv rule.
    assert macs.by_category["conv_transpose"] == 64 * 1 * 17 * 17 * lr_pixels
    assert macs.network_macs / 1e9 == pytest.approx(31.7, rel=0.02)
    assert macs.network_macs == 551_040 * lr_pixels  # 31.74 G, exact per-LR-pixel sum
    assert macs.flop_counter_check["matches"]


def test_transposed_conv_literature_convention_gives_fsrcnn_6_gmacs():
    """FSRCNN x2 (d=56, s=12, m=4) at a 720p output: the 6.0 G of later papers' tables arises
    from charging its 9x9 deconvolution once per output pixel; srbench's count (once per input
    pixel, what runs) is 2.87 G, and both are kept, labelled."""
    d, s_, m = 56, 12, 4
    layers: list[nn.Module] = [nn.Conv2d(1, d, 5, padding=2), nn.PReLU(d)]
    layers += [nn.Conv2d(d, s_, 1), nn.PReLU(s_)]
    for _ in range(m):
        layers += [nn.Conv2d(s_, s_, 3, padding=1), nn.PReLU(s_)]
    layers += [nn.Conv2d(s_, d, 1), nn.PReLU(d)]
    layers += [nn.ConvTranspose2d(d, 1, 9, stride=2, padding=4, output_padding=1)]
    fsrcnn = nn.Sequential(*layers).eval()
    macs = count_macs(fsrcnn, (1, 1, 360, 640))
    lr, hr = 360 * 640, 720 * 1280
    convs = (25 * d + d * s_ + m * 9 * s_ * s_ + s_ * d) * lr
    assert macs.by_category["conv"] == convs
    assert macs.by_category["conv_transpose"] == 81 * d * lr  # true: once per input pixel
    assert macs.by_category["conv_transpose_per_output"] == 81 * d * hr
    assert macs.network_macs == convs + 81 * d * lr  # 2.87 G: what runs
    assert macs.literature_macs / 1e9 == pytest.approx(6.0, abs=0.02)  # 6.01 G as published
    assert macs.to_dict()["literature_macs"] == macs.literature_macs
    # Models without a transposed convolution: one count.
    srcnn = macs_at("srcnn", 2)
    assert srcnn.literature_macs == srcnn.total_macs


def test_extrapolated_macs_equal_a_full_size_trace():
    """The extrapolation is exact: IDN x4 (convs, transposed conv, bicubic) traced at 720p."""
    extrapolated = macs_at("idn", 4, method="extrapolate")
    traced = macs_at("idn", 4, method="trace")
    assert "extrapolated" in extrapolated.method and "trace" in traced.method
    assert extrapolated.by_category == traced.by_category
    # SRCNN x3 at a size that is none of the probes, with a non-square bicubic product.
    ex = macs_at("srcnn", 3, parse_size("lr:37x23"), method="extrapolate")
    tr = macs_at("srcnn", 3, parse_size("lr:37x23"), method="trace")
    assert "extrapolated" in ex.method
    assert ex.by_category == tr.by_category


def test_network_macs_are_linear_in_pixels_and_bicubic_is_reported_apart():
    for name in ("srcnn", "vdsr", "idn", "edsr_baseline"):
        card = get_card(name)
        per_pixel = set()
        for w, h in ((24, 16), (40, 24)):
            macs = count_macs(create_model(name, 2), lr_shape(card, 2, parse_size(f"{w}x{h}")))
            assert macs.network_macs % (w * h) == 0
            per_pixel.add(macs.network_macs // (w * h))
        assert len(per_pixel) == 1, name
    # Bicubic MACs: the two dense matmuls of imresize_torch, s*h^2*w + s^2*h*w^2 (N = C = 1).
    s, h, w = 3, 20, 30
    srcnn = macs_at("srcnn", s, parse_size(f"{w}x{h}"))
    bicubic = macs_at("bicubic", s, parse_size(f"{w}x{h}"))
    assert srcnn.bicubic_macs == bicubic.bicubic_macs == s * h * h * w + s * s * h * w * w
    assert bicubic.network_macs == 0
    assert macs_at("edsr_baseline", 2, parse_size("16")).bicubic_macs == 0
    assert srcnn.total_macs == srcnn.network_macs + srcnn.bicubic_macs
    assert srcnn.to_dict()["total_flops"] == 2 * srcnn.total_macs


# fvcore (srbench's handles) counts MACs = multiply-accumulates, per category: conv (output
# pixels x C_out x C_in/groups x k^2), conv_transpose (the same product per *input* pixel),
# matmul/bicubic (batch x n x k x m), linear, einsum; elementwise ops are counted apart as
# operations, not MACs. torch.utils.flop_counter.FlopCounterMode counts FLOPs = 2 x MACs per aten
# op: aten.convolution (transposed ones per input pixel too), aten.mm/bmm/addmm/baddbmm; it counts
# no elementwise op. Neither counts a bias addition. So, op by op, the allowed difference is
# zero: convolution FLOPs = 2 x (conv + conv_transpose) MACs, mm-family FLOPs = 2 x (matmul +
# bicubic + linear) MACs; elementwise ops are outside the comparison (FlopCounterMode has no
# count for them), and FlopCounterMode ops without a rule here fail the test.
_MM_OPS = ("mm", "bmm", "addmm", "baddbmm")


def _flops_by_op(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return {
        str(k).removeprefix("aten."): int(v) for k, v in counter.get_flop_counts()["Global"].items()
    }


def _fvcore_flops_by_op(macs) -> dict[str, int]:
    c = macs.by_category
    return {
        "convolution": 2 * (c.get("conv", 0) + c.get("conv_transpose", 0)),
        "mm-family": 2 * (c.get("matmul", 0) + c.get("bicubic", 0) + c.get("linear", 0)),
        "einsum": 2 * c.get("einsum", 0),
    }


def _torch_flops_grouped(flops: dict[str, int]) -> dict[str, int]:
    assert set(flops) <= {"convolution", "einsum", *_MM_OPS}, f"no rule for {sorted(flops)}"
    return {
        "convolution": flops.get("convolution", 0),
        "mm-family": sum(flops.get(op, 0) for op in _MM_OPS),
        "einsum": flops.get("einsum", 0),
    }


@pytest.mark.parametrize("name", list_models())
def test_fvcore_macs_equal_flop_counter_mode_flops_op_by_op(name):
    """Every registered model at x2 on a 16x12 LR input, against FlopCounterMode on the meta
    device (shapes only: the forward branch fvcore's trace takes), and on real CPU tensors."""
    card = get_card(name)
    model = create_model(name, 2).eval()
    shape = lr_shape(card, 2, parse_size("16x12"))
    macs = count_macs(model, shape, method="trace")
    assert macs.uncounted_ops == {} and macs.total_macs > 0
    expected = _fvcore_flops_by_op(macs)
    meta = copy.deepcopy(model).to("meta")
    assert _torch_flops_grouped(_flops_by_op(meta, torch.zeros(shape, device="meta"))) == expected
    real = _torch_flops_grouped(_flops_by_op(model, torch.rand(shape)))
    if name == "idn":
        # On real tensors IDN runs its transposed convolution as a convolution on the LR grid
        # (s^2 x 64 x K x K per LR pixel, zero taps included) + pixel shuffle: FlopCounterMode
        # counts what runs, fvcore the architecture's transposed conv (64 x 17 x 17 per LR pixel).
        side = model._lr_grid_index.shape[-1]
        h, w = shape[-2:]
        expected["convolution"] += 2 * h * w * (4 * 64 * side * side - 64 * 17 * 17)
    assert real == expected


def test_elementwise_and_data_movement_are_accounted_not_dropped():
    macs = macs_at("edsr_baseline", 2, parse_size("16"))
    assert macs.ops.get("aten::pixel_shuffle") == 1  # zero-cost handle, listed
    assert macs.elementwise_ops > 0  # adds, relus, mean shift: operations, not MACs
    assert macs.network_macs == macs.by_category["conv"]
    assert macs.uncounted_ops == {}

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)

        def forward(self, x):
            return torch.cumsum(self.conv(x), dim=-1)

    odd = count_macs(Odd(), (1, 1, 8, 8), method="trace")
    assert odd.uncounted_ops == {"aten::cumsum": 1}
    assert odd.network_macs == 2 * 9 * 64


# ------------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "scale", "trainable"),
    [
        ("srcnn", 2, 57_281),
        ("srcnn_915", 2, 8_129),
        ("vdsr", 3, 665_921),
        ("idn", 2, 552_769),
        ("idn", 4, 552_769),
        ("edsr_baseline", 2, 1_369_859),
        ("edsr_baseline", 3, 1_554_499),
        ("edsr_baseline", 4, 1_517_571),
        ("bicubic", 4, 0),
    ],
)
def test_trainable_params(name, scale, trainable):
    model = create_model(name, scale)
    params = param_counts(model)
    assert params["trainable_params"] == trainable == get_card(name).published_params[scale]
    assert trainable_params(model) == trainable  # what training records and Pareto tables use


def test_edsr_frozen_mean_shift_is_reported_as_held():
    """srbench's EDSR holds the mean shift as two frozen 3-value buffers (6 values); the official
    code holds two frozen 1x1 convolutions (2 x (9 + 3) = 24 values). Neither is trainable."""
    params = param_counts(create_model("edsr_baseline", 2))
    assert params["frozen_params"] == 0
    assert params["buffer_values"] == params["frozen_values"] == 6
    assert params["frozen_detail"] == {"sub_mean.shift": 3, "add_mean.shift": 3}
    assert param_counts(create_model("vdsr", 2))["frozen_values"] == 0


# ------------------------------------------------------------------------------------------------
# Latency records
# ------------------------------------------------------------------------------------------------


def test_cpu_peak_rss_sees_a_known_allocation():
    from srbench.profiling.latency import _cpu_peak_rss

    memory = _cpu_peak_rss(lambda: torch.ones(50_000_000))  # 200 MB of float32, touched
    assert memory["status"] == "measured"
    assert 190e6 <= memory["peak_increase_bytes"] <= 260e6


def test_cpu_latency_record_structure():
    (record,) = profile_model("srcnn", 2, sizes=["16"], repeats=3, warmup=1)
    lat = record["latency"]
    assert lat["status"] == "measured"
    assert lat["timer"] == "time.perf_counter"
    for key in ("median_ms", "iqr_ms", "min_ms", "q1_ms", "q3_ms", "mean_ms"):
        assert lat[key] >= 0
    assert lat["min_ms"] <= lat["median_ms"]
    assert lat["repeats"] == 3 and lat["warmup"] == 1 and len(lat["times_ms"]) == 3
    assert len(lat["load_average_1min"]) == 2
    # Measured as `srbench run` evaluates: channels_last fp32, its thread policy.
    assert lat["threads"] == record["threads"] == record["env"]["torch_threads"]
    assert record["thread_policy"] == "adaptive" and record["idle_cores"] is not None
    assert record["memory_format"] == "channels_last" and record["as_run"] is True
    assert record["device_type"] == "cpu" and record["precision_label"] == "fp32, channels_last"
    memory = record["peak_memory"]
    assert memory["status"] == "measured" and "VmHWM" in memory["method"]
    assert memory["peak_rss_bytes"] >= memory["rss_before_bytes"] > 0
    assert "peak_allocated_bytes" not in memory  # CUDA's allocator number, not claimed on CPU
    env = record["env"]
    assert env["device"] == "cpu"
    assert env["cpu_model"] and env["torch"] == torch.__version__
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "cpu family" in cpuinfo.read_text():
        family = next(
            line.split(":")[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("cpu family")
        )
        assert f" family {family} model " in env["cpu_id"]  # the generation, not only the brand
    assert record["network_macs"] == 57_184 * 32 * 32
    json.dumps(record)  # JSON-ready
    # The printed table shows the measured CPU peak (the RSS), not "not measured".
    from srbench.cli.profile import profile_table

    buffer = io.StringIO()
    Console(file=buffer, width=250).print(profile_table([record]))
    assert f" {memory['peak_rss_bytes'] / 2**20:.0f} " in buffer.getvalue()
    assert "not measured" not in buffer.getvalue()


def test_time_budget_stops_early_but_keeps_a_minimum():
    (record,) = profile_model("srcnn", 2, sizes=["8"], repeats=50, warmup=0, budget_s=1e-9)
    assert record["latency"]["repeats"] == 3
    assert record["latency"]["stopped_by"] == "budget"
    assert record["latency"]["repeats_requested"] == 50


def test_bf16_autocast_on_cpu_is_labelled():
    (record,) = profile_model("srcnn", 2, sizes=["8"], precisions=["bf16"], repeats=1, warmup=0)
    assert record["precision_label"] == "bf16-autocast (cpu)"
    assert record["channels_last"] is True and record["autocast_dtype"] == "bfloat16"
    assert record["as_run"] is False  # `srbench run` evaluates fp32: not its latency


def test_fixed_threads_are_used_recorded_and_restored():
    before = torch.get_num_threads()
    (record,) = profile_model("srcnn", 2, sizes=["8"], repeats=1, warmup=0, threads=1)
    assert record["threads"] == record["latency"]["threads"] == 1
    assert record["thread_policy"] == "fixed" and record["env"]["torch_threads"] == 1
    assert torch.get_num_threads() == before


def test_report_latency_comes_only_from_profiles_measured_as_run():
    from srbench.pareto import efficiency_table
    from srbench.shown_costs import timed_as_run

    (record,) = profile_model("srcnn", 2, sizes=["8"], repeats=1, warmup=0, threads=1)
    old = {k: v for k, v in record.items() if k not in ("as_run", "memory_format")}
    old["channels_last"] = False  # an NCHW timing from before profiles matched `run`
    assert timed_as_run(record) and not timed_as_run(old)
    table = efficiency_table([("srcnn", 2)], [record], size="8")
    assert table.loc[0, "latency_ms"] == record["latency_median_ms"]
    table = efficiency_table([("srcnn", 2)], [old], size="8")
    assert math.isnan(table.loc[0, "latency_ms"]) and table.loc[0, "params"] == 57_281


def test_only_profiles_of_the_code_as_it_is_now_are_shown(monkeypatch):
    """A profile record carries the keys of the code it measured; the Pareto table, the gate and
    the report's efficiency section show counts and a latency of today's code only (a record
    from before the keys: shown, said so; one of other code: left out, said so)."""
    from srbench import shown_costs as module
    from srbench.cost_cache import current_keys
    from srbench.pareto import efficiency_table
    from srbench.report.tables import efficiency_rows

    (timed,) = profile_model("srcnn", 2, sizes=["8"], repeats=1, warmup=0, threads=1)
    now = (timed["cost_key"], timed["latency_key"])
    assert now == current_keys("srcnn", 2, "8")
    recount = {k: v for k, v in timed.items() if k not in ("latency", "latency_median_ms")}
    recount = dict(recount, cost_key="c2", trainable_params=1)  # the model changed, counted again

    def table(records, keys):
        monkeypatch.setattr(module, "current_keys", lambda model, scale, size: keys)
        return efficiency_table([("srcnn", 2)], records, size="8").loc[0]

    row = table([timed, recount], now)  # the code went back: today's is the first record's
    assert row["latency_ms"] == timed["latency_median_ms"] and row["params"] == 57_281
    assert row["cost_source"] == "srbench profile"
    row = table([timed, recount], ("c2", "l2"))  # the model's code changed since it was timed
    assert row["params"] == 1 and math.isnan(row["latency_ms"])
    older = "only of other code than today's, not shown (re-run `srbench profile`)"
    assert f"latency: {older}" in row["cost_source"]
    row = table([timed], ("c2", "l2"))  # not counted again yet
    assert math.isnan(row["params"]) and "counts: only of other code" in row["cost_source"]
    row = table([timed, recount], ("c2", timed["latency_key"]))  # a MAC-counter fix only
    assert row["params"] == 1 and row["latency_ms"] == timed["latency_median_ms"]
    legacy = {k: v for k, v in timed.items() if k not in ("cost_key", "latency_key")}
    row = table([legacy], ("c2", "l2"))  # written before profiles carried keys: code unknown
    assert row["latency_ms"] == timed["latency_median_ms"] and row["params"] == 57_281
    assert "latency: code not recorded" in row["cost_source"]
    row = table([legacy, recount], ("c3", "l3"))  # a keyed record of other code came after it
    assert math.isnan(row["latency_ms"]) and math.isnan(row["params"])
    row = table([legacy, dict(recount, cost_key="c3")], ("c3", "l3"))  # today's count after it
    assert row["params"] == 1 and math.isnan(row["latency_ms"])
    half = {k: v for k, v in timed.items() if k != "latency_key"}  # cost_key of other code
    assert math.isnan(table([half], ("c3", "l3"))["latency_ms"])
    row = table([timed, recount], (None, None))  # not registered here: the newest record
    assert row["params"] == 1 and row["latency_ms"] == timed["latency_median_ms"]
    monkeypatch.setattr(module, "current_keys", lambda model, scale, size: ("c2", "l2"))
    big = [dict(r, size="720p") for r in (timed, recount)]
    (block,) = efficiency_rows(big, {"srcnn"})
    (report_row,) = block["rows"]
    assert report_row["params"] == "1" and report_row["cpu_ms"] == f"not measured; {older}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_gpu_requested_on_a_cpu_only_machine_is_not_measured():
    (record,) = profile_model("srcnn", 2, device="cuda", sizes=["8"], precisions=["fp16"])
    assert record["latency"]["status"] == "not measured"
    assert "median_ms" not in record["latency"] and record["latency_median_ms"] is None
    assert record["peak_memory"]["status"] == "not measured"
    assert record["device_type"] == "cuda" and record["env"]["device"] == "cpu"
    assert record["network_macs"] == 57_184 * 16 * 16  # counting needs no GPU


# ------------------------------------------------------------------------------------------------
# Sizes and bad input
# ------------------------------------------------------------------------------------------------


def test_size_conventions():
    assert HD.lr_hw(2) == (360, 640) and HD.lr_hw(4) == (180, 320)
    assert HD.lr_hw(3) == (240, 427)  # literature convention, output 1281x720
    assert "1281x720" in HD.describe(3)
    assert parse_size("256").lr_hw(3) == (256, 256)
    assert parse_size("1080p").lr_hw(2) == (540, 960)
    assert parse_size("lr:64x48").lr_hw(4) == (48, 64) == parse_size("64x48").lr_hw(2)
    assert parse_size("hr:1920x1080").lr_hw(4) == (270, 480)


@pytest.mark.parametrize("text", ["0", "-4", "0p", "hr:0x720", "64x0", "big", "", "lr:x"])
def test_bad_sizes_raise(text):
    with pytest.raises(ProfilingError):
        parse_size(text)


def test_sizes_violating_model_constraints_raise():
    card = ModelCard(
        name="_test_multiple4",
        family="test",
        paper="test",
        year=2024,
        scales=(2,),
        input_channels="rgb",
        pre_upsampled=False,
        input_multiple=4,
    )

    @register_model(card)
    def factory(scale, **overrides):
        return nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2))

    try:
        with pytest.raises(ProfilingError, match="multiples of 4"):
            profile_model("_test_multiple4", 2, sizes=["30"], measure=False)
        with pytest.raises(ProfilingError, match="at least 4x4"):
            profile_model("_test_multiple4", 2, sizes=["hr:4x4"], measure=False)
        (record,) = profile_model("_test_multiple4", 2, sizes=["32"], measure=False)
        assert record["network_macs"] == 3 * 12 * 9 * 32 * 32
        assert record["latency"]["status"] == "not measured"
    finally:
        unregister_model("_test_multiple4")
    with pytest.raises(ProfilingError, match="at least 1x1"):
        lr_shape(get_card("srcnn"), 4, parse_size("hr:1x1"))


@pytest.mark.parametrize("precision", ["fp16", "tf32", "int8"])
def test_unsupported_precisions_on_cpu_raise(precision):
    with pytest.raises(ProfilingError) as info:
        inference_precision(precision, torch.device("cpu"))
    assert "\n" not in str(info.value)
    with pytest.raises(ProfilingError):
        profile_model("srcnn", 2, sizes=["8"], precisions=["fp32", precision])


def test_other_bad_arguments_raise():
    with pytest.raises(ProfilingError):
        profile_model("srcnn", 5, sizes=["8"])  # unsupported scale
    with pytest.raises(ProfilingError):
        profile_model("srcnn", 2, sizes=["8"], repeats=0)
    with pytest.raises(SRBenchError, match="unknown device 'tpu'"):
        profile_model("srcnn", 2, device="tpu", sizes=["8"])
    with pytest.raises(ProfilingError):
        profile_model("no_such_model", 2, sizes=["8"])


# ------------------------------------------------------------------------------------------------
# The command body
# ------------------------------------------------------------------------------------------------


def test_profile_command_prints_a_table_and_appends_json_lines(tmp_path):
    out = tmp_path / "results" / "profile.jsonl"
    args = ["profile", "--models", "srcnn,bicubic", "--scales", "2,4", "--sizes", "8,hr:32x24"]
    args += ["--repeats", "2", "--warmup", "0", "--output", str(out)]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["model"], r["scale"], r["size"]) for r in lines] == [
        (m, s, size) for m in ("srcnn", "bicubic") for s in (2, 4) for size in ("8", "hr:32x24")
    ]
    assert all(r["env"]["cpu_model"] for r in lines)
    assert {r["precision"] for r in lines} == {"fp32"}
    text = result.stdout
    assert "srcnn" in text and "bicubic" in text and "FLOPs = 2 x MACs" in text
    assert f"8 records appended to {out}" in result.stderr
    # a bad precision or size fails in one line before anything is measured or written
    none = tmp_path / "none.jsonl"
    for bad in (["--precision", "fp16"], ["--sizes", "0"]):
        args = ["profile", "--models", "srcnn", "--scales", "2", "--sizes", "8", "--output"]
        result = CliRunner().invoke(app, [*args, str(none), *bad], catch_exceptions=False)
        assert result.exit_code == 2 and result.stderr.count("error:") == 1, result.output
        assert not none.exists()


def test_every_registered_model_can_be_counted():
    for name in list_models():
        card = get_card(name)
        scale = card.scales[0]
        macs = count_macs(create_model(name, scale), lr_shape(card, scale, parse_size("12")))
        assert macs.total_macs > 0 and macs.uncounted_ops == {}, name


def test_a_run_counts_costs_again_when_the_model_code_changed(tmp_path, monkeypatch):
    """``srbench run`` keeps params/MACs in the store for the report; a count of older code
    (another ``cost_key``: model and counting code) is counted again, not read as today's."""
    from srbench import cost_cache, runner
    from srbench.profiling import DEFAULT_SIZES, parse_size
    from srbench.results import PROFILE_FILE

    counted = []

    def counts(model, scale, sizes, cache_dir):
        counted.append(list(sizes))
        return [
            {"model": model, "scale": scale, "size": parse_size(s).label, "cost_key": f"k-{s}"}
            for s in sizes
        ]

    monkeypatch.setattr(cost_cache, "cached_counts", counts)
    monkeypatch.setattr(cost_cache, "cost_key", lambda model, scale, size: f"k-{size}")
    assert runner._ensure_costs(tmp_path, "srcnn", 2) == ""
    assert runner._ensure_costs(tmp_path, "srcnn", 2) == ""  # the same code: nothing to count
    assert counted == [list(DEFAULT_SIZES)]
    monkeypatch.setattr(cost_cache, "cost_key", lambda model, scale, size: f"new-{size}")
    runner._ensure_costs(tmp_path, "srcnn", 2)
    assert counted == [list(DEFAULT_SIZES)] * 2
    assert len((tmp_path / PROFILE_FILE).read_text().splitlines()) == 2 * len(DEFAULT_SIZES)
