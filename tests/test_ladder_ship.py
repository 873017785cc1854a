"""`srbench ladder ship`: the top finished seed-0 rung becomes the plain name, pinned, fp16; the
zoo file it replaces keeps its results apart under ``zoo1k_cosine``, in the store too."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import srbench.pretrained as pretrained
import srbench.weights as weights_mod
from srbench.errors import SRBenchError
from srbench.registry import ModelRef, create_model, get_card, resolve
from srbench.training.ladder import ladder_from_dict, record
from srbench.training.ladder_ship import git_blob_id, ship, top_rungs
from srbench.weights import file_sha256, resolve_default_weights, save_weights

REPO = Path(__file__).resolve().parent.parent
ZOO_X2 = "030a32aba53667e4c7187cfa79f6c0df82229252f4f61141f80e6e1b83ce6deb"  # srcnn_x2, zoo 1k


def tiny_spec() -> dict:
    """SRCNN x2 at rungs 1k and 2k, seeds 0 and 1 (names only: the run folders are made by
    hand, no training)."""
    recipe = {
        "loss": "l1",
        "precision": "fp32",
        "checkpoint_interval": 100,  # the branch points (800, 1600) are periodic checkpoints
        "data": {"patch_size": 8, "batch_size": 2, "cache_lr": False},
        "optimizer": {"name": "adam", "lr": 1e-3},
        "schedule": {"name": "wsd", "decay_fraction": 0.2, "min_lr": 1e-6},
        "validation": {"interval": 0, "datasets": [], "at_end": False},
    }
    steps = [{"step": "a", "models": ["srcnn"], "scale": 2, "seeds": [0, 1]}]
    return {"recipe": recipe, "rungs": [1000, 2000], "steps": steps, "weights": "raw"}


def tiny_ladder():
    return ladder_from_dict(tiny_spec(), "tiny.yaml")


def finish(run, out: Path, seed: int) -> dict[str, torch.Tensor]:
    """A finished rung's folder as `srbench ladder train` leaves it; returns its raw weights."""
    folder = out / run.name
    folder.mkdir(parents=True)
    for name, offset in (("weights_raw.safetensors", 0), ("weights.safetensors", 100)):
        torch.manual_seed(seed + offset)
        save_weights(create_model("srcnn", 2), folder / name, model_name="srcnn", scale=2)
    info = {"iterations": run.rung, "train_seconds": 60.0 * run.rung / 1000, "precision": "bf16",
            "cpu_model": "Test CPU", "cpu_id": "T family 1", "torch_threads": 1}  # fmt: skip
    (folder / "run.json").write_text(json.dumps(info))
    return load_file(str(folder / "weights_raw.safetensors"))


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A package with srcnn's zoo rows and files, a ladder folder, both manifests read from the
    package; the srbench caches cleared around the test."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    rows = json.loads(pretrained.SHIPPED_MANIFEST.read_text())["srcnn"]
    for row in rows.values():
        shutil.copy(pretrained.SHIPPED_MANIFEST.parent / row["file"], pkg / row["file"])
    (pkg / "shipped.json").write_text(json.dumps({"srcnn": rows}, indent=1, sort_keys=True) + "\n")
    monkeypatch.setattr(pretrained, "SHIPPED_MANIFEST", pkg / "shipped.json")
    monkeypatch.setattr(pretrained, "LADDER_MANIFEST", pkg / "ladder.json")
    monkeypatch.setattr(weights_mod, "shipped_dir", lambda: pkg)
    monkeypatch.setenv("SRBENCH_WEIGHTS", str(tmp_path / "weights"))
    pretrained.clear_caches()
    ladder = tiny_ladder()
    yield ladder, tmp_path / "ladder", pkg, tmp_path
    pretrained.clear_caches()


def _record(ladder, out, results):
    return record(ladder.runs, weights="raw", output_dir=out, results_dir=results,
                  manifest=results / "pkg" / "ladder.json")  # fmt: skip


