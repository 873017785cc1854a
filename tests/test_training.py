"""Training and ablation harness: recipes, patches, the loop, exact resume, DDP, throughput."""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from srbench.parsing import key_values
from srbench.precision import cpu_choice, cpu_flags, training_precision
from srbench.registry import create_model, get_card
from srbench.results import ResultStore
from srbench.training.ablation import iter_ablate, spec_from_dict
from srbench.training.data import PatchSampler, build_training_set, synthetic_images
from srbench.training.distributed import spawn_local
from srbench.training.loop import (
    WEIGHTS_FILE,
    TrainingError,
    iter_train,
    read_checkpoint,
    read_log,
    train,
    train_benchmark,
)
from srbench.training.naming import run_name
from srbench.training.recipe import RecipeError, load_recipe, recipe_from_dict
from srbench.training.zoo import load_zoo, zoo_from_dict
from srbench.weights import load_weights, read_metadata

REPO = Path(__file__).resolve().parent.parent
TINY_DRN = {"n_feats": 8, "n_groups": 1, "n_blocks": 1, "distill_channels": 4, "keep_channels": 2}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a loaded 2-core machine, 2 OpenMP threads make tiny steps 100x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def images():
    return synthetic_images(6, 64)


def tiny_recipe(**changes):
    raw = {
        "name": "tiny-test",
        "model": "drn_s",
        "model_overrides": dict(TINY_DRN),
        "iterations": 40,
        "log_interval": 5,
        "checkpoint_interval": 0,
        "data": {"train": ["synthetic"], "patch_size": 12, "batch_size": 8},
        "optimizer": {"name": "adam", "lr": 2e-3},
        "schedule": {"name": "constant"},
        "validation": {"datasets": []},
        "precision": "fp32",  # bit-exact comparisons; the bf16 path has its own tests
    }
    for key, value in changes.items():
        if key in ("data", "optimizer", "schedule", "ema", "validation"):
            raw[key] = {**raw.get(key, {}), **value}
        else:
            raw[key] = value
    return recipe_from_dict(raw, "test")


# -- recipes -------------------------------------------------------------------------------------


def test_builtin_recipes_parse_and_name_runs():
    recipe = load_recipe("default")
    assert run_name(recipe) == f"edsr_baseline-x2-t91bsd200-it300k-b16-{recipe.hash[:6]}"
    tiny = load_recipe("tiny-cpu")
    assert run_name(tiny) == f"srcnn-x2-t91-it1500-b16-{tiny.hash[:6]}"
    variant = load_recipe(
        "default",
        model="drn_s",
        scale=4,
        iterations=2000,
        overrides=key_values(
            ["model_overrides.n_feats=16", "model_overrides.use_distill=false", "data.batch_size=8"]
        ),
    )
    assert run_name(variant) == f"drn_s-x4-nf16-nodistill-t91bsd200-it2k-b8-{variant.hash[:6]}"
    # Two recipes that differ only in what the name does not spell (the learning rate) never
    # share a run folder, so "delete the folder" can only ever mean this recipe's run.
    other_lr = recipe.replace(optimizer=dataclasses.replace(recipe.optimizer, lr=3e-4))
    assert run_name(other_lr) != run_name(recipe)
    assert variant.model_overrides == {"n_feats": 16, "use_distill": False}
    assert variant.hash != recipe.hash
    # Bookkeeping does not change the hash (a resumed run may change it); the budget does.
    assert recipe.replace(log_interval=7).hash == recipe.hash
    assert recipe.replace(iterations=7).hash != recipe.hash


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"data.patch": 3}, "unknown key 'data.patch'; did you mean 'data.patch_size'?"),
        ({"modle": "srcnn"}, "unknown key 'modle'; did you mean 'model'?"),
        ({"model": "srcnnn"}, "unknown model 'srcnnn'; did you mean srcnn"),
        ({"data.batch_size": "many"}, "data.batch_size must be an integer, got 'many'"),
        ({"model_overrides.width": 3}, "model_overrides do not fit edsr_baseline"),
        ({"loss": "l3"}, "loss must be one of l1, mse, charbonnier"),
        ({"scale": 5}, "does not support scale x5"),
        ({"optimizer.name": "adamm"}, "unknown optimizer 'adamm'"),
    ],
)
def test_recipe_errors_are_one_line(overrides, expected):
    with pytest.raises(RecipeError) as info:
        load_recipe("default", overrides=overrides)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert message.startswith("default.yaml: ")


def test_unknown_recipe_name_lists_builtins(tmp_path):
    with pytest.raises(RecipeError, match="built-in: default, tiny-cpu"):
        load_recipe("no-such-recipe")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: srcnn\nvalidation: {intervall: 3}\n")
    with pytest.raises(RecipeError, match=r"bad.yaml: unknown key 'validation.intervall'"):
        load_recipe(bad)


