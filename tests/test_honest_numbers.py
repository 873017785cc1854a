"""No silent wrong number (issue 22, items 1-5): the weights a user named are used or refused;
a stored result is reused only by the same code and tiling; a benchmark mean is over one
verified copy of all its images; values that cannot exist are refused on write and on read."""

from __future__ import annotations

import contextlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from srbench.cli.gate import baseline_update_command
from srbench.codehash import model_code_sha256
from srbench.data import HRImage, pixels_sha256
from srbench.errors import SRBenchError, WeightsError
from srbench.gate import read_baseline
from srbench.registry import ModelCard, create_model, register_model, unregister_model
from srbench.results import RECORDS_FILE, ResultStore
from srbench.runner import RunConfig, run
from srbench.schema import PSNR_MAX_DB, field_value, record_key
from srbench.sources import DatasetSource
from srbench.weights import index_weights, save_weights

REPO = Path(__file__).resolve().parent.parent


def _source(count: int = 3) -> DatasetSource:
    rng = np.random.default_rng(0)
    images = {f"s{i}": rng.integers(0, 256, (36, 48, 3), dtype=np.uint8) for i in range(count)}

    def load(name: str) -> HRImage:
        return HRImage("synthetic", name, images[name], pixels_sha256(images[name]), None)

    return DatasetSource("synthetic", "test", list(images), load, is_standard=False)


def _config(root: Path, **changes) -> RunConfig:
    options = {"models": ["bicubic"], "datasets": ["synthetic"], "scales": [2]}
    return RunConfig(**{**options, "results_dir": root, "cache_lr": False, **changes})


# ------------------------------------------------------------------------------------------------
# 1. The weights a user named are used or refused, never replaced by the shipped ones
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vdsr_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("w") / "vdsr.safetensors"
    save_weights(create_model("vdsr", scale=2), path, model_name="vdsr", scale=(2, 3, 4))
    return path


def _run_idn_with(named: Path, tmp_path: Path):
    config = _config(tmp_path, models=["idn"], weights_named=[named])
    config.weights = index_weights([named])
    return run(config, [_source(1)])


def test_a_weights_file_for_another_model_is_refused(vdsr_file, tmp_path):
    with pytest.raises(SRBenchError) as err:
        _run_idn_with(vdsr_file, tmp_path)
    message = str(err.value)
    assert message.startswith(f"{vdsr_file}: weights for vdsr x2, vdsr x3, vdsr x4, none of ")
    assert "(it runs idn x2)" in message and "\n" not in message
    assert not (tmp_path / RECORDS_FILE).exists()  # nothing computed with the shipped weights


def test_a_folder_with_nothing_for_the_model_is_refused(vdsr_file, tmp_path):
    folder = vdsr_file.parent
    with pytest.raises(SRBenchError, match=rf"^{folder}: weights for vdsr x2.*it runs idn x2"):
        _run_idn_with(folder, tmp_path)


def test_an_empty_weights_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match=r"empty: no \.safetensors weights files in this"):
        index_weights([tmp_path / "empty"])


def test_a_folder_holding_the_models_weights_is_used(vdsr_file, tmp_path):
    idn = vdsr_file.parent / "idn_x2.safetensors"
    sha = save_weights(create_model("idn", scale=2), idn, model_name="idn", scale=2)
    try:
        records = _run_idn_with(vdsr_file.parent, tmp_path / "r")
    finally:
        idn.unlink()
    assert {r["weights_sha256"] for r in records} == {sha}


