"""The metrics gate: baseline files, direction-aware tolerances, exact costs, hardware-aware latency."""

from __future__ import annotations

import io
import json

import pytest
import torch
from rich.console import Console

from srbench.cli.gate import baseline_update_command, check_command
from srbench.errors import SRBenchError
from srbench.gate import (
    SCHEMA,
    Tolerances,
    compare,
    current_entries,
    make_baseline,
    read_baseline,
)
from srbench.pareto import counted_costs
from srbench.protocols import get_protocol
from srbench.registry import ModelCard, register_model, unregister_model
from srbench.results import ResultStore

STANDARD = get_protocol("standard")


def _records(model="bicubic", sha="none", datasets=("set5", "set14"), scale=2, shift=0.0):
    counts = {"set5": 5, "set14": 14}
    out = []
    for dataset in datasets:
        for i in range(counts[dataset]):
            out.append(
                {"model": model, "weights_sha256": sha, "scale": scale, "dataset": dataset,
                 "image": f"img{i}", "protocol": STANDARD.id, "protocol_hash": STANDARD.hash,
                 "ensemble": False, "precision": "fp32", "psnr_db": 30.0 + i * 0.1 + shift,
                 "ssim": 0.9 + i * 0.001, "device": "Test CPU", "device_type": "cpu",
                 "torch_threads": 2, "torch_version": "2.x", "srbench_version": "0.1.0",
                 "git_commit": "abc"}
            )  # fmt: skip
    return out


def _consoles():
    out, err = io.StringIO(), io.StringIO()
    return (
        {"console": Console(file=out, width=250), "err_console": Console(file=err, width=250)},
        out,
    )


def _check(baseline, results, **kwargs) -> tuple[int, str]:
    consoles, out = _consoles()
    code = check_command(baseline, results, console=consoles["console"],
                         err_console=consoles["err_console"], **kwargs)  # fmt: skip
    return code, out.getvalue()


@pytest.fixture
def store(tmp_path):
    root = tmp_path / "results"
    ResultStore(root).append(_records())
    return root


@pytest.fixture
def baseline(store, tmp_path):
    path = tmp_path / "baseline.json"
    baseline_update_command(path, store, console=Console(file=io.StringIO()))
    return path


def test_baseline_file_holds_every_key_and_the_environment(baseline):
    data = json.loads(baseline.read_text())
    assert data["schema"] == SCHEMA
    assert len(data["entries"]) == 2
    entry = {e["dataset"]: e for e in data["entries"]}["set5"]
    for field in ("model", "weights_sha256", "protocol", "protocol_hash", "dataset", "scale",
                  "psnr_db", "ssim", "params", "macs", "latency_ms"):  # fmt: skip
        assert field in entry
    assert entry["params"] == 0 and entry["macs"] > 0  # bicubic: no parameters, bicubic MACs
    assert entry["images"] == 5
    assert entry["psnr_db"] == pytest.approx(30.2)
    assert data["environment"]["records"]["hardware"] == [
        {"device": "Test CPU", "device_type": "cpu", "torch_threads": 2}
    ]
    assert data["tolerances"] == {"psnr_db": 0.01, "ssim": 0.0002, "latency_rel": 0.1}


def test_identical_run_passes_and_check_never_writes_the_baseline(store, baseline):
    before = baseline.read_bytes()
    code, out = _check(baseline, store)
    assert code == 0, out
    assert "PASS" in out and "2 ok" in out
    assert baseline.read_bytes() == before


def test_psnr_drop_of_002_db_fails(store, baseline):
    ResultStore(store).append(_records(datasets=("set5",), shift=-0.02))  # newer records win
    code, out = _check(baseline, store)
    assert code == 1
    assert "FAIL" in out and "regressed" in out and "-0.020" in out


def test_small_drop_passes_and_improvement_is_not_a_failure(store, baseline):
    ResultStore(store).append(_records(datasets=("set5",), shift=-0.005))
    assert _check(baseline, store)[0] == 0
    ResultStore(store).append(_records(datasets=("set14",), shift=+0.05))
    code, out = _check(baseline, store)
    assert code == 0
    assert "improved" in out


def test_missing_result_fails(store, baseline, tmp_path):
    code, out = _check(baseline, tmp_path / "empty")
    assert code == 1 and "missing" in out


def _tiny_card(name: str) -> ModelCard:
    return ModelCard(name=name, family="test", paper="test", year=2024, scales=(2,),
                     input_channels="y", pre_upsampled=False, licence="MIT")  # fmt: skip


def test_parameter_count_change_fails(tmp_path):
    name = "gate_test_net"
    width = {"value": 4}

    def factory(scale: int, **overrides):
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, width["value"], 3, padding=1),
            torch.nn.Conv2d(width["value"], scale * scale, 3, padding=1),
            torch.nn.PixelShuffle(scale),
        )

    register_model(_tiny_card(name))(factory)
    try:
        counted_costs.cache_clear()
        results = tmp_path / "results"
        ResultStore(results).append(_records(model=name, sha="f" * 64, datasets=("set5",)))
        baseline = tmp_path / "baseline.json"
        baseline_update_command(baseline, results, console=Console(file=io.StringIO()))
        assert _check(baseline, results)[0] == 0

        width["value"] = 5  # the architecture changes; the measured numbers do not
        counted_costs.cache_clear()
        code, out = _check(baseline, results)
        assert code == 1
        assert "changed" in out
        params = {e["dataset"]: e for e in json.loads(baseline.read_text())["entries"]}["set5"]
        assert params["params"] == 4 * 9 + 4 + 4 * 4 * 9 + 4
        assert f"{params['params']:,} -> {5 * 9 + 5 + 5 * 4 * 9 + 4:,}" in out
    finally:
        unregister_model(name)
        counted_costs.cache_clear()