def test_ablation_spec_drn_covers_the_design_choices():
    from srbench.training.ablation import load_spec

    spec = load_spec("ablation-drn")
    overrides = [v.overrides for v in spec.variants]
    assert {"use_distill": False} in overrides
    assert {k for o in overrides for k in o} >= {"use_distill", "n_groups", "n_blocks", "n_feats"}
    assert {o.get("activation") for o in overrides} >= {"relu", "leakyrelu"}
    assert "drn_s_plain" in {v.model for v in spec.variants}
    # one budget for all
    assert len({spec.variant_recipe(v).iterations for v in spec.variants}) == 1
    with pytest.raises(RecipeError, match=r"variant 'bad'.*unknown options"):
        spec_from_dict({"model": "drn_s", "variants": [{"name": "bad", "overrides": {"x": 1}}]})


# -- data ---------------------------------------------------------------------------------------


def _transform(a: np.ndarray, vflip: bool, hflip: bool, transpose: bool) -> np.ndarray:
    """The sampler's augmentation: flip the crop, then transpose it."""
    if vflip:
        a = a[..., ::-1, :]
    if hflip:
        a = a[..., :, ::-1]
    if transpose:
        a = a.swapaxes(-1, -2)
    return a


@pytest.mark.parametrize("channels", ["rgb", "y"])
def test_patches_are_aligned_augmented_crops(images, channels):
    scale, patch = 3, 7
    data = build_training_set(images[:3], scale, channels)
    sampler = PatchSampler(data, patch, 12, seed=5)
    state = sampler.state()
    image, top, left, flips = sampler.draw()
    sampler.load_state(state)
    lr, hr = sampler.sample()
    assert lr.shape == (12, data.channels, patch, patch)
    assert hr.shape == (12, data.channels, patch * scale, patch * scale)
    assert flips.any() and not flips.all()
    for b in range(12):
        i = int(image[b])
        h, w = int(data.lr_heights[i]), int(data.lr_widths[i])
        lr_img = data.to_float(data.lr[:, data.lr_offsets[i] :][:, : h * w]).reshape(-1, h, w)
        hr_img = data.to_float(data.hr[:, data.hr_offsets[i] :][:, : h * w * scale * scale])
        hr_img = hr_img.reshape(-1, h * scale, w * scale)
        t, left_b = int(top[b]), int(left[b])
        want_lr = lr_img[:, t : t + patch, left_b : left_b + patch].numpy()
        want_hr = hr_img[
            :, t * scale : (t + patch) * scale, left_b * scale : (left_b + patch) * scale
        ]
        f = [bool(x) for x in flips[b]]
        np.testing.assert_array_equal(lr[b].numpy(), _transform(want_lr, *f))
        np.testing.assert_array_equal(hr[b].numpy(), _transform(want_hr.numpy(), *f))


def test_lr_is_matlab_imresize_and_y_models_get_bt601_y(images):
    from srbench.color import rgb_to_y
    from srbench.imresize import imresize, modcrop

    rgb = build_training_set(images[:1], 2, "rgb")
    y = build_training_set(images[:1], 2, "y")
    hr = modcrop(images[0].pixels, 2)
    lr = imresize(hr, 1 / 2)
    np.testing.assert_array_equal(rgb.lr.numpy().reshape(3, *lr.shape[:2]), lr.transpose(2, 0, 1))
    want_y = (rgb_to_y(lr) / 255).astype(np.float32)
    np.testing.assert_array_equal(y.lr.numpy().reshape(lr.shape[:2]), want_y)
    np.testing.assert_array_equal(
        y.hr.numpy().reshape(hr.shape[:2]), (rgb_to_y(hr) / 255).astype(np.float32)
    )


def test_ranks_cut_disjoint_slices_of_one_global_batch(images):
    data = build_training_set(images, 2, "rgb")
    whole = PatchSampler(data, 10, 8, seed=1)
    parts = [PatchSampler(data, 10, 8, seed=1, rank=r, world_size=2) for r in (0, 1)]
    for _ in range(3):
        lr, hr = whole.sample()
        (lr0, hr0), (lr1, hr1) = (p.sample() for p in parts)
        assert torch.equal(torch.cat([lr0, lr1]), lr)
        assert torch.equal(torch.cat([hr0, hr1]), hr)


# -- training -----------------------------------------------------------------------------------


def test_tiny_training_loss_falls_and_weights_load(tmp_path, images):
    recipe = tiny_recipe()
    result = train(recipe, output_dir=tmp_path, images=images)
    losses = result["losses"]
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    run_dir = tmp_path / run_name(recipe)
    assert result["run_dir"] == str(run_dir)
    for name in ("recipe.yaml", "train_log.jsonl", "checkpoint.pt", "weights.safetensors"):
        assert (run_dir / name).is_file(), name
    log = read_log(run_dir)
    assert [r["iteration"] for r in log] == list(range(5, 41, 5))
    assert all(r["patches_per_s"] > 0 for r in log)
    model = create_model("drn_s", 2, **TINY_DRN)
    load_weights(model, run_dir / "weights.safetensors", card=get_card("drn_s"), scale=2)
    # A second start without --resume refuses to overwrite the run.
    with pytest.raises(Exception, match="already finished"):
        train(recipe, output_dir=tmp_path, images=images)