def _run(ladder, rung, seed):
    return next(r for r in ladder.runs if r.rung == rung and r.seed == seed)


def test_ship_picks_the_top_finished_seed0_rung_and_the_plain_name_runs_it(env):
    ladder, out, pkg, tmp = env
    finish(_run(ladder, 1000, 0), out, 0)
    top = finish(_run(ladder, 2000, 0), out, 1)
    finish(_run(ladder, 2000, 1), out, 2)  # seed 1 reaches 2k too: never shipped
    finish(_run(ladder, 1000, 1), out, 3)
    _record(ladder, out, tmp)
    assert {k: r.name for k, r in top_rungs(ladder, out).items() if r} == {
        ("srcnn", 2): _run(ladder, 2000, 0).name
    }
    zoo_x2 = (pkg / "srcnn_x2.safetensors").read_bytes()
    zoo_x3 = json.loads((pkg / "shipped.json").read_text())["srcnn"]["3"]

    (row,) = ship(ladder, output_dir=out, package_dir=pkg)
    manifest = json.loads((pkg / "shipped.json").read_text())
    sha = file_sha256(pkg / "srcnn_x2.safetensors")
    assert (row["tag"], row["run"], row["sha256"], row["retired"]) == (
        "zoo2k",
        _run(ladder, 2000, 0).name,
        sha,
        "zoo1k_cosine",
    )
    assert manifest["srcnn"]["2"] == {
        "file": "srcnn_x2.safetensors", "sha256": sha, "run": _run(ladder, 2000, 0).name,
        "recipe": "ladder", "tag": "zoo2k", "iterations": 2000, "seed": 0,
        "train_seconds": 120.0, "machine": "Test CPU (T family 1), 1 threads",
        "precision": "bf16",
    }  # fmt: skip
    assert tuple(sorted(manifest["srcnn"]["2"])) == tuple(sorted(pretrained.SHIPPED_FIELDS))
    assert manifest["srcnn"]["3"] == zoo_x3  # a scale the ladder did not train keeps its row
    shipped = load_file(pkg / "srcnn_x2.safetensors")
    assert all(t.dtype == torch.float16 for t in shipped.values())
    assert all(torch.equal(shipped[k], top[k].half()) for k in top)

    tags = json.loads((pkg / "ladder.json").read_text())["srcnn"]
    assert tags["zoo2k"]["2"]["shipped"] is True
    assert not any("shipped" in tags[t]["2"] for t in ("zoo1k", "zoo1k_s1", "zoo2k_s1"))
    retired = tags["zoo1k_cosine"]["2"]
    assert (retired["file"], retired["sha256"], retired["recipe"], retired["iterations"]) == (
        "srcnn_x2.zoo1k_cosine.safetensors",
        ZOO_X2,
        "zoo",
        1000,
    )
    blob = subprocess.run(["git", "hash-object", "--stdin"], input=zoo_x2, capture_output=True,
                          check=True).stdout.decode().strip()  # fmt: skip
    assert (
        retired["git_blob"] == blob == git_blob_id(REPO / "srbench/pretrained/srcnn_x2.safetensors")
    )

    # The plain name now runs the ladder's file, and its card says which budget it is.
    weights = pretrained.zoo_weights("srcnn")
    assert weights[2].sha256 == sha and weights[3].sha256 == zoo_x3["sha256"]
    assert "2000 iterations of srbench/recipes/ladder.yaml (budget zoo2k, seed 0)" in (
        weights[2].source
    )
    assert "1000 iterations of srbench/recipes/zoo.yaml (budget zoo1k_cosine, seed 0)" in (
        weights[3].source
    )
    card = dataclasses.replace(get_card("srcnn"), weights=weights)  # as the card reads it
    path = resolve_default_weights(ModelRef(card), 2)
    assert path == pkg / "srcnn_x2.safetensors"
    net = create_model("srcnn", 2, pretrained=path)
    assert all(torch.equal(v, top[k].half().float()) for k, v in net.state_dict().items())