# ------------------------------------------------------------------------------------------------
# compare(): the rules, on hand-made entries
# ------------------------------------------------------------------------------------------------


def _entry(**overrides):
    entry = {"model": "m", "weights_sha256": "w", "protocol": "standard", "protocol_hash": "h",
             "dataset": "set5", "scale": 2, "ensemble": False, "precision": "fp32",
             "psnr_db": 30.0, "ssim": 0.9, "images": 5, "params": 100, "macs": 1000,
             "latency_ms": 10.0, "latency_hardware": {"device": "GPU A", "threads": 8}}  # fmt: skip
    entry.update(overrides)
    return entry


def _status(base, cur, metric=None):
    result = compare(make_baseline([base]), [cur])
    entry = result.entries[0]
    if metric is None:
        return entry.status
    return {m.metric: m for m in entry.metrics}[metric].status


def test_quality_tolerances_are_direction_aware():
    base = _entry()
    assert _status(base, _entry(psnr_db=29.99)) == "ok"  # exactly the tolerance
    assert _status(base, _entry(psnr_db=29.98)) == "regressed"
    assert _status(base, _entry(psnr_db=30.02)) == "improved"
    assert _status(base, _entry(ssim=0.9 - 0.0002)) == "ok"
    assert _status(base, _entry(ssim=0.9 - 0.0003)) == "regressed"
    assert _status(base, _entry(ssim=0.9 + 0.0003)) == "improved"


def test_costs_are_exact():
    assert _status(_entry(), _entry(params=101)) == "changed"
    assert _status(_entry(), _entry(params=99)) == "changed"  # fewer is still a change
    assert _status(_entry(), _entry(macs=1001)) == "changed"
    assert _status(_entry(), _entry(images=4)) == "changed"


def test_latency_is_relative_and_only_on_the_same_hardware():
    base = _entry()
    assert _status(base, _entry(latency_ms=10.9), "latency_ms") == "ok"
    assert _status(base, _entry(latency_ms=11.5), "latency_ms") == "regressed"
    assert _status(base, _entry(latency_ms=8.0), "latency_ms") == "improved"
    other = {"device": "GPU B", "threads": 8}
    assert (
        _status(base, _entry(latency_ms=50.0, latency_hardware=other), "latency_ms")
        == "skipped: different hardware"
    )
    threads = {"device": "GPU A", "threads": 4}
    assert _status(base, _entry(latency_ms=50.0, latency_hardware=threads)) == "ok"
    assert _status(base, _entry(latency_ms=None, latency_hardware=None), "latency_ms") == (
        "skipped: not measured"
    )


def test_missing_fails_new_does_not():
    result = compare(make_baseline([_entry()]), [_entry(dataset="set14")])
    statuses = {e.key["dataset"]: e.status for e in result.entries}
    assert statuses == {"set5": "missing", "set14": "new"}
    assert result.failed
    assert not compare(make_baseline([_entry()]), [_entry(), _entry(scale=3)]).failed


def test_missing_says_when_the_weights_or_protocol_changed():
    result = compare(make_baseline([_entry()]), [_entry(weights_sha256="other")])
    assert "other weights" in result.entries[0].note
    result = compare(make_baseline([_entry()]), [_entry(protocol_hash="h2")])
    assert "other protocol hashes: h2" in result.entries[0].note


def test_tolerances_from_the_file_and_overrides(tmp_path):
    data = make_baseline([_entry()], tolerances=Tolerances({"psnr_db": 0.5}))
    assert not compare(data, [_entry(psnr_db=29.6)]).failed
    assert compare(data, [_entry(psnr_db=29.6)], tolerances=Tolerances()).failed


def test_bad_baseline_files_are_one_line_errors(tmp_path):
    with pytest.raises(SRBenchError, match="no baseline file"):
        read_baseline(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SRBenchError, match="not a readable baseline"):
        read_baseline(bad)
    bad.write_text(json.dumps({"schema": "other", "entries": []}))
    with pytest.raises(SRBenchError, match="not an srbench baseline"):
        read_baseline(bad)


def test_update_refuses_an_empty_store(tmp_path):
    with pytest.raises(SRBenchError, match="no results match"):
        baseline_update_command(tmp_path / "b.json", tmp_path / "none",
                                console=Console(file=io.StringIO()))  # fmt: skip
    assert not (tmp_path / "b.json").exists()


def test_ablation_records_are_not_gated(tmp_path):
    root = tmp_path / "r"
    ResultStore(root).append([{**r, "ablation": "x"} for r in _records(datasets=("set5",))])
    assert current_entries(root) == []


# ------------------------------------------------------------------------------------------------
# A fresh run triggered by the check (real data)
# ------------------------------------------------------------------------------------------------


@pytest.mark.data
@pytest.mark.slow
def test_check_runs_what_the_store_lacks(tmp_path, data_root):
    from srbench.runner import RunConfig, run
    from srbench.sources import benchmark_source

    first = tmp_path / "first"
    config = RunConfig(models=["bicubic"], datasets=["set5"], scales=[2], results_dir=first)
    run(config, [benchmark_source("set5", data_root)])
    baseline = tmp_path / "baseline.json"
    baseline_update_command(baseline, first, console=Console(file=io.StringIO()))

    fresh = tmp_path / "fresh"
    assert _check(baseline, fresh)[0] == 1  # nothing there yet
    code, out = _check(baseline, fresh, run=True, data_root=data_root)
    assert code == 0, out
    assert len(ResultStore(fresh).iter_records()) == 5