def test_a_run_resumed_on_another_cpu_says_which_iterations_trained_in_which_precision(
    tmp_path, images, monkeypatch
):
    """``precision: auto`` resolves per machine: a run stopped on a CPU with bf16 arithmetic and
    resumed on one without trained in both precisions. Its run.json says so (``bf16+fp32``, so
    that the verdict never counts it as a bf16 or an fp32 run) and lists each segment."""
    import srbench.precision as precision_module
    import srbench.training.loop as loop

    recipe = tiny_recipe(iterations=8, precision="auto", checkpoint_interval=2)
    out = tmp_path / "run"
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    monkeypatch.setattr(loop, "machine_of", lambda device: "cpu A")
    train(recipe, output_dir=out, images=images, stop_after=4)
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: frozenset({"avx2"}))
    monkeypatch.setattr(loop, "machine_of", lambda device: "cpu B")
    info = train(recipe, output_dir=out, images=images, resume=True)
    assert info["precision"] == "bf16+fp32"
    segments = [(x["from"], x["to"], x["machine"], x["precision"]) for x in info["segments"]]
    assert segments == [(0, 4, "cpu A", "bf16"), (4, 8, "cpu B", "fp32")]
    assert read_checkpoint(out / run_name(recipe))["segments"] == info["segments"]
    again = train(recipe, output_dir=tmp_path / "straight", images=images)  # one machine
    assert again["precision"] == "fp32" and len(again["segments"]) == 1
    # A checkpoint from before segments were recorded: its iterations say "not recorded".
    older = tmp_path / "older"
    train(recipe, output_dir=older, images=images, stop_after=6)
    state = read_checkpoint(older / run_name(recipe))
    del state["segments"]
    torch.save(state, older / run_name(recipe) / "checkpoint.pt")
    info = train(recipe, output_dir=older, images=images, resume=True)
    assert info["precision"] == "fp32"
    assert [(x["from"], x["to"], x["precision"]) for x in info["segments"]] == [
        (0, 6, None),
        (6, 8, "fp32"),
    ]


def test_resume_equals_uninterrupted(tmp_path, images):
    recipe = tiny_recipe(
        iterations=20,
        log_interval=3,
        schedule={"name": "cosine", "warmup_iterations": 4, "warmup_lr": 1e-4},
        ema={"enabled": True, "decay": 0.9},
    )
    straight = train(recipe, output_dir=tmp_path / "a", images=images)
    first = train(recipe, output_dir=tmp_path / "b", images=images, stop_after=10)
    assert first["finished"] is False
    second = train(recipe, output_dir=tmp_path / "b", images=images, resume=True)
    assert second["resumed_from"] == 10
    assert first["losses"] + second["losses"] == straight["losses"]
    name = run_name(recipe)
    a = load_file(tmp_path / "a" / name / "weights.safetensors")
    b = load_file(tmp_path / "b" / name / "weights.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    ca = read_checkpoint(tmp_path / "a" / name)
    cb = read_checkpoint(tmp_path / "b" / name)
    for key in ("model", "ema"):
        for tensor in ca[key]:
            assert torch.equal(ca[key][tensor], cb[key][tensor]), (key, tensor)
    for p, state in ca["optimizer"]["state"].items():
        for k, v in state.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(cb["optimizer"]["state"][p][k]))
    # The log of the resumed run reads like the uninterrupted one.
    losses = lambda d: [x for r in read_log(d / name) if r["kind"] == "train" for x in r["losses"]]  # noqa: E731
    assert losses(tmp_path / "b") == losses(tmp_path / "a")
    assert cb["iteration"] == 20 and cb["recipe_hash"] == recipe.hash
    assert cb["train_seconds"] > 0


def test_a_stop_request_ends_after_the_iteration_under_way_and_resumes_exactly(tmp_path, images):
    """A stop request (what the first SIGINT/SIGTERM makes in the CLI) ends the run after the
    iteration under way with a checkpoint there, not at the last periodic one (here: none), and
    resuming gives the uninterrupted run's weights bit for bit."""
    recipe = tiny_recipe(iterations=12, log_interval=3, ema={"enabled": True, "decay": 0.9})
    straight = train(recipe, output_dir=tmp_path / "a", images=images)
    stop = threading.Event()
    events = []
    for event in iter_train(recipe, output_dir=tmp_path / "b", images=images, stop=stop):
        events.append(event)
        if event.kind == "log" and event.iteration == 6:
            stop.set()  # while iteration 7 is the next: it runs, then the loop stops
    name = run_name(recipe)
    assert events[-1].kind == "done" and events[-1].info["finished"] is False
    assert events[-1].iteration == 7 and read_checkpoint(tmp_path / "b" / name)["iteration"] == 7
    second = train(recipe, output_dir=tmp_path / "b", images=images, resume=True)
    assert second["resumed_from"] == 7
    a = load_file(tmp_path / "a" / name / "weights.safetensors")
    b = load_file(tmp_path / "b" / name / "weights.safetensors")
    assert all(torch.equal(a[key], b[key]) for key in a) and straight["finished"]
    logged = [r["iteration"] for r in read_log(tmp_path / "b" / name) if r["kind"] == "train"]
    assert logged == [3, 6, 7, 9, 12]  # the cut interval is logged where it was cut


