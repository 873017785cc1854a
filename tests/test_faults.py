"""The fault sweep's cases: no silent wrong number, no traceback, nothing half-written.

Each test reproduces one case of the sweep (numbered as in its issue) and asserts the correct
number or the one-line error a user now sees.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from srbench.cli import app
from srbench.data import HRImage, pixels_sha256, resolve_data_root
from srbench.errors import DataError, SRBenchError
from srbench.gate import read_baseline
from srbench.protocols import LRCache
from srbench.registry import ModelCard, create_model, register_model, unregister_model
from srbench.results import ResultStore
from srbench.runner import RunConfig, run
from srbench.sources import benchmark_source, demo_source

cli = CliRunner()


def _invoke(*args: str, env: dict | None = None):
    return cli.invoke(app, list(args), env=env, catch_exceptions=False)


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return " ".join(lines[errors[0] :])


def _demo(tmp_path: Path, *extra: str):
    return _invoke(
        "run", "--models", "bicubic", "--datasets", "demo", "--scales", "2",
        "--results-dir", str(tmp_path / "results"), *extra,
    )  # fmt: skip


# -- 1. results of unverified images are never reused -------------------------------------------


@pytest.mark.data
def test_unverified_results_are_not_reused_by_a_verified_run(data_root, tmp_path):
    wrong = tmp_path / "wrong"
    shutil.copytree(data_root / "Set5", wrong / "Set5")
    shutil.copy(wrong / "Set5" / "HR" / "bird.png", wrong / "Set5" / "HR" / "baby.png")
    results = tmp_path / "results"

    def bicubic_set5(root: Path, verify: bool) -> list[dict]:
        config = RunConfig(["bicubic"], ["set5"], [2], results_dir=results, verify=verify)
        return run(config, [benchmark_source("set5", root, verify=verify)])

    first = bicubic_set5(wrong, verify=False)
    assert len(first) == 5 and not any(r["standard_benchmark"] for r in first)
    second = bicubic_set5(data_root, verify=True)
    assert len(second) == 5  # nothing reused: every image recomputed on verified pixels
    assert all(r["standard_benchmark"] for r in second)
    mean = np.mean([r["psnr_db"] for r in second])
    assert mean == pytest.approx(33.68, abs=0.01)  # the standard Set5 x2 bicubic number
    assert len(bicubic_set5(data_root, verify=True)) == 0  # and a third run reuses them


# -- 2. non-finite model outputs -----------------------------------------------------------------


class _NaNNet(torch.nn.Module):
    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        up = torch.nn.functional.interpolate(x, scale_factor=self.scale) * self.w
        return up if not getattr(self, "broken", False) else up * float("nan")


@pytest.fixture
def temp_model():
    names = []

    def make(name: str, factory, **card):
        fields = dict(family="test", paper="test", year=2024, scales=(2,), pre_upsampled=False,
                      input_channels="rgb", licence="MIT")  # fmt: skip
        fields.update(card)
        register_model(ModelCard(name=name, **fields))(factory)
        names.append(name)

    yield make
    for name in names:
        unregister_model(name)


def test_non_finite_output_is_an_error_naming_model_and_image(temp_model, tmp_path):
    def factory(scale: int):
        net = _NaNNet(scale)
        net.broken = True
        return net

    def build(scale: int):
        net = factory(scale)
        net.broken = False  # the contract check passes; the run then meets NaNs
        return net

    temp_model("nan_net", build)
    original = _NaNNet.forward
    _NaNNet.forward = lambda self, x: original(self, x) * float("nan")
    try:
        config = RunConfig(["nan_net"], ["demo"], [2], results_dir=tmp_path,
                           allow_random_weights=True)  # fmt: skip
        with pytest.raises(SRBenchError) as exc:
            run(config, [demo_source()])
    finally:
        _NaNNet.forward = original
    assert "nan_net x2 on demo/astronaut" in str(exc.value) and "NaN or Inf pixels" in str(
        exc.value
    )
    assert ResultStore(tmp_path).iter_records() == []


# -- 4. the LR cache is verified -----------------------------------------------------------------


def test_damaged_lr_cache_entry_is_rebuilt_and_said(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    hr = HRImage("test", "img", pixels, pixels_sha256(pixels), None)
    cache = LRCache(tmp_path)
    made = cache.get(hr, 2, "m", lambda: pixels[::2, ::2].copy())
    (path,) = tmp_path.glob("m/*.lr")
    tampered = made.copy()
    tampered[0, 0, 0] ^= 0xFF  # altered pixels that still load, under the old digest line
    header = path.read_bytes().split(b"\n", 1)[0] + b"\n"
    with open(path, "wb") as fh:
        fh.write(header)
        np.save(fh, tampered)
    again = LRCache(tmp_path)
    got = again.get(hr, 2, "m", lambda: pixels[::2, ::2].copy())
    assert np.array_equal(got, made)
    assert len(again.rebuilt) == 1 and "damaged or unverified" in again.rebuilt[0]
    third = LRCache(tmp_path)
    assert np.array_equal(third.get(hr, 2, "m", lambda: 1 / 0), made)  # repaired: no remake
    assert third.rebuilt == []


def test_torn_lr_cache_entry_is_rebuilt_so_it_needs_no_fsync(tmp_path, monkeypatch):
    import os

    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    hr = HRImage("test", "img", pixels, pixels_sha256(pixels), None)
    made = LRCache(tmp_path).get(hr, 2, "m", lambda: pixels[::2, ::2].copy())
    assert synced == []  # the cache is verified on read, not made durable
    (path,) = tmp_path.glob("m/*")  # one file per entry: digest line and array
    data = path.read_bytes()
    for torn in (data[: len(data) - 100], data[:50], b""):  # a power cut mid-write
        path.write_bytes(torn)
        again = LRCache(tmp_path)
        assert np.array_equal(again.get(hr, 2, "m", lambda: pixels[::2, ::2].copy()), made)
        assert len(again.rebuilt) == 1 and "damaged or unverified" in again.rebuilt[0]
        assert path.read_bytes() == data


# -- 5. the gate cannot be made inert ------------------------------------------------------------


def _baseline(tmp_path: Path, entries: list[dict]) -> Path:
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"schema": "srbench.baseline/1", "entries": entries}))
    return path


def test_gate_refuses_an_empty_or_nan_baseline(tmp_path):
    with pytest.raises(SRBenchError, match="has no entries"):
        read_baseline(_baseline(tmp_path, []))
    entry = {
        "model": "bicubic", "weights_sha256": "none", "protocol": "standard",
        "protocol_hash": "x", "dataset": "set5", "scale": 2, "psnr_db": float("nan"),
        "ssim": 0.9,
    }  # fmt: skip
    with pytest.raises(SRBenchError, match="psnr_db is nan, not a number"):
        read_baseline(_baseline(tmp_path, [entry]))
    result = _invoke("check", "--baseline", str(_baseline(tmp_path, [])))
    assert "has no entries" in _one_line_error(result)


# -- 6. a named data root must exist -------------------------------------------------------------


def test_nonexistent_data_root_is_an_error_not_the_demo(tmp_path, monkeypatch):
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="given by --data-root does not exist"):
        resolve_data_root(missing)
    monkeypatch.setenv("SRBENCH_DATA", str(missing))
    with pytest.raises(DataError, match=r"given by \$SRBENCH_DATA does not exist"):
        resolve_data_root()
    result = _invoke("run", "--models", "bicubic", "--scales", "2",
                     "--results-dir", str(tmp_path / "r"))  # fmt: skip
    assert "does not exist" in _one_line_error(result)
    assert not (tmp_path / "r" / "records.jsonl").exists()
    monkeypatch.delenv("SRBENCH_DATA")
    monkeypatch.delenv("SRBENCH_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # default root absent: the demo set
    assert resolve_data_root() == tmp_path / "home" / ".cache" / "srbench" / "datasets"


# -- 7. OS faults: one line, nothing half-written -------------------------------------------------


def test_results_dir_that_is_a_file(tmp_path):
    (tmp_path / "results").write_text("not a folder")
    message = _one_line_error(_demo(tmp_path))
    assert str(tmp_path / "results") in message and "where a folder is expected" in message


def test_records_file_that_is_a_folder_or_a_symlink_loop(tmp_path):
    (tmp_path / "results" / "records.jsonl").mkdir(parents=True)
    message = _one_line_error(_demo(tmp_path))
    assert "records.jsonl: it is a folder, not a regular file" in message
    other = tmp_path / "loop"
    (other / "results").mkdir(parents=True)
    os.symlink(other / "results" / "records.jsonl", other / "results" / "records.jsonl")
    message = _one_line_error(_demo(other))
    assert "symbolic link loop" in message or "Too many levels" in message


def test_over_long_and_misplaced_output_paths(tmp_path):
    message = _one_line_error(_demo(tmp_path, "--save-images", str(tmp_path / ("x" * 300))))
    assert "too long" in message
    (tmp_path / "afile").write_text("")
    message = _one_line_error(_demo(tmp_path, "--save-images", str(tmp_path / "afile" / "sr")))
    assert "afile" in message and "where a folder is expected" in message


def test_unavailable_devices(tmp_path):
    if not torch.cuda.is_available():
        assert "no usable CUDA GPU" in _one_line_error(_demo(tmp_path, "--device", "cuda"))
    assert "unknown device 'tpu9'" in _one_line_error(_demo(tmp_path, "--device", "tpu9"))


def test_file_size_limit_leaves_no_partial_record(tmp_path):
    """EFBIG under `ulimit -f`: one line, and the store holds only whole records."""
    results = tmp_path / "results"
    results.mkdir()
    env = {**os.environ, "SRBENCH_CACHE": str(tmp_path / "cache")}
    command = f"{sys.executable} -m srbench run --models bicubic --datasets demo --scales 2"
    # LR cache made first (its files are larger than the limit below).
    subprocess.run([*command.split(), "--results-dir", str(tmp_path / "warm")], env=env,
                   check=True, capture_output=True)  # fmt: skip
    # Its costs and crops too, so that only records.jsonl grows below.
    shutil.copyfile(tmp_path / "warm" / "profile.jsonl", results / "profile.jsonl")
    shutil.copytree(tmp_path / "warm" / "crops", results / "crops")
    # 2 KiB: room for a few records, so a later one hits the limit mid-write.
    script = f"ulimit -f 2; exec {command} --results-dir {results}"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "file-size limit" in proc.stderr
    text = (results / "records.jsonl").read_text()
    assert text == "" or text.endswith("\n")
    assert all(json.loads(line)["model"] == "bicubic" for line in text.splitlines())


# -- 8. invalid store lines never crash a tool or enter a table ----------------------------------


def test_invalid_records_are_skipped_with_their_line_numbers(tmp_path):
    assert _demo(tmp_path).exit_code == 0
    path = tmp_path / "results" / "records.jsonl"
    lines = path.read_text().splitlines()
    bad = json.loads(lines[0])
    bad["psnr_db"] = "33.6"
    path.write_text("\n".join([lines[0], "{}", json.dumps(bad), *lines[1:]]) + "\n")
    store = ResultStore(tmp_path / "results")
    with pytest.warns(UserWarning, match="skipped 2 invalid line"):
        records = store.iter_records()
    assert len(records) == len(lines)
    assert [n for n, _ in store.invalid] == [2, 3]
    assert "skipped 2 invalid line(s): line 2 (no 'model'), 3 ('psnr_db' is str" in (
        store.invalid_summary() or ""
    )
    for args in (
        ["report", "--results-dir", str(tmp_path / "results"), "--output-dir",
         str(tmp_path / "report")],
        ["pareto", "--results-dir", str(tmp_path / "results"), "--output-dir",
         str(tmp_path / "pareto")],
        ["baseline", "update", "--results-dir", str(tmp_path / "results"), "--baseline",
         str(tmp_path / "b.json")],
    ):  # fmt: skip
        with pytest.warns(UserWarning, match="invalid line"):
            result = _invoke(*args)
        assert result.exit_code == 0, (args, result.output)
        assert "Traceback" not in result.output
    assert _demo(tmp_path).exit_code == 0  # run skips the valid ones and does not crash


# -- 9. duplicates in a request are one request --------------------------------------------------


def test_duplicate_names_are_computed_once(tmp_path):
    config = RunConfig(["bicubic", "bicubic"], ["demo", "demo"], [2, 2], results_dir=tmp_path)
    assert (
        [m.key for m in config.models] == ["bicubic"]
        and config.scales == [2]
        and config.datasets == ["demo"]
    )
    assert len(run(config, [demo_source()])) == 5
    result = _invoke("run", "--models", "drn,drn_s,drn", "--datasets", "demo", "--scales", "9",
                     "--results-dir", str(tmp_path))  # fmt: skip
    assert "does not support scale x9" in _one_line_error(result)  # one model, named once


# -- 10. JPEG in a benchmark folder ----------------------------------------------------------------


def test_jpeg_in_a_benchmark_folder_is_named_as_lossy(tmp_path):
    folder = tmp_path / "Set5" / "HR"
    folder.mkdir(parents=True)
    from PIL import Image

    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(folder / "baby.jpg")
    result = _invoke("run", "--models", "bicubic", "--datasets", "set5", "--scales", "2",
                     "--data-root", str(tmp_path), "--results-dir", str(tmp_path / "r"))  # fmt: skip
    message = _one_line_error(result)
    assert "JPEG" in message and "lossy" in message and "baby.jpg" in message


# -- 13. a plugin's contract is checked when it is first built ------------------------------------


def test_plugin_with_wrong_output_size_is_named(temp_model):
    class Wrong(torch.nn.Module):
        def forward(self, x):
            return x  # forgot to upsample

    temp_model("wrong_size", lambda scale: Wrong())
    with pytest.raises(SRBenchError) as exc:
        create_model("wrong_size", 2)
    msg = str(exc.value)
    assert "'wrong_size'" in msg and "test_faults" in msg and "not (1, 3, 16, 16)" in msg


def test_plugin_card_with_bad_channels_is_named(temp_model):
    temp_model("bad_card", lambda scale: _NaNNet(scale), input_channels="Y")
    with pytest.raises(SRBenchError, match="input_channels is 'Y'; it must be one of y, rgb, any"):
        create_model("bad_card", 2)


def test_two_identical_runs_at_once_compute_each_image_once(tmp_path):
    results = tmp_path / "results"
    env = {**os.environ, "SRBENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "srbench", "run", "--models", "bicubic", "--datasets",
               "demo", "--scales", "2,3", "--results-dir", str(results)]  # fmt: skip
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    records = ResultStore(results).iter_records()
    keys = [(r["scale"], r["image"]) for r in records]
    assert len(keys) == 10 and len(set(keys)) == 10  # 5 images x 2 scales, none twice
    assert not any((results / ".claims").glob("*.claim"))  # no claim left behind
    for out, _ in outs:  # both print the whole table (the second from the first's results)
        assert out.count("demo") == 2


def test_stale_claim_of_a_killed_run_is_taken_over(tmp_path):
    from srbench.results import Claims

    claims = Claims(tmp_path)
    key = ("bicubic", "none", "standard")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    claims.dir.mkdir(parents=True)
    claims._path(key).write_text(str(dead.pid))
    path = claims.acquire(key)
    assert path is not None and Claims.read(path)["pid"] == os.getpid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        path.write_text(str(live.pid))
        assert claims.acquire(key) is None  # a live owner keeps it
    finally:
        live.kill()
        live.wait()
    claims.release(path)
    assert not path.exists()


def test_sigterm_stops_training_at_a_checkpoint_of_the_iteration_under_way(tmp_path):
    """`srbench train` ended by SIGTERM (how a session's processes are ended) keeps every trained
    iteration: it checkpoints the iteration under way, says so, and exits 143 (128 + 15)."""
    from PIL import Image

    folder = tmp_path / "hr"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    tiny = "{n_feats: 8, n_groups: 1, n_blocks: 1, distill_channels: 4, keep_channels: 2}"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model: drn_s\nscale: 2\nmodel_overrides: {tiny}\niterations: 1000000\n"
        f"log_interval: 1\ncheckpoint_interval: 0\nprecision: fp32\n"
        f"data: {{train: [{folder}], patch_size: 8, batch_size: 2}}\nvalidation: {{datasets: []}}\n"
    )
    runs = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "srbench", "train", str(recipe), "--output-dir", str(runs)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list(runs.glob("*/train_log.jsonl")) and proc.poll() is None:
            assert time.monotonic() < deadline, "no training log after 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    (run_dir,) = runs.iterdir()
    iteration = torch.load(run_dir / "checkpoint.pt", weights_only=True)["iteration"]
    assert iteration >= 1 and "SIGTERM: stopping after this iteration" in err
    assert f"stopped at iteration {iteration}" in err and "--resume" in err


# -- issue 22: outputs, atomic writes, claims, one-line errors -----------------------------------


def _not_regular(tmp_path: Path) -> dict[str, Path]:
    """Existing paths that are not regular files (a link to a device, a pipe, a folder)."""
    device = tmp_path / "to-dev-null"
    device.symlink_to("/dev/null")  # a link: the test never writes near /dev itself
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    folder = tmp_path / "folder"
    folder.mkdir()
    return {"a device": device, "a pipe": pipe, "a folder": folder}


def test_outputs_are_written_only_to_a_new_path_or_a_regular_file(tmp_path):
    """`baseline update --baseline X`, `weights convert -o X`, `verdict --output X`,
    `profile --output X`: X that is a device, pipe or folder is refused, never replaced."""
    from srbench.files import atomic_write

    assert _demo(tmp_path).exit_code == 0
    results = str(tmp_path / "results")
    source = tmp_path / "srcnn.pt"
    torch.save(create_model("srcnn_915", 2).state_dict(), source)
    (tmp_path / "t").mkdir()
    for kind, target in _not_regular(tmp_path / "t").items():
        commands = [
            ("baseline", "update", "--baseline", str(target), "--results-dir", results),
            ("weights", "convert", str(source), "--model", "srcnn_915", "--scale", "2", "-o",
             str(target)),
            ("verdict", "--results-dir", results, "--output", str(target)),
            ("profile", "--models", "bicubic", "--scales", "2", "--sizes", "256",
             "--no-latency", "--output", str(target)),
        ]  # fmt: skip
        for command in commands:
            message = _one_line_error(_invoke(*command))
            assert f"{target}: it is {kind}, not a regular file" in message, command
        with pytest.raises(SRBenchError, match=f"it is {kind}"):
            atomic_write(target, "x")
        assert target.is_symlink() or not target.is_file()  # still what it was
    assert os.path.realpath(tmp_path / "t" / "to-dev-null") == "/dev/null"


def test_atomic_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    from srbench.files import atomic_path, atomic_write

    target = tmp_path / "out.json"
    atomic_write(target, "old\n")
    target.chmod(0o640)
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n" and os.listdir(tmp_path) == ["out.json"]
    atomic_write(target, "new\n")
    assert target.read_text() == "new\n" and target.stat().st_mode & 0o777 == 0o640
    link = tmp_path / "link.json"
    link.symlink_to(target)
    atomic_write(link, "via link\n")  # a link to a regular file: the file is written
    assert link.is_symlink() and target.read_text() == "via link\n"


def test_a_failed_write_names_its_file(tmp_path):
    """EFBIG/ENOSPC raised by os.write carry no file name: the helper adds the target's, so the
    message is never "(unknown path)"."""
    target = tmp_path / "crops" / "x.png"
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
        "from srbench.devices import os_error_message\n"
        "from srbench.files import atomic_write\n"
        "try:\n"
        "    atomic_write(sys.argv[1], b'x' * 5000)\n"
        "except OSError as exc:\n"
        "    print(os_error_message(exc))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.startswith(f"{target}: File too large; the file-size limit"), done.stdout
    assert os.listdir(target.parent) == []  # no temporary left behind


def test_a_stale_claim_whose_pid_was_reused_is_taken_over(tmp_path):
    """A claim names its process by pid and start time: a live process that got the dead
    owner's pid (another start time) does not hold it."""
    from srbench.results import Claims, process_start

    claims = Claims(tmp_path)
    key = ("bicubic", "none", "standard")
    claims.dir.mkdir(parents=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        start = process_start(live.pid)
        assert start is not None
        reused = {"pid": live.pid, "start": start.rsplit(":", 1)[0] + ":1", "what": "old run"}
        claims._path(key).write_text(json.dumps(reused))
        path = claims.acquire(key, what="this run")
        assert path is not None and Claims.read(path)["what"] == "this run"
        held = {"pid": live.pid, "start": start, "what": "bicubic x2 on demo/astronaut"}
        path.write_text(json.dumps(held))
        assert claims.acquire(key) is None  # the very process that claimed it is alive
        assert claims.holder(key) == held
    finally:
        live.kill()
        live.wait()


def test_a_waiting_run_says_what_it_waits_for(tmp_path, monkeypatch):
    """An identical run holds the images: the second says which process and what it computes,
    then finishes from its results (here the holder dies, so its claims go stale)."""
    import srbench.runner as runner
    from srbench.results import Claims, process_start

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    held: set = set()

    class HeldOnce(Claims):
        def acquire(self, key, what=""):
            if key not in held:  # another run claimed it first
                held.add(key)
                self.dir.mkdir(parents=True, exist_ok=True)
                claim = {"pid": holder.pid, "start": process_start(holder.pid), "what": "run B"}
                self._path(key).write_text(json.dumps(claim))
            return super().acquire(key, what)

    monkeypatch.setattr(runner, "Claims", HeldOnce)
    config = RunConfig(models=["bicubic"], datasets=["demo"], scales=[2], results_dir=tmp_path / "r",
                       cache_lr=False)  # fmt: skip
    notes = []
    try:
        for event in runner.iter_run(config, [demo_source()]):
            if event.kind == "note" and "waiting" in event.message:
                notes.append(event.message)
                holder.kill()
                holder.wait()
    finally:
        holder.kill()
        holder.wait()
    assert len(notes) == 1
    assert notes[0].startswith(f"waiting for process {holder.pid} (run B), which is computing 5")
    assert len(ResultStore(tmp_path / "r").iter_records()) == 5


def test_save_images_says_why_it_wrote_nothing(tmp_path):
    assert _demo(tmp_path).exit_code == 0
    result = _demo(tmp_path, "--save-images", str(tmp_path / "sr"))
    assert result.exit_code == 0
    said = " ".join(result.stderr.split())
    assert "--save-images: 5 of 5 demo images of bicubic x2 were already in the store" in said
    assert "add --force to compute and save them" in said
    assert not (tmp_path / "sr").exists()
    assert _demo(tmp_path, "--save-images", str(tmp_path / "sr"), "--force").exit_code == 0
    assert len(list((tmp_path / "sr" / "bicubic" / "x2" / "demo").glob("*.png"))) == 5


def test_no_traceback_for_a_bomb_png_a_bad_tolerance_or_a_bad_mirror(tmp_path):
    from PIL import Image

    from srbench.data import decode_image

    bomb = tmp_path / "bomb.png"
    Image.new("L", (20000, 20000)).save(bomb)  # 400 Mpixel of zeros: 0.4 MB on disk
    with pytest.raises(DataError, match=r"bomb\.png: refused: Image size \(400000000 pixels\)"):
        decode_image(bomb)

    entry = {"model": "bicubic", "weights_sha256": "none", "scale": 2, "dataset": "set5",
             "protocol": "standard", "protocol_hash": "x", "psnr_db": 33.0, "ssim": 0.9}  # fmt: skip
    for bad in ("0.01", [0.01]):
        path = _baseline(tmp_path, [entry])
        data = json.loads(path.read_text())
        data["tolerances"] = {"psnr_db": bad}
        path.write_text(json.dumps(data))
        message = _one_line_error(_invoke("check", "--baseline", str(path)))
        assert f"{path}: tolerance psnr_db is {bad!r}, not a number" in message

    env = {"SRBENCH_WEIGHTS_MIRROR": "not-a-url"}
    message = _one_line_error(_invoke("weights", "fetch", "idn", env=env))
    assert "$SRBENCH_WEIGHTS_MIRROR='not-a-url' is not a URL" in message


def test_random_weight_results_are_labelled_in_the_run_table(tmp_path):
    result = _invoke(
        "run", "--models", "srcnn_915", "--datasets", "demo", "--scales", "2",
        "--allow-random-weights", "--results-dir", str(tmp_path / "results"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "srcnn_915 (random weights)" in result.stdout


def test_store_records_are_written_at_once_and_fsynced_once_per_dataset(tmp_path, monkeypatch):
    import srbench.results

    results = tmp_path / "results"
    seen: list[int] = []  # records in the store file at each fsync of it
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.path.realpath(f"/proc/self/fd/{fd}") == str(results / "records.jsonl"):
            seen.append(len((results / "records.jsonl").read_text().splitlines()))
        real_fsync(fd)

    monkeypatch.setattr(srbench.results.os, "fsync", fsync)
    events = []
    config = RunConfig(
        models=["bicubic"], datasets=["demo"], scales=[2, 3], results_dir=results,
        crops=False, count_costs=False, cache_lr=False,
    )  # fmt: skip
    from srbench.runner import iter_run

    for event in iter_run(config, [demo_source()]):
        if event.kind == "image":  # reported: already in the file, before any fsync
            lines = (results / "records.jsonl").read_text().splitlines()
            assert json.loads(lines[-1]) == event.record
        events.append(event)
    per_scale = sum(e.kind == "image" for e in events) // 2
    assert per_scale >= 2
    assert seen == [per_scale, 2 * per_scale]  # once per (model, scale, dataset) group