def test_the_replaced_zoo_file_stays_addressable_and_told_apart(env):
    from srbench.runner import stored_name

    ladder, out, pkg, tmp = env
    finish(_run(ladder, 1000, 0), out, 0)
    _record(ladder, out, tmp)
    zoo_x2 = (pkg / "srcnn_x2.safetensors").read_bytes()
    (row,) = ship(ladder, output_dir=out, package_dir=pkg, rung=1000)
    old = resolve("srcnn.zoo1k-cosine")
    assert old.key == "srcnn.zoo1k_cosine" and old.budget is None and old.budgeted
    assert old.weights[2].sha256 == ZOO_X2 and "git cat-file blob" in old.weights[2].source
    with pytest.raises(
        SRBenchError, match=re.escape("srcnn_x2.zoo1k_cosine.safetensors for srcnn.zoo")
    ):
        resolve_default_weights(old, 2)  # not taken from git yet: the message says how
    (tmp / "weights").mkdir()
    (tmp / "weights" / "srcnn_x2.zoo1k_cosine.safetensors").write_bytes(zoo_x2)
    assert resolve_default_weights(old, 2) == tmp / "weights" / "srcnn_x2.zoo1k_cosine.safetensors"
    assert stored_name(old, 2, ZOO_X2) == "srcnn.zoo1k_cosine"
    plain = ModelRef(get_card("srcnn"))
    assert stored_name(plain, 2, ZOO_X2) == "srcnn.zoo1k_cosine"  # the file decides the name
    assert stored_name(plain, 2, row["sha256"]) == "srcnn"
    with pytest.raises(SRBenchError, match="not the recorded zoo1k_cosine checkpoint"):
        stored_name(old, 2, row["sha256"])
    assert resolve("srcnn.zoo1k").budget == (1000, 0)
    # A run of the old file under the plain name stores its results under the zoo's tag.
    from srbench.runner import RunConfig, run
    from srbench.sources import demo_source

    given = tmp / "weights" / "srcnn_x2.zoo1k_cosine.safetensors"
    config = RunConfig(["srcnn"], ["demo"], [2], results_dir=tmp / "r",
                       weights={("srcnn", 2): given}, weights_named=[given])  # fmt: skip
    records = run(config, [demo_source()])
    assert [(r["model"], r["weights_sha256"]) for r in records] == [
        ("srcnn.zoo1k_cosine", ZOO_X2)
    ] * 5


def test_a_rung_that_is_not_the_top_finished_one_is_refused(env):
    ladder, out, pkg, tmp = env
    finish(_run(ladder, 1000, 0), out, 0)
    _record(ladder, out, tmp)
    before = (pkg / "shipped.json").read_bytes()
    with pytest.raises(SRBenchError) as info:
        ship(ladder, output_dir=out, package_dir=pkg, rung=2000)
    assert str(info.value) == (
        "srcnn.zoo2k x2: not the top finished seed-0 rung (srcnn.zoo1k is); only the top "
        "finished rung ships (choose the scales with --scales, or drop --rung to ship each "
        "model's top rung)"
    )
    finish(_run(ladder, 2000, 0), out, 1)  # finished but not recorded yet
    with pytest.raises(SRBenchError, match=r"^srcnn.zoo2k x2: .* is not recorded; record it"):
        ship(ladder, output_dir=out, package_dir=pkg)
    _record(ladder, out, tmp)
    with pytest.raises(
        SRBenchError, match=re.escape("srcnn.zoo1k x2: not the top finished seed-0 rung")
    ):
        ship(ladder, output_dir=out, package_dir=pkg, rung=1000)
    assert (pkg / "shipped.json").read_bytes() == before
    assert json.loads((pkg / "ladder.json").read_text())["srcnn"].keys() == {"zoo1k", "zoo2k"}