def test_the_first_signal_asks_for_a_stop_and_a_second_ends_at_once():
    from srbench.cli.train import stop_on_signals

    # Python's own SIGINT handler before it, also where the shell that started pytest in the
    # background made SIGINT ignored (a second SIGINT would then rightly be ignored too)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        with stop_on_signals() as stop:
            signal.raise_signal(signal.SIGTERM)
            assert stop.is_set() and stop.signum == signal.SIGTERM
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGINT)  # the handler before it: Python's default
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    finally:
        signal.signal(signal.SIGINT, outer)


def test_resume_refuses_another_recipe(tmp_path, images):
    recipe = tiny_recipe(iterations=6, run_name="fixed")
    train(recipe, output_dir=tmp_path, images=images, stop_after=3)
    other = recipe.replace(seed=1)
    with pytest.raises(Exception, match="another recipe"):
        train(other, output_dir=tmp_path, images=images, resume=True)


def test_two_process_ddp_matches_one_process(tmp_path, images):
    recipe = tiny_recipe(iterations=8, log_interval=4)
    one = train(recipe, output_dir=tmp_path / "one", images=images)
    spawn_local(train, 2, recipe=recipe, output_dir=tmp_path / "two", images=images)
    name = run_name(recipe)
    a = load_file(tmp_path / "one" / name / "weights.safetensors")
    b = load_file(tmp_path / "two" / name / "weights.safetensors")
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-5
    assert not all(
        torch.equal(a[k], create_model("drn_s", 2, **TINY_DRN).state_dict()[k]) for k in a
    )
    two_losses = [x for r in read_log(tmp_path / "two" / name) for x in r["losses"]]
    np.testing.assert_allclose(two_losses, one["losses"], rtol=1e-5, atol=1e-6)
    meta = json.loads((tmp_path / "two" / name / "run.json").read_text())
    assert meta["world_size"] == 2


def test_train_benchmark_reports_loop_bare_and_ratio():
    result = train_benchmark(
        "drn_s", 2, batch=4, patch=12, precision="auto", steps=2, warmup=1, repeats=2,
        overrides=TINY_DRN,
    )  # fmt: skip
    assert result["loop_patches_per_s"] > 0 and result["bare_patches_per_s"] > 0
    assert result["ratio"] == pytest.approx(
        result["loop_patches_per_s"] / result["bare_patches_per_s"]
    )
    assert len(result["loop_patches_per_s_runs"]) == 2
    assert result["precision"] == cpu_choice(cpu_flags())[0]  # auto on this CPU


# -- precision ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"avx512f", "amx_bf16", "amx_tile", "avx512_bf16"}, "bf16"),  # Xeon Sapphire Rapids
        ({"avx512f", "avx512_bf16"}, "bf16"),  # EPYC Zen 4/5
        ({"avx512f", "avx2"}, "fp32-cl"),  # Skylake-SP / Ice Lake
        ({"avx2", "fma"}, "fp32"),  # no AVX-512: bf16 would be emulated
        (set(), "fp32"),
    ],
)
def test_auto_precision_follows_cpu_capabilities(flags, expected):
    assert cpu_choice(frozenset(flags))[0] == expected
    resolved = training_precision("auto", torch.device("cpu"))
    assert resolved.name == cpu_choice(cpu_flags())[0]
    assert resolved.channels_last == (resolved.name in ("bf16", "fp32-cl"))
    assert training_precision("fp32", torch.device("cpu")).autocast_bf16 is False


def test_bf16_cpu_run_reaches_the_fp32_loss(tmp_path, images):
    """A short bf16 (autocast + channels_last) CPU run ends within 10% of the fp32 run's loss.

    10%: the mean L1 of the last 10 of 60 steps; bf16 rounds the convolutions' inputs to 8
    mantissa bits, which moves single steps by a few percent but not where training goes.
    Master weights stay fp32 in both.
    """
    losses = {}
    for precision in ("fp32", "bf16"):
        recipe = tiny_recipe(iterations=60, log_interval=10, precision=precision)
        result = train(recipe, output_dir=tmp_path / precision, images=images)
        assert result["precision"] == precision
        losses[precision] = np.mean(result["losses"][-10:])
        weights = load_file(tmp_path / precision / run_name(recipe) / "weights.safetensors")
        assert all(t.dtype == torch.float32 for t in weights.values())
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.10)
    assert losses["fp32"] < 0.6 * 0.25  # well below the first steps' loss (about 0.25)