# ------------------------------------------------------------------------------------------------
# 2. A stored result is reused only when the code that computes it is the same
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _plugin_model(root: Path, package: str, model: str, arch: str, monkeypatch) -> Iterator[Path]:
    """Model ``model`` registered from package ``package`` on disk under ``root``: its factory
    lives in ``arch.py`` (source ``arch``), and ``helper.py`` is there to be imported."""
    folder = root / package
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "helper.py").write_text("def gain():\n    return 1.0\n")
    (folder / "arch.py").write_text(arch)
    monkeypatch.syspath_prepend(str(root))

    def factory(scale, **overrides):
        return create_model("bicubic", scale=scale)

    factory.__module__ = f"{package}.arch"
    register_model(ModelCard(model, "test", "none", 2026, (2,), "any", False, trainable=False))(
        factory
    )
    try:
        yield folder
    finally:
        unregister_model(model)
        sys.modules.pop(package, None)


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A model registered from a package on disk: arch.py imports helper.py at module level."""
    arch = "from i22_plugin.helper import gain\n"
    with _plugin_model(tmp_path, "i22_plugin", "i22_model", arch, monkeypatch) as package:
        yield package


def _rewrite(path: Path, text: str) -> None:
    before = path.stat().st_mtime_ns
    path.write_text(text)
    if path.stat().st_mtime_ns == before:  # a coarse clock: the hash cache keys on mtime
        import os

        os.utime(path, ns=(before + 1, before + 1))


def test_code_hash_follows_the_models_code_and_its_imports(plugin):
    first = model_code_sha256("i22_model")
    assert len(first) == 16 and first != model_code_sha256("bicubic")
    helper = plugin / "helper.py"
    _rewrite(helper, '"""Docs."""\n\n\ndef gain():  # a comment\n    return 1.0\n')
    assert model_code_sha256("i22_model") == first  # docs, comments, layout: same code
    _rewrite(helper, "def gain():\n    return 1.01\n")
    assert model_code_sha256("i22_model") != first  # an imported module's code changed


def test_code_hash_covers_the_metric_functions_the_scorer_imports_by_name(plugin, monkeypatch):
    """The scorer imports each metric's function from its ``module:function`` name, so no
    import statement leads there: a change to a metric's code (psnr's, say) still changes the
    hash of every model, and a stored number is never reused after it."""
    import dataclasses

    from srbench import codehash, schema

    assert "srbench.metrics" in codehash.code_modules("architectures.drn")
    (plugin / "metric.py").write_text("def score(sr, hr, crop):\n    return 1.0\n")
    extra = dataclasses.replace(
        schema.METRICS[0], name="i22_score", function="i22_plugin.metric:score"
    )
    monkeypatch.setattr(schema, "METRICS", (*schema.METRICS, extra))
    first = model_code_sha256("i22_model")
    _rewrite(plugin / "metric.py", "def score(sr, hr, crop):\n    return 2.0\n")
    assert model_code_sha256("i22_model") != first


def test_code_hash_leaves_out_imports_for_annotations_only(tmp_path, monkeypatch):
    """A module named under ``if TYPE_CHECKING:`` is never imported at run time: its code does
    not make the numbers, so a change to it leaves the hash alone."""
    arch = (
        "from typing import TYPE_CHECKING\n\nfrom i24_typed.helper import gain\n\n"
        "if TYPE_CHECKING:\n    from i24_typed.typing_only import X\n"
    )
    # a package of its own name: import caches outlive a test
    with _plugin_model(tmp_path, "i24_typed", "i24_typed_model", arch, monkeypatch) as package:
        (package / "typing_only.py").write_text("X = 1\n")
        first = model_code_sha256("i24_typed_model")
        _rewrite(package / "typing_only.py", "X = 2\n")
        assert model_code_sha256("i24_typed_model") == first
        _rewrite(package / "helper.py", "def gain():\n    return 1.01\n")
        assert model_code_sha256("i24_typed_model") != first  # a run-time import still counts


def test_code_hash_carries_spandrels_version_for_a_detected_checkpoint(monkeypatch):
    """A checkpoint's architecture found by spandrel is spandrel's code: its version counts."""
    from srbench import codehash, registry

    monkeypatch.setattr(registry, "model_origin", lambda name: codehash.DETECTED_ORIGIN)
    monkeypatch.setattr(codehash.metadata, "version", lambda name: "0.4.0")
    one = model_code_sha256("swinir_1a2b3c4d")
    monkeypatch.setattr(codehash.metadata, "version", lambda name: "0.4.1")
    assert model_code_sha256("swinir_1a2b3c4d") != one


def test_code_hash_carries_a_plugins_version(plugin, monkeypatch):
    from srbench import codehash

    monkeypatch.setattr(
        codehash.metadata, "packages_distributions", lambda: {"i22_plugin": ["i22-dist"]}
    )
    monkeypatch.setattr(codehash.metadata, "version", lambda name: "1.0")
    one = model_code_sha256("i22_model")
    monkeypatch.setattr(codehash.metadata, "version", lambda name: "1.1")
    assert model_code_sha256("i22_model") != one


def test_results_of_other_code_are_recomputed_not_reused(tmp_path, monkeypatch):
    config = _config(tmp_path)
    first = run(config, [_source()])
    assert {r["code_sha256"] for r in first} == {model_code_sha256("bicubic")}
    assert run(config, [_source()]) == []  # same code: reused
    monkeypatch.setattr("srbench.runner.model_code_sha256", lambda name: "f" * 16)
    again = run(config, [_source()])
    assert [r["image"] for r in again] == ["s0", "s1", "s2"]  # changed code: recomputed


def test_old_records_without_a_code_hash_load_are_shown_but_never_reused(tmp_path):
    config = _config(tmp_path)
    first = run(config, [_source()])
    path = tmp_path / RECORDS_FILE
    old = [json.loads(line) for line in path.read_text().splitlines()]
    for record in old:  # as srbench wrote them before code_sha256 existed
        del record["code_sha256"], record["tiling"]
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    store = ResultStore(tmp_path)
    shown = store.shown_records()
    assert [r["psnr_db"] for r in shown] == [r["psnr_db"] for r in first]
    assert {(field_value(r, "tiling"), field_value(r, "code_sha256")) for r in shown} == {
        ("none", "unknown")
    }
    assert len(run(config, [_source()])) == 3  # code unknown: computed afresh


def test_a_mean_never_mixes_code_versions(tmp_path):
    """A re-run after a code change that stopped part-way: the entry shows the new code's
    images only (a partial mean, k/N, refused as the benchmark's number), never the old code's
    other images beside them. Going back to the old code shows its complete results again."""
    from srbench.schema import shown_records

    config = _config(tmp_path)
    run(config, [_source()])
    path = tmp_path / RECORDS_FILE
    now = [json.loads(line) for line in path.read_text().splitlines()]  # the code as it is
    old = [dict(r, code_sha256="0" * 16, time_utc="2000-01-01T00:00:00+00:00") for r in now]
    path.write_text("".join(json.dumps(r) + "\n" for r in [*old, now[0]]))
    assert ResultStore(tmp_path).shown_records() == [now[0]]  # 1 of 3 images, of today's code
    # a trial of other code scored one image later; the code is as it was again
    trial = dict(now[1], code_sha256="f" * 16, time_utc="2999-01-01T00:00:00+00:00")
    path.write_text("".join(json.dumps(r) + "\n" for r in [*now, trial]))
    assert ResultStore(tmp_path).shown_records() == now
    assert shown_records([*now, trial]) == [trial]  # without today's code known: the newest


def test_a_run_that_found_everything_stored_keeps_its_own_summary(tmp_path):
    """Two runs that computed nothing new (everything resumed from the store) write two run
    summaries: the second never overwrites the first."""
    from srbench.runner import write_summary

    config = _config(tmp_path)
    keys = [record_key(r) for r in run(config, [_source()])]
    paths = {write_summary(config, [_source()], keys, [])[1] for _ in range(2)}
    assert len(paths) == 2 and all(json.loads(p.read_text())["new_records"] == 0 for p in paths)


def test_a_result_of_another_device_is_not_reused_nor_mixed(tmp_path):
    """A GPU result is not a CPU result: the device type is part of the key, so a CPU run
    computes afresh what a CUDA run stored, and a mean shows one device's images only (the
    device with the most images of the shown code, the newest on a tie)."""
    config = _config(tmp_path)
    run(config, [_source()])
    path = tmp_path / RECORDS_FILE
    cpu = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["device_type"] for r in cpu} == {"cpu"}
    cuda = [dict(r, device_type="cuda", time_utc="2999-01-01T00:00:00+00:00") for r in cpu]
    path.write_text("".join(json.dumps(r) + "\n" for r in cuda[:2]))
    assert len(run(config, [_source()])) == 3  # nothing the GPU made stands in for the CPU
    path.write_text("".join(json.dumps(r) + "\n" for r in [*cpu, cuda[0]]))
    assert ResultStore(tmp_path).shown_records() == cpu  # a partial GPU run hides nothing
    path.write_text("".join(json.dumps(r) + "\n" for r in [*cpu, *cuda]))
    assert ResultStore(tmp_path).shown_records() == cuda  # as many images: the newest device
    legacy = [{k: v for k, v in r.items() if k != "device_type"} for r in cpu]
    assert {record_key(r) for r in legacy} == {record_key(r) for r in cpu}  # read as the CPU


def test_check_run_reruns_what_other_code_made(tmp_path, data_root):
    """A store whose Set5 numbers another version of the code made (here: 1 dB lower) fails a
    plain check; `check --run` re-runs them with the code as it is and passes."""
    from srbench.cli.gate import check_command
    from srbench.sources import benchmark_source

    results = tmp_path / "r"
    run(_config(results, datasets=["set5"]), [benchmark_source("set5", data_root)])
    baseline = baseline_update_command(tmp_path / "b.json", results)
    path = results / RECORDS_FILE
    stale = [json.loads(line) for line in path.read_text().splitlines()]
    for record in stale:
        record.update(code_sha256="0" * 16, psnr_db=record["psnr_db"] - 1.0)
    path.write_text("".join(json.dumps(r) + "\n" for r in stale))
    quiet = {"console": _quiet(), "err_console": _quiet(), "data_root": data_root}
    assert check_command(baseline, results, **quiet) == 1  # compares what is stored
    assert check_command(baseline, results, run=True, **quiet) == 0
    assert len(path.read_text().splitlines()) == 10  # the 5 images computed again


def _quiet():
    import io

    from rich.console import Console

    return Console(file=io.StringIO())


def test_the_committed_store_still_meets_its_baseline():
    """Old records (no code hash) keep loading: every committed baseline entry finds its result,
    with the same PSNR, SSIM and image count. (IDN's MACs, counted afresh, changed with its
    upsampler rewrite: a cost, not a stored number, and no part of this check.)"""
    from srbench.gate import compare, current_entries

    result = compare(
        read_baseline(REPO / "results/baseline.json"), current_entries(REPO / "results")
    )
    assert not [e.key for e in result.entries if e.status == "missing"]
    statuses = {(m.metric, m.status) for e in result.entries for m in e.metrics}
    assert {s for m, s in statuses if m in ("psnr_db", "ssim", "images")} == {"ok"}


# ------------------------------------------------------------------------------------------------
# 3. Tiling is part of the key; an overlap below the receptive field is refused
# ------------------------------------------------------------------------------------------------


def test_a_tiled_result_is_never_reused_or_shown_as_the_untiled_one(tmp_path):
    tiled = run(_config(tmp_path, tile=4), [_source()])
    assert {r["tiling"] for r in tiled} == {"4/2"}  # bicubic's measured radius: 2 LR px
    untiled = run(_config(tmp_path), [_source()])
    assert len(untiled) == 3 and {r["tiling"] for r in untiled} == {"none"}
    run(_config(tmp_path, tile=4, tile_overlap=3, force=True), [_source()])  # written last
    shown = ResultStore(tmp_path).shown_records()
    assert [r["run_id"] for r in shown] == [r["run_id"] for r in untiled]


def test_old_tiled_records_read_as_unknown_tiling():
    assert field_value({"tiled": True}, "tiling") == "unknown"
    assert field_value({"tiled": False}, "tiling") == "none"


@pytest.mark.parametrize(("model", "tile", "overlap", "radius"), [("bicubic", 1, 0, 2),
                                                                   ("srcnn", 16, 2, 6)])  # fmt: skip
def test_an_overlap_below_the_receptive_field_is_refused(tmp_path, model, tile, overlap, radius):
    config = _config(tmp_path, models=[model], tile=tile, tile_overlap=overlap)
    with pytest.raises(SRBenchError) as err:
        run(config, [_source(1)])
    assert str(err.value) == (
        f"{model} x2: --tile-overlap {overlap} is below its receptive field ({radius} LR px): "
        f"tiles would change the numbers; use --tile-overlap {radius} or more, or leave it out "
        "(the model's own is used)"
    )
    assert not (tmp_path / RECORDS_FILE).exists()


# ------------------------------------------------------------------------------------------------
# 4. A benchmark mean is over one verified copy of its image set, exactly its image count
# ------------------------------------------------------------------------------------------------


def _set5(psnr: float, verified: bool, images: int = 5, sha: str = "a") -> list[dict]:
    return [
        {"model": "bicubic", "weights_sha256": "none", "scale": 2, "dataset": "set5",
         "image": f"img{i}", "protocol": "standard", "protocol_hash": "h", "psnr_db": psnr + i,
         "ssim": 0.9, "hr_sha256": f"{sha}{i}", "standard_benchmark": verified}
        for i in range(images)
    ]  # fmt: skip


def test_baseline_update_averages_only_the_verified_copy(tmp_path):
    store = ResultStore(tmp_path / "r")
    store.append(_set5(30.0, True))
    store.append(_set5(20.0, False, sha="b"))  # another copy of the same images, written later
    path = baseline_update_command(tmp_path / "b.json", tmp_path / "r", console=None)
    (entry,) = json.loads(path.read_text())["entries"]
    assert (entry["images"], entry["verified"], entry["psnr_db"]) == (5, 5, 32.0)


@pytest.mark.parametrize(
    ("records", "why"),
    [(_set5(30.0, True, images=3), "3/5 images"),
     (_set5(30.0, False), "5 of 5 images not the verified benchmark copy")],
)  # fmt: skip
def test_baseline_update_refuses_a_partial_or_unverified_mean(tmp_path, records, why):
    ResultStore(tmp_path / "r").append(records)
    with pytest.raises(SRBenchError) as err:
        baseline_update_command(tmp_path / "b.json", tmp_path / "r")
    assert f"not benchmark means: bicubic x2 set5 ({why})" in str(err.value)
    assert not (tmp_path / "b.json").exists()


# ------------------------------------------------------------------------------------------------
# 5. Values that cannot exist are refused on write and on read, naming the line
# ------------------------------------------------------------------------------------------------


def test_psnr_bound_is_what_8_bit_images_allow():
    assert 205 < PSNR_MAX_DB < 206


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [("ssim", 1.7, "ssim is 1.7, outside [-1, 1]"),
     ("psnr_db", 1e300, "psnr_db is 1e+300, outside [0, 205.782]"),
     ("psnr_db", math.inf, "psnr_db is inf, outside"),
     ("psnr_db", -5.0, "psnr_db is -5.0, outside"),
     ("psnr_db", math.nan, "psnr_db is nan, not a number")],
)  # fmt: skip
def test_impossible_values_are_refused_on_write(tmp_path, field, value, why):
    record = {**_set5(30.0, True, images=1)[0], field: value}
    with pytest.raises(SRBenchError) as err:
        ResultStore(tmp_path).append([_set5(30.0, True, images=1)[0], record])
    assert "refusing to store bicubic x2 on set5/img0: " + why in str(err.value)
    assert not (tmp_path / RECORDS_FILE).exists()  # nothing of the batch written


def test_impossible_values_are_skipped_on_read_naming_the_line(tmp_path):
    good = json.dumps(_set5(30.0, True, images=1)[0])
    lines = [good, good.replace('"ssim": 0.9', '"ssim": 1.7'),
             good.replace('"psnr_db": 30.0', '"psnr_db": Infinity'),
             good.replace('"psnr_db": 30.0', '"psnr_db": 1e400'),
             good.replace('"psnr_db": 30.0', '"psnr_db": 1e300')]  # fmt: skip
    (tmp_path / RECORDS_FILE).write_text("\n".join(lines) + "\n")
    store = ResultStore(tmp_path)
    with pytest.warns(UserWarning):
        records = store.iter_records()
    assert [r["psnr_db"] for r in records] == [30.0]
    assert [n for n, _ in store.invalid] == [2, 3, 4, 5]
    assert store.invalid[0][1] == "ssim is 1.7, outside [-1, 1]"


def _baseline(tmp_path: Path, **changes) -> Path:
    data = json.loads((REPO / "results/baseline.json").read_text())
    data["tolerances"].update(changes.get("tolerances", {}))
    data["entries"][0].update(changes.get("entry", {}))
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(data).replace('"NAN"', "NaN").replace('"INF"', "Infinity"))
    return path


@pytest.mark.parametrize(
    ("changes", "why"),
    [({"tolerances": {"psnr_db": "NAN"}}, "tolerance psnr_db is nan, not a finite number >= 0"),
     ({"tolerances": {"ssim": "INF"}}, "tolerance ssim is inf, not a finite number >= 0"),
     ({"tolerances": {"psnr_db": "0.01"}}, "tolerance psnr_db is '0.01', not a number"),
     ({"tolerances": {"psnr_db": [0.01]}}, "tolerance psnr_db is [0.01], not a number"),
     ({"tolerances": {"latency_rel": -0.1}}, "tolerance latency_rel is -0.1, not a finite"),
     ({"entry": {"psnr_db": -5.0}}, "psnr_db is -5.0, outside [0, 205.782]"),
     ({"entry": {"ssim": 1.2}}, "ssim is 1.2, outside [-1, 1]"),
     ({"entry": {"images": 0}}, "images is 0, not a positive count")],
)  # fmt: skip
def test_a_baseline_that_would_disable_the_gate_is_refused(tmp_path, changes, why):
    path = _baseline(tmp_path, **changes)
    with pytest.raises(SRBenchError) as err:
        read_baseline(path)
    message = str(err.value)
    assert message.startswith(str(path)) and why in message and "\n" not in message


# ------------------------------------------------------------------------------------------------
# Two weight files of one model are told apart by a name the user gives (--tag)
# ------------------------------------------------------------------------------------------------


def test_two_weight_files_of_one_model_are_told_apart_by_tag(tmp_path):
    import torch

    files = {}
    for tag, seed in (("mine", 1), ("theirs", 2)):
        torch.manual_seed(seed)
        files[tag] = tmp_path / f"srcnn_{tag}.safetensors"
        save_weights(create_model("srcnn", scale=2), files[tag], model_name="srcnn", scale=2)
    rows = []
    for tag, path in files.items():
        config = _config(tmp_path / "r", models=["srcnn"], weights_named=[path], weights_tag=tag)
        config.weights = index_weights([path])
        rows += run(config, [_source(2)])
    assert sorted({r["model"] for r in rows}) == ["srcnn.mine", "srcnn.theirs"]
    by = {r["model"]: r["weights_sha256"] for r in rows}
    assert by["srcnn.mine"] != by["srcnn.theirs"]
    bad = _config(tmp_path / "r2", models=["srcnn"], weights_named=[files["mine"]])
    bad.weights, bad.weights_tag = index_weights([files["mine"]]), "official"
    with pytest.raises(SRBenchError, match="--tag 'official': a tag is letters"):
        run(bad, [_source(1)])


def test_code_hash_parses_each_file_once_across_processes(tmp_path, monkeypatch):
    from srbench import codehash

    monkeypatch.setenv("SRBENCH_CACHE", str(tmp_path))
    codehash._parsed.cache_clear()
    cold = model_code_sha256("bicubic")
    entries = sorted((tmp_path / "codehash").glob("*.json"))
    assert len(entries) >= 5  # evaluation, protocols, imresize, ... each under its bytes' sha256
    parses: list[int] = []
    real = codehash._parse
    monkeypatch.setattr(codehash, "_parse", lambda source: parses.append(1) or real(source))
    codehash._parsed.cache_clear()  # as a new process: only the disk cache is left
    assert model_code_sha256("bicubic") == cold and parses == []
    entries[0].write_text('{"key": "')  # torn (written without fsync): parsed again, rewritten
    entries[1].write_text(entries[2].read_text())  # another file's entry: its key does not match
    codehash._parsed.cache_clear()
    assert model_code_sha256("bicubic") == cold and len(parses) == 2
    codehash._parsed.cache_clear()
    assert model_code_sha256("bicubic") == cold and len(parses) == 2
    codehash._parsed.cache_clear()
