"""The runner: benchmark spec -> images -> model -> metrics -> result store.

There are no per-model special cases here: what a model takes (Y or RGB) comes from its card, and
the protocol turns an HR image into that input and scores the output.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srbench.codehash import model_code_sha256
from srbench.crops import CropStore
from srbench.data import (
    BenchmarkSpec,
    HRImage,
    check_benchmark_folder,
    get_benchmark,
    load_hr,
    pixels_sha256,
)
from srbench.devices import resolve_device
from srbench.errors import SRBenchError
from srbench.evaluation import evaluate_image
from srbench.files import atomic_path, atomic_write
from srbench.inference import memory_format, memory_format_name, tile_overlap
from srbench.protocols import (
    LRCache,
    Protocol,
    get_protocol,
    prepare,
    preview_rgb,
    unfed_metrics,
)
from srbench.provenance import environment, record_provenance
from srbench.registry import ModelRef, create_model, resolve
from srbench.results import Claims, ResultStore
from srbench.schema import SCORER_VERSION, record_key, tiling_label
from srbench.threads import ThreadPolicy, restored_threads

DEMO_IMAGES = ("astronaut", "camera", "chelsea", "coffee", "rocket")
DEMO_NOTICE = (
    "demo set: 5 photographs shipped with scikit-image -- NOT a standard benchmark; its numbers "
    "are not comparable with any paper. Put Set5/Set14/B100/Urban100/Manga109 under --data-root "
    "or $SRBENCH_DATA (see `srbench data list`) for real results."
)


@dataclass
class DatasetSource:
    """A named list of HR images: a verified benchmark or the built-in demo set."""

    key: str
    fingerprint: str
    names: list[str]
    loader: Callable[[str], HRImage]
    is_standard: bool
    visual_images: tuple[str, ...] = ()  # crops of these are stored for the report


def demo_source() -> DatasetSource:
    import skimage.data

    def load(name: str) -> HRImage:
        pixels = np.ascontiguousarray(getattr(skimage.data, name)())
        return HRImage("demo", name, pixels, pixels_sha256(pixels), None)

    from importlib.metadata import version

    return DatasetSource(
        "demo",
        f"skimage-{version('scikit-image')}",
        list(DEMO_IMAGES),
        load,
        is_standard=False,
        visual_images=("astronaut",),
    )


class _DecodedImages:
    """The decoded, verified HR images of one source, kept up to ``max_bytes``: a run visits
    every image once per model and scale, and decoding plus fingerprinting a large lossless
    image costs more than scoring it."""

    def __init__(self, load: Callable[[str], HRImage], max_bytes: int = 1 << 30):
        self.load, self.max_bytes, self.nbytes = load, max_bytes, 0
        self.images: dict[str, HRImage] = {}

    def __call__(self, name: str) -> HRImage:
        image = self.images.get(name)
        if image is None:
            image = self.load(name)
            if self.nbytes + image.pixels.nbytes <= self.max_bytes:
                self.images[name] = image
                self.nbytes += image.pixels.nbytes
        return image


def benchmark_source(key: str, root: Path, *, verify: bool = True) -> DatasetSource:
    spec: BenchmarkSpec = get_benchmark(key)
    check_benchmark_folder(spec, root)
    by_name = {image.name: image for image in spec.images}
    return DatasetSource(
        spec.key,
        spec.fingerprint,
        list(by_name),
        _DecodedImages(lambda name: load_hr(spec, root, by_name[name], verify=verify)),
        is_standard=verify,
        visual_images=spec.visual_images,
    )


@dataclass
class RunConfig:
    models: Sequence[str]
    datasets: Sequence[str]
    scales: Sequence[int]
    protocol: str = "standard"
    data_root: Path | None = None
    weights: dict[tuple[str, int], Path] = field(default_factory=dict)
    # The --weights files and folders as named (``weights`` is their index): each must be used.
    weights_named: Sequence[Path] = ()
    # With --weights: results stored as MODEL.TAG (``fsrcnn.mine``), so that two weight files
    # of one model are told apart by a name the user chose, not only by their hashes.
    weights_tag: str | None = None
    device: str = "cpu"
    ensemble: bool = False
    tile: int | None = None
    tile_overlap: int | None = None  # None: the model's receptive radius (smaller is refused)
    verify: bool = True
    results_dir: Path = Path("results")
    force: bool = False
    seed: int = 0
    cache_lr: bool = True
    allow_random_weights: bool = False
    save_images: Path | None = None  # folder for SR PNGs (<model>/x<scale>/<dataset>/<image>.png)
    crops: bool = True  # store the visual-comparison crops of each source's visual images
    count_costs: bool = True  # add params/MACs records to profile.jsonl where it has none
    threads: int | None = None  # torch threads; None: as many as cores are idle (srbench.threads)
    # The default run (no --models): a model x scale srbench ships no weights for is skipped
    # (and said so) instead of being an error.
    skip_missing_weights: bool = False

    def __post_init__(self) -> None:
        # A name, scale or dataset given twice is one request (never two computations).
        self.models = list(dict.fromkeys(self.models))
        self.datasets = list(dict.fromkeys(self.datasets))
        self.scales = list(dict.fromkeys(int(s) for s in self.scales))


@dataclass
class RunEvent:
    """What the runner tells its caller (the CLI draws progress bars from these)."""

    kind: str  # "start", "image", "skip", "tiled", "done"
    model: str
    scale: int
    dataset: str
    total: int = 0
    image: str = ""
    message: str = ""
    record: dict | None = None
    key: tuple | None = None  # the store key of the image's result (image and skip events)


def _weights_for(config: RunConfig, model: str, scale: int) -> Path | bool:
    if (model, scale) in config.weights:
        return config.weights[(model, scale)]
    other = sorted((s, p) for (m, s), p in config.weights.items() if m == model)
    if other:
        given = ", ".join(f"x{s} ({p})" for s, p in other)
        raise SRBenchError(
            f"the weights given for {model} are for {given}, not x{scale}; pass x{scale} weights "
            f"or drop x{scale} from --scales"
        )
    return False


def _check_named_weights(config: RunConfig) -> None:
    """Refuse a run that would not use a weights file or folder the user named."""
    from srbench.weights import unused_weights

    cards = [resolve(m).card for m in config.models]
    wanted = {(c.name, s) for c in cards for s in config.scales if s in c.scales}
    problem = unused_weights(config.weights_named, config.weights, wanted)
    if problem:
        raise SRBenchError(problem)


def stored_name(ref: ModelRef, scale: int, weights_sha256: str) -> str:
    """The name a result is stored under: ``idn`` (srbench's weights or the user's own) or
    ``idn.official`` -- also when the authors' file was passed with ``--weights``, because the
    file, not the flag, decides whose weights they are."""
    if ref.budget:  # a ladder checkpoint: exactly the file recorded for that tag
        pinned = ref.weights.get(scale)
        if pinned is None or pinned.sha256 != weights_sha256:
            raise SRBenchError(
                f"{ref.key} x{scale}: the weights given (sha256 {weights_sha256[:12]}...) are "
                f"not the recorded {ref.tag} checkpoint "
                f"({pinned.sha256[:12] + '...' if pinned else 'none recorded'}); run them as "
                f"{ref.card.name} with --weights, or record the ladder run (`srbench ladder record`)"
            )
        return ref.key
    official = ref.card.official_weights.get(scale)
    if ref.tag and (official is None or official.sha256 != weights_sha256):
        raise SRBenchError(
            f"{ref.key} x{scale}: the weights given (sha256 {weights_sha256[:12]}...) are not the "
            f"authors' (the card pins {official.sha256[:12] if official else 'none'}...); run them "
            f"as {ref.card.name}, or pass the authors' file"
        )
    if ref.tag or (official is not None and official.sha256 == weights_sha256):
        return f"{ref.card.name}.official"
    return ref.card.name


def user_tagged_name(ref: ModelRef, tag: str, key: str) -> str:
    """``fsrcnn`` + ``mine`` -> ``fsrcnn.mine``: the user's own name for their weights file; the
    names srbench gives (``official``, ``zoo4k``) are the files' own and cannot be re-tagged."""
    from srbench.registry import WEIGHT_TAGS, budget_of

    clean = tag.strip().lower().replace("-", "_")
    if not re.fullmatch(r"[a-z0-9_]+", clean) or clean in WEIGHT_TAGS or budget_of(clean):
        raise SRBenchError(
            f"--tag {tag!r}: a tag is letters, digits and '_' (e.g. mine, run2), and not "
            "'official' or a budget tag (zoo<N>k), which srbench gives itself"
        )
    if key != ref.card.name:
        raise SRBenchError(
            f"--tag {tag!r}: the weights given for {ref.card.name} are {key}; they keep that "
            "name: drop --tag"
        )
    return f"{ref.card.name}.{clean}"