def test_bf16_resume_equals_uninterrupted(tmp_path, images):
    recipe = tiny_recipe(iterations=10, log_interval=2, precision="bf16")
    straight = train(recipe, output_dir=tmp_path / "a", images=images)
    train(recipe, output_dir=tmp_path / "b", images=images, stop_after=4)
    second = train(recipe, output_dir=tmp_path / "b", images=images, resume=True)
    assert second["resumed_from"] == 4
    name = run_name(recipe)
    a = load_file(tmp_path / "a" / name / "weights.safetensors")
    b = load_file(tmp_path / "b" / name / "weights.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight["losses"][4:] == second["losses"]


def test_non_finite_loss_stops_the_run_with_one_line(tmp_path, images):
    recipe = tiny_recipe(iterations=10, optimizer={"lr": 1e30})
    with pytest.raises(TrainingError) as info:
        train(recipe, output_dir=tmp_path, images=images)
    assert "the loss became" in str(info.value) and "\n" not in str(info.value)


def _lrs(run_dir):
    return {r["iteration"]: r["lr"] for r in read_log(run_dir) if r["kind"] == "train"}


def test_a_diverged_run_backs_off_to_its_last_checkpoint_at_half_the_rate(
    tmp_path, images, diverge_at
):
    """A step loss above 1 sends the run back to its last periodic checkpoint (4: the seventh
    step diverged), from where the rate is halved for the rest of the run; the run finishes, and
    its checkpoint, log and run.json say so. Stopped and resumed before the divergence (at 5, off
    the checkpoint grid) or after it (at 10), it goes back to the same checkpoint, keeps the
    halved rate and ends with the uninterrupted run's weights, bit for bit."""
    diverge_at(lambda call: call == 7)
    recipe = tiny_recipe(iterations=20, checkpoint_interval=4, log_interval=1)
    events = list(iter_train(recipe, output_dir=tmp_path / "a", images=images))
    kinds = [e.kind for e in events]
    assert kinds.count("start") == 2 and kinds.index("backoff") < kinds.index("start", 1)
    backoff = next(e.info for e in events if e.kind == "backoff")
    assert backoff.pop("seconds_lost") >= 0  # the time spent on the undone steps: still counted
    assert backoff.pop("cpu_seconds_lost") >= 0  # and the CPU time
    assert backoff == {"diverged_at": 7, "loss": 5.0, "restored": 4, "lr_scale": 0.5}
    run_dir = tmp_path / "a" / run_name(recipe)
    summary = json.loads((run_dir / "run.json").read_text())
    assert [{k: b[k] for k in backoff} for b in summary["lr_backoffs"]] == [backoff]
    assert read_checkpoint(run_dir)["lr_scale"] == 0.5
    lrs = _lrs(run_dir)
    assert sorted(lrs) == list(range(1, 21))  # the undone steps' lines left the log
    assert {lrs[i] for i in range(1, 5)} == {2e-3} and {lrs[i] for i in range(5, 21)} == {1e-3}
    logged = [r for r in read_log(run_dir) if r["kind"] == "backoff"]
    assert [{k: r[k] for k in ("iteration", *backoff)} for r in logged] == [
        {"iteration": 4, **backoff}
    ]
    from srbench.training.zoo import ZooRun, run_status

    status = run_status(ZooRun(recipe, run_name(recipe)), tmp_path / "a")
    assert status["state"] == "finished" and status["lr_backoffs"] == summary["lr_backoffs"]
    a = load_file(run_dir / WEIGHTS_FILE)
    for stop in (5, 10):
        diverge_at(lambda call: call == 7)
        out = tmp_path / f"stop{stop}"
        first = train(recipe, output_dir=out, images=images, stop_after=stop)
        assert len(first["losses"]) == stop  # one per iteration: the undone ones dropped
        status = run_status(ZooRun(recipe, run_name(recipe)), out)
        assert [b["lr_scale"] for b in status["lr_backoffs"]] == ([0.5] if stop > 7 else [])
        resumed = train(recipe, output_dir=out, images=images, resume=True)
        assert [{k: b[k] for k in backoff} for b in resumed["lr_backoffs"]] == [backoff]
        b = load_file(out / run_name(recipe) / WEIGHTS_FILE)
        assert all(torch.equal(a[k], b[k]) for k in a), stop


def test_each_segment_records_its_wall_and_cpu_seconds_and_cpu_time_leaves_out_a_pause(
    tmp_path, images, monkeypatch
):
    """A run stopped at 3 and resumed has two segments, each with its wall and process-CPU
    seconds; run.json's CPU time is their sum. A pause in a step (a sleep standing in for
    ``kill -STOP``) counts in the wall time, not in the CPU time."""
    import time

    import srbench.training.steps as steps
    from srbench.training.segments import cpu_seconds

    real, calls = steps.TrainStep.__call__, []

    def step(self, lr, hr):
        calls.append(1)
        if len(calls) == 5:  # the second segment's second step
            time.sleep(1.0)
        return real(self, lr, hr)

    monkeypatch.setattr(steps.TrainStep, "__call__", step)
    recipe = tiny_recipe(iterations=6, checkpoint_interval=3)
    train(recipe, output_dir=tmp_path, images=images, stop_after=3)
    summary = train(recipe, output_dir=tmp_path, images=images, resume=True)
    segments = summary["segments"]
    assert [(x["from"], x["to"]) for x in segments] == [(0, 3), (3, 6)]
    assert all(x["wall_seconds"] >= 0 and x["cpu_seconds"] >= 0 for x in segments), segments
    assert {x["threads"] for x in segments} == {torch.get_num_threads()}
    assert segments[1]["wall_seconds"] - segments[1]["cpu_seconds"] >= 0.8, segments  # the pause
    assert summary["cpu_seconds"] == pytest.approx(cpu_seconds(segments), abs=0.05)
    assert summary["train_seconds"] == pytest.approx(
        sum(x["wall_seconds"] for x in segments), abs=0.2
    )
    # a segment trained before CPU time was recorded leaves the total unknown
    older = [{k: v for k, v in segments[0].items() if k != "cpu_seconds"}, segments[1]]
    assert cpu_seconds(older) is None
    assert cpu_seconds(older, after=3) == segments[1]["cpu_seconds"]


def test_a_run_that_keeps_diverging_stops_after_three_backoffs(tmp_path, images, diverge_at):
    """Every step from the seventh on diverges: three backoffs (rate x0.5, x0.25, x0.125), then
    a one-line error; the last checkpoint (4) is kept with the three backoffs in it, and the
    snapshot made on the way to the divergence (6, a ladder's branch point) is gone."""
    diverge_at(lambda call: call >= 7)
    recipe = tiny_recipe(iterations=40, checkpoint_interval=4)
    snaps = tmp_path / "trunk"
    with pytest.raises(TrainingError, match=r"at iteration 5: the run diverged \(above 1") as info:
        train(recipe, output_dir=tmp_path, images=images, snapshots=[6], snapshot_dir=snaps)
    assert "after 3 backoffs (rate x0.125)" in str(info.value) and "\n" not in str(info.value)
    state = read_checkpoint(tmp_path / run_name(recipe))
    assert state["iteration"] == 4 and state["lr_scale"] == 0.125
    assert [b["lr_scale"] for b in state["backoffs"]] == [0.5, 0.25, 0.125]
    assert [b["diverged_at"] for b in state["backoffs"]] == [7, 5, 5]
    assert not (snaps / "it000006.pt").exists()


def test_a_divergence_before_the_first_checkpoint_stops_the_run(tmp_path, images, diverge_at):
    diverge_at(lambda call: call == 3)
    recipe = tiny_recipe(iterations=40, checkpoint_interval=10)
    with pytest.raises(TrainingError, match=r"at iteration 3: .* before its first periodic"):
        train(recipe, output_dir=tmp_path, images=images)


# -- multi-scale and init_from ----------------------------------------------------------------------


def test_multiscale_run_trains_one_network_for_every_scale(tmp_path, images):
    recipe = tiny_recipe(
        model="srcnn", model_overrides={"filters": (8, 4)}, multiscale=[3, 2], iterations=6,
        log_interval=2,
    )  # fmt: skip
    assert recipe.train_scales() == (2, 3) and recipe.scale == 2
    assert run_name(recipe).startswith("srcnn-x2x3-")
    result = train(recipe, output_dir=tmp_path, images=images)
    path = tmp_path / run_name(recipe) / "weights.safetensors"
    assert read_metadata(path)["scales"] == (2, 3)
    assert result["scales"] == [2, 3]
    for scale in (2, 3):  # the same file loads for both scales
        load_weights(create_model("srcnn", scale, filters=(8, 4)), path, card=get_card("srcnn"),
                     scale=scale)  # fmt: skip
    with pytest.raises(TrainingError, match="cannot be trained multi-scale"):
        train(tiny_recipe(multiscale=[2, 3], iterations=2), output_dir=tmp_path, images=images)


def test_init_from_copies_matching_tensors_and_lists_the_rest(tmp_path, images):
    x2 = tiny_recipe(iterations=4, run_name="base")
    train(x2, output_dir=tmp_path, images=images)
    x4 = tiny_recipe(iterations=2, scale=4, init_from="base", data={"patch_size": 6})
    info = train(x4, output_dir=tmp_path, images=images)
    assert info["init_from"] == "base"
    assert info["init_reinitialised"] and all(
        k.startswith("upsample") for k in info["init_reinitialised"]
    )
    assert info["init_copied"] > 0
    with pytest.raises(TrainingError, match="has not finished"):
        train(tiny_recipe(iterations=2, init_from="missing", run_name="m"), output_dir=tmp_path,
              images=images)  # fmt: skip


# -- the zoo ---------------------------------------------------------------------------------------


def test_zoo_spec_orders_runs_and_starts_x3_x4_from_x2():
    zoo = load_zoo("zoo")
    labels = [run.label for run in zoo.runs]
    assert labels[:7] == [
        "idn x2", "drn_s x2", "edsr_baseline x2", "drn_m x2", "srcnn x2", "drn_s_nodistill x2",
        "drn_s_plain x2",
    ]  # fmt: skip
    assert labels[-1] == "vdsr x2/x3/x4"
    assert len(zoo.runs) == 18
    by_label = {run.label: run for run in zoo.runs}
    assert by_label["drn_s x4"].recipe.init_from == by_label["drn_s x2"].name
    assert by_label["drn_s x2"].recipe.init_from is None
    # One recipe: runs differ only in model, scale(s) and init_from.
    shared = {
        k: v
        for k, v in zoo.runs[0].recipe.to_dict().items()
        if k not in ("model", "scale", "multiscale", "init_from")
    }
    for run in zoo.runs:
        d = run.recipe.to_dict()
        assert {k: d[k] for k in shared} == shared, run.label
    with pytest.raises(RecipeError, match="must not set 'model'"):
        zoo_from_dict({"recipe": {"model": "idn"}, "runs": [{"model": "idn"}]})


ZOO_SCRIPT = """
import sys, torch
torch.set_num_threads(1)
from srbench.training.data import synthetic_images
from srbench.training import zoo as z
from srbench.training.recipe import read_yaml
raw, _ = read_yaml(sys.argv[1], "zoo spec")
spec = z.zoo_from_dict(raw, sys.argv[1])
images = synthetic_images(6, 64)
from srbench.training.loop import iter_train
import srbench.training.zoo as zoo_mod
real = zoo_mod.iter_train if hasattr(zoo_mod, "iter_train") else None
import srbench.training.loop as loop
orig = loop.iter_train
loop.iter_train = lambda recipe, **kw: orig(recipe, images=images, **kw)
for event in z.iter_zoo(spec.runs, output_dir=sys.argv[2]):
    if event.kind == "train" and event.train_event.kind == "checkpoint":
        print("checkpoint", event.run.label, event.train_event.iteration, flush=True)
    elif event.kind in ("run-skip", "run-start"):
        print(event.kind, event.run.label, event.info["state"], event.info["iteration"], flush=True)
"""


def test_zoo_batch_resumes_after_kill(tmp_path):
    """kill -9 during the second run; the same command skips the first and resumes the second."""
    import os
    import signal
    import subprocess
    import sys

    import yaml

    spec = {
        "name": "tiny",
        "recipe": {
            "iterations": 12, "log_interval": 2, "checkpoint_interval": 2, "precision": "fp32",
            "data": {"train": ["synthetic"], "patch_size": 8, "batch_size": 4},
            "optimizer": {"name": "adam", "lr": 1e-3}, "schedule": {"name": "constant"},
            "validation": {"datasets": []},
        },
        "runs": [{"model": "srcnn", "scales": [2, 3]}],
    }  # fmt: skip
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "run.py").write_text(ZOO_SCRIPT)
    args = [
        sys.executable,
        str(tmp_path / "run.py"),
        str(tmp_path / "zoo.yaml"),
        str(tmp_path / "out"),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line.split())
        if line.startswith("checkpoint srcnn x3 4"):
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    assert ["run-start", "srcnn", "x2", "new", "0"] in seen
    again = subprocess.run(args, capture_output=True, text=True, check=True).stdout.splitlines()
    assert again[0] == "run-skip srcnn x2 finished 12"
    resumed = again[1].split()
    assert resumed[:4] == ["run-start", "srcnn", "x3", "interrupted"] and int(resumed[4]) >= 4
    # The resumed zoo equals one trained without the kill.
    (tmp_path / "straight").mkdir()
    subprocess.run([*args[:-1], str(tmp_path / "straight")], check=True, capture_output=True)
    zoo = zoo_from_dict(spec, "tiny")
    for run in zoo.runs:
        a = load_file(tmp_path / "out" / run.name / "weights.safetensors")
        b = load_file(tmp_path / "straight" / run.name / "weights.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a), run.label


def test_zoo_table_reads_committed_records_when_run_folders_are_gone(tmp_path):
    """Run folders are a cache: on a fresh machine the table of runs comes from the committed
    training records, so shipping one new run does not drop the others from docs/zoo.md."""
    from srbench.training.zoo import read_training_records, zoo_table

    zoo = load_zoo("zoo")
    committed = {r["zoo_run"]: r for r in read_training_records(REPO / "results")}
    table = zoo_table(zoo.runs, output_dir=tmp_path / "empty", results_dir=REPO / "results")
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`" in line]
    assert len(rows) == len(committed) >= 17
    idn = committed["idn-x2-t91bsd200-it1k-b16-3ad644"]["summary"]
    assert f"| idn | x2 | 1000 | {idn['train_seconds'] / 60:.1f} min |" in table
    assert zoo_table(zoo.runs, output_dir=tmp_path / "empty").count("`") == 0


def test_zoo_status_shows_shipped_runs_from_the_committed_records(tmp_path):
    """A fresh machine has no run folders: a run shipped from this recipe is "shipped" with its
    committed iterations, not "new 0/1000"."""
    from srbench.cli.zoo import zoo_status

    rows = zoo_status(output_dir=tmp_path / "empty", results_dir=REPO / "results")
    assert len(rows) == 18
    assert {r["state"] for r in rows} == {"shipped"}
    assert {r["iteration"] for r in rows} == {1000}
    assert all(r["train_seconds"] > 60 for r in rows)
    rows = zoo_status(output_dir=tmp_path / "empty", results_dir=tmp_path / "none")
    assert {r["state"] for r in rows} == {"new"}


def test_a_torn_run_json_is_one_line_saying_what_to_do(tmp_path, capsys):
    """A run.json torn by a kill: zoo status marks that run and goes on; zoo train stops with
    one line naming the file and the fix, never a traceback."""
    from srbench.cli.zoo import zoo_status
    from srbench.errors import SRBenchError
    from srbench.training.zoo import iter_zoo

    zoo = load_zoo("zoo")
    run_dir = tmp_path / zoo.runs[0].name
    run_dir.mkdir()
    (run_dir / "weights.safetensors").write_bytes(b"")
    (run_dir / "run.json").write_text('{"iterations": 10')
    rows = zoo_status(output_dir=tmp_path, results_dir=tmp_path / "none")
    assert [r["state"] for r in rows] == ["damaged"] + ["new"] * 17
    note = capsys.readouterr().err
    assert str(run_dir / "run.json") in " ".join(note.split())
    with pytest.raises(SRBenchError, match=r"run\.json: torn or damaged .*delete it and run"):
        next(iter_zoo(zoo.runs[:1], output_dir=tmp_path))


# -- with the benchmark data ----------------------------------------------------------------------


@pytest.mark.data
def test_validation_numbers_are_the_runners(tmp_path, data_root, images):
    """Validation during training gives exactly what `srbench run --weights` stores."""
    from srbench.runner import RunConfig, run
    from srbench.sources import benchmark_source

    recipe = tiny_recipe(
        model="srcnn_915",
        model_overrides={},
        iterations=6,
        validation={"datasets": ["set5"], "interval": 0, "at_end": True},
    )
    result = train(recipe, output_dir=tmp_path, images=images, data_root=data_root)
    val = result["validations"][-1]["results"]["set5"]
    records = run(
        RunConfig(
            models=["srcnn_915"],
            datasets=["set5"],
            scales=[2],
            data_root=data_root,
            weights={("srcnn_915", 2): result["weights_path"]},
            results_dir=tmp_path / "results",
            # the validation's thread count: an fp32 forward may differ by an ulp between counts
            threads=torch.get_num_threads(),
        ),
        [benchmark_source("set5", data_root)],
    )
    assert len(records) == 5
    assert np.mean([r["psnr_db"] for r in records]) == pytest.approx(val["psnr_db"], abs=1e-12)
    assert np.mean([r["ssim"] for r in records]) == pytest.approx(val["ssim"], abs=1e-12)


@pytest.mark.data
def test_ablation_writes_tagged_records(tmp_path, data_root, images):
    spec = spec_from_dict(
        {
            "name": "tiny",
            "recipe": tiny_recipe(iterations=4).to_dict(),
            "model": "drn_s",
            "recipe_overrides": {"model_overrides": TINY_DRN},
            "evaluate": {"datasets": ["set5"]},
            "variants": [{"name": "base"}, {"name": "relu", "overrides": {"activation": "relu"}}],
        },
        "tiny.yaml",
    )
    kwargs = dict(
        data_root=data_root,
        output_dir=tmp_path / "runs",
        results_dir=tmp_path / "results",
        images=images,
    )
    events = list(iter_ablate(spec, **kwargs))
    done = events[-1].info
    assert [r["variant"] for r in done["rows"]] == ["base", "relu"]
    records = ResultStore(tmp_path / "results").iter_records()
    assert len(records) == 10
    assert {(r["ablation"], r["variant"]) for r in records} == {("tiny", "base"), ("tiny", "relu")}
    assert {r["params"] for r in records} == {done["rows"][0]["params"]}
    relu = [r for r in records if r["variant"] == "relu"]
    assert relu[0]["model_overrides"]["activation"] == "relu"
    assert all(r["protocol"] == "standard" and r["dataset"] == "set5" for r in records)
    # Re-running skips what is done: no new training, no new records.
    again = [e.kind for e in iter_ablate(spec, **kwargs)]
    assert "train" not in again and again.count("variant-skip") == 2
    assert len(ResultStore(tmp_path / "results").iter_records()) == 10