def test_scales_choose_which_scales_ship_at_a_rung(env, monkeypatch):
    """A model the ladder trains at x2 to 2k and at x4 (step d) ships its x2 top rung with
    --scales 2 while x4 has nothing finished; without --scales the rung is refused at x4."""
    _, out, pkg, tmp = env
    spec = tiny_spec()
    spec["steps"].append({"step": "d", "models": ["srcnn"], "scale": 4, "seeds": [0]})
    ladder = ladder_from_dict(spec, "tiny.yaml")
    finish(_run(ladder, 2000, 0), out, 1)
    _record(ladder, out, tmp)
    zoo_x4 = json.loads((pkg / "shipped.json").read_text())["srcnn"]["4"]
    with pytest.raises(SRBenchError) as info:
        ship(ladder, output_dir=out, package_dir=pkg, rung=2000)
    assert str(info.value).startswith(
        "srcnn.zoo2k x4: not the top finished seed-0 rung (none is finished); only the top "
        "finished rung ships (choose the scales with --scales"
    )
    with pytest.raises(SRBenchError) as info:
        ship(ladder, output_dir=out, package_dir=pkg, scales=[3], rung=2000)
    assert str(info.value) == "x3: tiny.yaml trains srcnn at x2, x4 only"
    (row,) = ship(ladder, output_dir=out, package_dir=pkg, scales=[2], rung=2000)
    manifest = json.loads((pkg / "shipped.json").read_text())["srcnn"]
    assert (row["scale"], row["tag"], manifest["2"]["tag"]) == (2, "zoo2k", "zoo2k")
    assert manifest["4"] == zoo_x4  # the scale not chosen keeps its zoo row


def test_shipping_again_is_byte_identical(env):
    ladder, out, pkg, tmp = env
    finish(_run(ladder, 1000, 0), out, 0)
    finish(_run(ladder, 2000, 0), out, 1)
    _record(ladder, out, tmp)
    ship(ladder, output_dir=out, package_dir=pkg)
    first = {p.name: p.read_bytes() for p in pkg.iterdir()}
    _record(ladder, out, tmp)  # recording again keeps the shipped mark
    (again,) = ship(ladder, output_dir=out, package_dir=pkg, rung=2000)
    assert {p.name: p.read_bytes() for p in pkg.iterdir()} == first
    assert again["retired"] is None
    assert sorted(first) == [
        "ladder.json", "shipped.json", "srcnn_x2.safetensors", "srcnn_x3.safetensors",
        "srcnn_x4.safetensors",
    ]  # fmt: skip


def test_the_size_limit_is_refused_before_anything_is_written(env):
    ladder, out, pkg, tmp = env
    finish(_run(ladder, 1000, 0), out, 0)
    _record(ladder, out, tmp)
    before = {p.name: p.read_bytes() for p in pkg.iterdir()}
    total = sum(len(b) for n, b in before.items() if n.endswith(".safetensors"))
    with pytest.raises(SRBenchError) as info:
        ship(ladder, output_dir=out, package_dir=pkg, limit_bytes=total - 1)
    assert str(info.value) == (
        f"{pkg}: the shipped weights would total {total / 2**20:.2f} MiB, over the "
        f"{(total - 1) / 2**20:.2f} MiB limit; ship fewer models (--models) -- nothing was "
        "written"
    )
    assert {p.name: p.read_bytes() for p in pkg.iterdir()} == before  # no staging left either
    assert pretrained.SHIPPED_LIMIT_BYTES == 30 * 2**20


def _store_record(model: str, sha: str, image: str, scale: int = 2) -> dict:
    return {"model": model, "weights_sha256": sha, "scale": scale, "dataset": "set5",
            "image": image, "protocol": "standard", "protocol_hash": "h", "psnr_db": 30.0,
            "ssim": 0.9, "run_id": "r1", "git_commit": "a" * 40, "code_dirty": False}  # fmt: skip