def iter_run(config: RunConfig, sources: list[DatasetSource]) -> Iterator[RunEvent]:
    """Run every (model, scale, dataset, image); yields events and appends records to the store.

    NumPy's BLAS pool is held to one thread meanwhile: after the NumPy ``imresize`` its idle
    OpenBLAS threads keep spinning and slow the torch SSIM that follows about 8-fold on a 2-core
    machine (``benchmarks/test_bench_threads.py``). torch's pool gets ``config.threads``, or as
    many threads as the machine has idle cores (:class:`srbench.threads.ThreadPolicy`); the count
    is restored afterwards.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), restored_threads():
        yield from _iter_run(config, sources)


def _iter_run(config: RunConfig, sources: list[DatasetSource]) -> Iterator[RunEvent]:
    protocol: Protocol = get_protocol(config.protocol)
    _check_named_weights(config)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    env = environment(device)
    layout = memory_format(device)
    run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    store = ResultStore(config.results_dir)
    seen = store.signature()
    done = set() if config.force else store.keys()
    claims = Claims(config.results_dir)
    crops = CropStore(config.results_dir)
    cropped = crops.keys() if config.crops else set()
    cache = LRCache(enabled=config.cache_lr)
    precision = "fp32"
    threads = ThreadPolicy(config.threads)
    for message in unfed_metrics(protocol):  # skipped and said, not an error
        yield RunEvent("note", "", 0, "", message=message)

    for model_name in config.models:
        ref = resolve(model_name)
        card = ref.card
        try:
            protocol.check_model(card.input_channels)
        except SRBenchError as exc:
            raise SRBenchError(f"model {card.name}: {exc}") from None
        for scale in config.scales:
            weights = _weights_for(config, card.name, scale)
            no_weights = weights is False and card.trainable and scale not in ref.weights
            if no_weights and config.skip_missing_weights:
                yield RunEvent(
                    "no-weights",
                    ref.key,
                    scale,
                    "",
                    message=f"{ref.key} x{scale}: no shipped weights yet; skipped",
                )
                continue
            if weights is False and card.trainable and (ref.weights or ref.tag):
                weights = True  # the weights the name selects: shipped zoo or the authors'
                if config.weights_named:  # said, since the user named weights for others
                    yield RunEvent(
                        "note", ref.key, scale, "",
                        message=f"{ref.key} x{scale}: --weights has none for it; using "
                        f"{'the authors' if ref.tag else 'the shipped'} weights",
                    )  # fmt: skip
            model = create_model(ref.key, scale=scale, pretrained=weights)
            model = model.to(device).to(memory_format=layout).eval()
            weights_sha: str = getattr(model, "srbench_weights_sha256", None) or (
                "none" if not any(True for _ in model.parameters()) else "random-init"
            )
            if weights_sha == "random-init" and not config.allow_random_weights:
                raise SRBenchError(
                    f"model {card.name} x{scale} has no weights: srbench ships none for this "
                    "scale; pass --weights FILE (see `srbench weights convert`) -- random weights "
                    "give meaningless numbers"
                )
            key = stored_name(ref, scale, weights_sha)
            if config.weights_tag and isinstance(weights, Path):
                key = user_tagged_name(ref, config.weights_tag, key)
            overlap = config.tile_overlap
            if config.tile:  # refused here, before any image, when it would change numbers
                channels = 1 if card.input_channels == "y" else 3
                overlap = tile_overlap(model, scale, channels, overlap, f"{key} x{scale}")
            code_sha = model_code_sha256(card.name)
            if config.count_costs:
                note = _ensure_costs(config.results_dir, card.name, scale)
                if note:
                    yield RunEvent("note", key, scale, "", message=note)
            for source in sources:
                yield RunEvent("start", key, scale, source.key, total=len(source.names))
                queue = list(source.names)
                told = ""
                stored_before = 0  # images taken from the store: --save-images writes none
                while queue:
                    deferred: list[str] = []
                    waiting_for: dict | None = None
                    for name in queue:
                        # The image is read first: its pixel fingerprint is part of the key, so a
                        # result made from other pixels (an unverified copy) is never reused.
                        hr = source.loader(name)
                        base = {
                            "model": key,
                            "weights_sha256": weights_sha,
                            "scale": scale,
                            "dataset": source.key,
                            "image": name,
                            "protocol": protocol.id,
                            "protocol_hash": protocol.hash,
                            "ensemble": config.ensemble,
                            "precision": precision,
                            "hr_sha256": hr.pixels_sha256,
                            "standard_benchmark": source.is_standard,
                            "scorer_version": SCORER_VERSION,
                            "tiling": tiling_label(config.tile, overlap),
                            "code_sha256": code_sha,
                        }
                        wants_crop = (
                            config.crops
                            and name in source.visual_images
                            and record_key(base) not in cropped
                        )
                        label = f"model {key} x{scale} on {source.key}/{name} (weights {weights_sha[:12]})"
                        if record_key(base) in done:
                            if wants_crop:  # stored before crops were: make only the crop
                                threads.update()
                                prepared = prepare(protocol, hr, scale, card.input_channels, cache)
                                result = evaluate_image(
                                    model, prepared, protocol, device, tile=config.tile,
                                    overlap=overlap, ensemble=config.ensemble,
                                    label=label,
                                )  # fmt: skip
                                crops.save(base, hr, prepared, result.scored, protocol)
                                cropped.add(record_key(base))
                            stored_before += 1
                            yield RunEvent(
                                "skip", key, scale, source.key, image=name, key=record_key(base)
                            )
                            continue
                        claim = claims.acquire(record_key(base), what=label)
                        if claim is None:  # an identical run is computing it now
                            deferred.append(name)
                            waiting_for = waiting_for or claims.holder(record_key(base))
                            continue
                        if not config.force and store.changed_since(seen):
                            # Another run may have stored it since this one started.
                            seen = store.signature()
                            done = store.keys()
                            if record_key(base) in done:
                                claims.release(claim)
                                stored_before += 1
                                yield RunEvent(
                                    "skip", key, scale, source.key, image=name,
                                    key=record_key(base),
                                )  # fmt: skip
                                continue
                        try:
                            threads.update()
                            prepared = prepare(protocol, hr, scale, card.input_channels, cache)
                            while cache.rebuilt:
                                message = cache.rebuilt.pop(0)
                                yield RunEvent(
                                    "note", key, scale, source.key, image=name, message=message
                                )
                            result = evaluate_image(
                                model, prepared, protocol, device, tile=config.tile,
                                overlap=overlap, ensemble=config.ensemble,
                                label=label,
                            )  # fmt: skip
                            report, scored, latency_ms = (
                                result.report,
                                result.scored,
                                result.wall_ms,
                            )
                            if report.tiled and report.reason != "requested":
                                yield RunEvent(
                                    "tiled",
                                    key,
                                    scale,
                                    source.key,
                                    image=name,
                                    message=f"{name}: {report.reason}; used {report.tile_size}px tiles",
                                )
                            if config.save_images is not None:
                                _save_png(
                                    preview_rgb(protocol, scored, prepared),
                                    Path(config.save_images) / key / f"x{scale}" / source.key,
                                    name,
                                )
                            record = {
                                **base,
                                **scored.metrics,
                                # Wall time of this one forward pass, no warm-up: for orientation only;
                                # `srbench profile` makes the latency numbers to compare.
                                "wall_ms": latency_ms,
                                "tiled": report.tiled,
                                "tile_size": report.tile_size,
                                "tile_overlap": report.overlap,
                                "memory_format": memory_format_name(layout),
                                "dataset_fingerprint": source.fingerprint,
                                **record_provenance(
                                    env, device, run_id, config.seed, threads.provenance()
                                ),
                            }
                            after = store.append([record], unchanged_since=seen)
                            if after is not None:  # nobody else wrote: no re-read needed
                                seen = after
                            if wants_crop:
                                crops.save(base, hr, prepared, scored, protocol)
                                cropped.add(record_key(base))
                            yield RunEvent(
                                    "image", key, scale, source.key, image=name, record=record,
                                    key=record_key(base),
                                )  # fmt: skip

                        finally:
                            claims.release(claim)
                    holder = str((waiting_for or {}).get("pid", "?"))
                    if deferred and holder != told:  # say (once per holder) what it waits for
                        told = holder
                        message = _waiting_message(deferred, waiting_for, config.results_dir)
                        yield RunEvent("note", key, scale, source.key, message=message)
                    if deferred:  # wait for the other run, then take what it stored
                        time.sleep(0.5)
                        done = set() if config.force else store.keys()
                    queue = deferred
                if config.save_images is not None and stored_before:
                    yield RunEvent(
                        "note", key, scale, source.key,
                        message=f"--save-images: {stored_before} of {len(source.names)} "
                        f"{source.key} images of {key} x{scale} were already in the store, so "
                        "they were not computed and no PNG was written for them; add --force to "
                        "compute and save them",
                    )  # fmt: skip
                yield RunEvent("done", key, scale, source.key)


def _waiting_message(deferred: list[str], holder: dict | None, results_dir: Path) -> str:
    who = (
        f"process {holder['pid']} ({holder.get('what') or 'another srbench run'})"
        if holder
        else "another srbench run"
    )
    return (
        f"waiting for {who}, which is computing {len(deferred)} of these images; this run takes "
        f"its results from the store when it is done (its claims: {Path(results_dir) / '.claims'})"
    )


def _ensure_costs(results_dir: Path, model: str, scale: int) -> str:
    """Count the parameters and MACs of ``model`` x``scale`` into ``profile.jsonl`` at every
    default size it has no record for (no timing: `srbench profile` measures latency), so that
    the report and plots read costs from the store; counts made before with the same model code
    come from the user cache (:mod:`srbench.cost_cache`). Returns a note when counting failed."""
    from srbench.cost_cache import cached_counts
    from srbench.data import default_cache_dir
    from srbench.pareto import load_profiles
    from srbench.profiling import DEFAULT_SIZES, parse_size
    from srbench.results import PROFILE_FILE, append_jsonl

    have = {
        r.get("size")
        for r in load_profiles(results_dir)
        if r.get("model") == model and r.get("scale") == scale
    }
    missing = [s for s in DEFAULT_SIZES if parse_size(s).label not in have]
    if not missing:
        return ""
    try:
        records = cached_counts(model, scale, missing, default_cache_dir() / "costs")
    except Exception as exc:  # a plugin the counter cannot trace: its costs stay missing
        return f"{model} x{scale}: parameters/MACs not counted ({type(exc).__name__}: {exc})"
    append_jsonl(Path(results_dir) / PROFILE_FILE, records)
    return ""


def _save_png(pixels: np.ndarray, folder: Path, name: str) -> None:
    from PIL import Image

    with atomic_path(folder / f"{name}.png") as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def write_summary(
    config: RunConfig, sources: list[DatasetSource], keys: list[tuple], new_records: list[dict]
) -> tuple[Any, Path]:
    """The run's results -- exactly the images it computed or found in the store, never other
    weights' or protocols' records under the same name -- averaged per model, scale and dataset,
    and written with their provenance to ``<results_dir>/runs/<run id>.json``."""
    import json

    import pandas as pd

    from srbench.results import summarise

    protocol = get_protocol(config.protocol)
    wanted = set(keys)
    records = [
        r for r in ResultStore(config.results_dir).latest_records() if record_key(r) in wanted
    ]
    if not records:
        raise SRBenchError("no results were produced")
    summary = summarise(pd.DataFrame.from_records(records))
    run_summary = {
        "protocol": {"id": protocol.id, "hash": protocol.hash, "definition": protocol.definition},
        "datasets": {
            s.key: {"fingerprint": s.fingerprint, "standard": s.is_standard} for s in sources
        },
        "environment": environment(resolve_device(config.device)),
        "new_records": len(new_records),
        "summary": json.loads(summary.to_json(orient="records")),
    }
    name = new_records[0]["run_id"] if new_records else "resumed-" + protocol.id
    path = Path(config.results_dir) / "runs" / f"{name}.json"
    atomic_write(path, json.dumps(run_summary, indent=1) + "\n")
    return summary, path


def run(config: RunConfig, sources: list[DatasetSource]) -> list[dict]:
    """Run to completion; returns the records written (not the skipped ones)."""
    return [e.record for e in iter_run(config, sources) if e.kind == "image" and e.record]