def test_the_store_migration_renames_exactly_the_replaced_files_records(env):
    spec = importlib.util.spec_from_file_location("migrate_store", REPO / "tools/migrate_store.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    ladder, out, pkg, tmp = env
    finish(_run(ladder, 1000, 0), out, 0)
    rows = _record(ladder, out, tmp)
    x3 = json.loads((pkg / "shipped.json").read_text())["srcnn"]["3"]["sha256"]
    images = ("baby", "bird", "butterfly", "head", "woman")
    lines = [_store_record("srcnn", ZOO_X2, i) for i in images]  # the zoo file at x2: renamed
    lines += [_store_record("srcnn", x3, i, scale=3) for i in images[:3]]  # x3 still ships
    lines += [_store_record("srcnn", ZOO_X2, i, scale=3) for i in images[:2]]  # not x3's file
    lines += [_store_record("srcnn.zoo1k", rows[0]["sha256"], i) for i in images[:4]]
    lines += [_store_record("srcnn", "f" * 64, "baby")]  # the user's own file
    path = tmp / "store" / "records.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in lines))
    assert not tool.migrate_store(path)  # before shipping: nothing to rename

    ship(ladder, output_dir=out, package_dir=pkg)
    changes = tool.migrate_store(path)
    assert dict(changes) == {"renamed srcnn -> srcnn.zoo1k_cosine": 5}
    names = [(r["model"], r["scale"], r["weights_sha256"][:4]) for r in map(json.loads, path.read_text().splitlines())]  # fmt: skip
    assert names == [("srcnn.zoo1k_cosine", 2, ZOO_X2[:4])] * 5 + [("srcnn", 3, x3[:4])] * 3 + [
        ("srcnn", 3, ZOO_X2[:4])
    ] * 2 + [("srcnn.zoo1k", 2, rows[0]["sha256"][:4])] * 4 + [("srcnn", 2, "ffff")]
    data = path.read_bytes()
    assert not tool.migrate_store(path) and path.read_bytes() == data  # idempotent


def test_the_cli_ships_and_says_what_to_run_next(env, capsys):
    import yaml

    from srbench.cli.zoo import ladder_ship

    ladder, out, _, tmp = env
    finish(_run(ladder, 1000, 0), out, 0)
    _record(ladder, out, tmp)
    spec = tmp / "tiny.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec()))
    (row,) = ladder_ship(spec=str(spec), output_dir=out, models="srcnn", rung=1000)
    assert (row["model"], row["scale"], row["tag"], row["retired"]) == (
        "srcnn", 2, "zoo1k", "zoo1k_cosine"
    )  # fmt: skip
    said = " ".join(capsys.readouterr().err.split())
    assert "the zoo file's results are now srcnn.zoo1k_cosine" in said
    assert "python tools/migrate_store.py results/records.jsonl" in said
    with pytest.raises(SRBenchError, match="idn: not in"):
        ladder_ship(spec=str(spec), output_dir=out, models="idn")


def test_a_ship_cut_short_is_refused_until_the_package_is_restored(env):
    """Cut short after the new file replaced the zoo file but before the manifests: shipping
    again must not pin the new bytes' git blob as the zoo file's."""
    ladder, out, pkg, tmp = env
    finish(_run(ladder, 1000, 0), out, 0)
    _record(ladder, out, tmp)
    zoo_x2 = (pkg / "srcnn_x2.safetensors").read_bytes()
    (pkg / "srcnn_x2.safetensors").write_bytes(zoo_x2[:-2] + b"\0\0")
    with pytest.raises(SRBenchError) as info:
        ship(ladder, output_dir=out, package_dir=pkg)
    assert str(info.value) == (
        f"{pkg / 'srcnn_x2.safetensors'}: missing or not the file shipped.json pins; restore it "
        "with `git checkout -- srbench/pretrained/`"
    )
    (pkg / "srcnn_x2.safetensors").write_bytes(zoo_x2)  # what git checkout does
    (row,) = ship(ladder, output_dir=out, package_dir=pkg)
    assert row["retired"] == "zoo1k_cosine"
