"""The runner: benchmark spec -> images -> model -> metrics -> result store.

There are no per-model special cases here: what a model takes (Y or RGB) comes from its card, and
the protocol turns an HR image into that input and scores the output.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srbench.codehash import model_code_sha256
from srbench.crops import CropStore
from srbench.data import HRImage
from srbench.devices import resolve_device
from srbench.errors import SRBenchError
from srbench.evaluation import (
    Evaluand,
    ImageResult,
    RecordContext,
    evaluate_image,
    key_fields,
    new_run_id,
    result_record,
)
from srbench.files import atomic_path, atomic_write
from srbench.inference import memory_format, tile_overlap
from srbench.precision import EVALUATION_PRECISION, inference_precision
from srbench.protocols import (
    LRCache,
    Prepared,
    Protocol,
    get_protocol,
    prepare,
    preview_rgb,
    unfed_metrics,
)
from srbench.provenance import environment
from srbench.registry import ModelRef, create_model, resolve
from srbench.results import Claims, ResultStore
from srbench.schema import record_key
from srbench.sources import DatasetSource
from srbench.threads import ThreadPolicy, restored_threads


@dataclass
class RunConfig:
    """What to run and how. ``models`` and ``protocol`` are the parsed objects; names given
    instead (library callers, tests) are resolved here, once."""

    models: Sequence[ModelRef]
    datasets: Sequence[str]
    scales: Sequence[int]
    protocol: Protocol = field(default_factory=lambda: get_protocol("standard"))
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
        # A name, scale or dataset given twice is one request (never two computations); an
        # alias and its target are one model.
        refs = [m if isinstance(m, ModelRef) else resolve(m) for m in self.models]
        self.models = list({ref.key: ref for ref in refs}.values())
        if isinstance(self.protocol, str):
            self.protocol = get_protocol(self.protocol)
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

    cards = [ref.card for ref in config.models]
    wanted = {(c.name, s) for c in cards for s in config.scales if s in c.scales}
    problem = unused_weights(config.weights_named, config.weights, wanted)
    if problem:
        raise SRBenchError(problem)


def stored_name(ref: ModelRef, scale: int, weights_sha256: str) -> str:
    """The name a result is stored under: ``idn`` (srbench's weights or the user's own),
    ``idn.official``, or a budget tag's name (``drn_s.zoo1k_cosine``, ``drn_s.zoo4k``) -- also
    when that file was passed with ``--weights`` under the plain name, because the file, not
    the flag, decides whose weights they are."""
    if ref.budgeted:  # a ladder checkpoint or a replaced zoo file: exactly the recorded file
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
    from srbench.pretrained import recorded_tag

    tag = recorded_tag(ref.card.name, scale, weights_sha256)  # zoo1k_cosine: the replaced file
    return f"{ref.card.name}.{tag}" if tag else ref.card.name


def user_tagged_name(ref: ModelRef, tag: str, key: str) -> str:
    """``fsrcnn`` + ``mine`` -> ``fsrcnn.mine``: the user's own name for their weights file; the
    names srbench gives (``official``, ``zoo4k``) are the files' own and cannot be re-tagged."""
    from srbench.registry import WEIGHT_TAGS, is_budget_tag

    clean = tag.strip().lower().replace("-", "_")
    if not re.fullmatch(r"[a-z0-9_]+", clean) or clean in WEIGHT_TAGS or is_budget_tag(clean):
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
    with quiet_blas(), restored_threads():
        yield from _iter_run(config, sources)


@contextlib.contextmanager
def quiet_blas() -> Iterator[None]:
    """NumPy's BLAS pool held to one thread (see :func:`iter_run`)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _iter_run(config: RunConfig, sources: list[DatasetSource]) -> Iterator[RunEvent]:
    _check_named_weights(config)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    session = Session(config, device)
    for message in unfed_metrics(config.protocol):  # skipped and said, not an error
        yield RunEvent("note", "", 0, "", message=message)
    for ref in config.models:
        try:
            config.protocol.check_model(ref.card.input_channels)
        except SRBenchError as exc:
            raise SRBenchError(f"model {ref.card.name}: {exc}") from None
        for scale in config.scales:
            job = yield from _model_job(config, ref, scale, device)
            if job is None:
                continue
            if config.count_costs:
                note = _ensure_costs(config.results_dir, ref.card.name, scale)
                if note:
                    yield RunEvent("note", job.key, scale, "", message=note)
            yield from iter_model(job, sources, session)


def _model_job(
    config: RunConfig, ref: ModelRef, scale: int, device: torch.device
) -> Generator[RunEvent, None, Evaluand | None]:
    """``ref`` x``scale`` built with its weights, and the name its results are stored under;
    None (said in an event) when the default run has no weights for it."""
    card = ref.card
    weights = _weights_for(config, card.name, scale)
    no_weights = weights is False and card.trainable and scale not in ref.weights
    if no_weights and config.skip_missing_weights:
        message = f"{ref.key} x{scale}: no shipped weights yet; skipped"
        yield RunEvent("no-weights", ref.key, scale, "", message=message)
        return None
    if weights is False and card.trainable and (ref.weights or ref.tag):
        weights = True  # the weights the name selects: shipped zoo or the authors'
        if config.weights_named:  # said, since the user named weights for others
            yield RunEvent(
                "note", ref.key, scale, "",
                message=f"{ref.key} x{scale}: --weights has none for it; using "
                f"{'the authors' if ref.tag else 'the shipped'} weights",
            )  # fmt: skip
    model = create_model(ref, scale=scale, pretrained=weights)
    model = model.to(device).to(memory_format=memory_format(device)).eval()
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
    return Evaluand(
        model, key, card, scale, weights_sha, model_code_sha256(card.name), tile_overlap=overlap
    )


class Session:
    """What the models of one run share: the record context (protocol, inference variant,
    provenance, run id), the LR cache and, when results are stored, the store, the claims, the
    crops and the thread policy.

    ``stored=False`` (training validation): nothing is read from or written to a store, torch's
    thread count is left alone, and each image's model input is made once and kept, as the same
    images are scored again at every validation.
    """

    def __init__(self, config: RunConfig, device: torch.device, *, stored: bool = True) -> None:
        self.config = config
        # first: its load window opens now and the rest of the set-up overlaps it
        self.threads = ThreadPolicy(config.threads) if stored else None
        self.record = RecordContext(
            config.protocol, device, environment(device), new_run_id(),
            precision=inference_precision(EVALUATION_PRECISION, device).name,
            seed=config.seed, ensemble=config.ensemble, tile=config.tile,
        )  # fmt: skip
        self.cache = LRCache(enabled=config.cache_lr)
        self.prepared: dict[tuple, Prepared] | None = None if stored else {}
        self.store = ResultStore(config.results_dir) if stored else None
        self.claims = Claims(config.results_dir) if stored else None
        self.crops = CropStore(config.results_dir) if stored and config.crops else None
        self.cropped = self.crops.keys() if self.crops is not None else set()
        self.seen = self.store.signature() if self.store is not None else (0, 0)
        self.done = self.store.keys() if self.store is not None and not config.force else set()

    def prepare(self, job: Evaluand, hr: HRImage) -> Prepared:
        if self.threads is not None:
            self.threads.update()
        memo = (hr.dataset, hr.name, hr.pixels_sha256, job.scale, job.card.input_channels)
        if self.prepared is not None and memo in self.prepared:
            return self.prepared[memo]
        prepared = prepare(self.config.protocol, hr, job.scale, job.card.input_channels, self.cache)
        if self.prepared is not None:
            self.prepared[memo] = prepared
        return prepared

    def evaluate(self, job: Evaluand, prepared: Prepared, label: str) -> ImageResult:
        return evaluate_image(
            job.model, prepared, self.config.protocol, self.record.device, tile=self.config.tile,
            overlap=job.tile_overlap, ensemble=self.config.ensemble, label=label,
        )  # fmt: skip

    def stored_since(self, key: tuple) -> bool:
        """Whether another run stored ``key`` since this one last looked."""
        if self.store is None or self.config.force or not self.store.changed_since(self.seen):
            return False
        self.seen = self.store.signature()
        self.done = self.store.keys()
        return key in self.done

    def append(self, record: dict) -> None:
        if self.store is None:
            return
        # Written at once (a killed run keeps it), fsync-ed once per dataset by sync().
        after = self.store.append([record], unchanged_since=self.seen, durable=False)
        if after is not None:  # nobody else wrote: no re-read needed
            self.seen = after

    def sync(self) -> None:
        if self.store is not None:
            self.store.sync()

    def save_crop(self, base: dict, hr: HRImage, prepared: Prepared, scored) -> None:
        assert self.crops is not None
        self.crops.save(base, hr, prepared, scored, self.config.protocol)
        self.cropped.add(record_key(base))


def iter_model(job: Evaluand, sources: list[DatasetSource], session: Session) -> Iterator[RunEvent]:
    """Score ``job`` on every image of ``sources``: the one per-image loop of `srbench run`,
    ablations and training validation. With a store, results already in it are skipped (their
    crop made if missing), an image another run is computing waits for it (claims), and each
    new record is appended as soon as it is made (so a killed run loses nothing it reported) and
    made durable against a power cut once per dataset; ``image`` events carry the records."""
    for source in sources:
        yield RunEvent("start", job.key, job.scale, source.key, total=len(source.names))
        try:
            yield from _iter_source(job, source, session)
        finally:
            session.sync()
        yield RunEvent("done", job.key, job.scale, source.key)


def _iter_source(job: Evaluand, source: DatasetSource, session: Session) -> Iterator[RunEvent]:
    config, key, scale = session.config, job.key, job.scale
    queue = list(source.names)
    told = ""
    stored_before = 0  # images taken from the store: --save-images writes none
    while queue:
        deferred: list[str] = []
        waiting_for: dict | None = None
        for name in queue:
            # The image is read first: its pixel fingerprint is part of the key, so a result
            # made from other pixels (an unverified copy) is never reused.
            hr = source.loader(name)
            base = key_fields(
                job, session.record, dataset=source.key, image=name,
                hr_sha256=hr.pixels_sha256, standard=source.is_standard,
            )  # fmt: skip
            record_id = record_key(base)
            wants_crop = session.crops is not None and name in source.visual_images
            wants_crop = wants_crop and record_id not in session.cropped
            label = (
                f"model {key} x{scale} on {source.key}/{name} (weights {job.weights_sha256[:12]})"
            )
            if record_id in session.done:
                if wants_crop:  # stored before crops were: make only the crop
                    prepared = session.prepare(job, hr)
                    scored = session.evaluate(job, prepared, label).scored
                    session.save_crop(base, hr, prepared, scored)
                stored_before += 1
                yield RunEvent("skip", key, scale, source.key, image=name, key=record_id)
                continue
            claim = session.claims.acquire(record_id, what=label) if session.claims else None
            if session.claims is not None and claim is None:  # an identical run computes it now
                deferred.append(name)
                waiting_for = waiting_for or session.claims.holder(record_id)
                continue
            try:
                if session.stored_since(record_id):  # another run stored it since this began
                    stored_before += 1
                    yield RunEvent("skip", key, scale, source.key, image=name, key=record_id)
                    continue
                yield from _score_image(job, source, hr, name, base, label, wants_crop, session)
            finally:
                Claims.release(claim)
        holder = str((waiting_for or {}).get("pid", "?"))
        if deferred and holder != told:  # say (once per holder) what it waits for
            told = holder
            message = _waiting_message(deferred, waiting_for, config.results_dir)
            yield RunEvent("note", key, scale, source.key, message=message)
        if deferred and session.store is not None:  # wait for the other run, take its results
            time.sleep(0.5)
            session.done = set() if config.force else session.store.keys()
        queue = deferred
    if config.save_images is not None and stored_before:
        yield RunEvent(
            "note", key, scale, source.key,
            message=f"--save-images: {stored_before} of {len(source.names)} {source.key} "
            f"images of {key} x{scale} were already in the store, so they were not computed "
            "and no PNG was written for them; add --force to compute and save them",
        )  # fmt: skip


def _score_image(
    job: Evaluand,
    source: DatasetSource,
    hr: HRImage,
    name: str,
    base: dict,
    label: str,
    wants_crop: bool,
    session: Session,
) -> Iterator[RunEvent]:
    """Compute, store and announce one image's result."""
    key, scale = job.key, job.scale
    prepared = session.prepare(job, hr)
    while session.cache.rebuilt:
        message = session.cache.rebuilt.pop(0)
        yield RunEvent("note", key, scale, source.key, image=name, message=message)
    result = session.evaluate(job, prepared, label)
    report = result.report
    if report.tiled and report.reason != "requested":
        yield RunEvent(
            "tiled", key, scale, source.key, image=name,
            message=f"{name}: {report.reason}; used {report.tile_size}px tiles",
        )  # fmt: skip
    if session.config.save_images is not None:
        _save_png(
            preview_rgb(session.config.protocol, result.scored, prepared),
            Path(session.config.save_images) / key / f"x{scale}" / source.key,
            name,
        )
    threads = session.threads.provenance() if session.threads is not None else None
    record = result_record(
        job, session.record, base, result, fingerprint=source.fingerprint, threads=threads
    )
    session.append(record)
    if wants_crop:
        session.save_crop(base, hr, prepared, result.scored)
    yield RunEvent("image", key, scale, source.key, image=name, record=record, key=record_key(base))


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
    default size it has no record of the code as it is now for (``cost_key``: model and counting
    code; no timing: `srbench profile` measures latency), so that the report and plots read
    current costs from the store; counts made before with the same code come from the user
    cache (:mod:`srbench.cost_cache`). Returns a note when counting failed."""
    from srbench.cost_cache import cached_counts, cost_key
    from srbench.data import default_cache_dir
    from srbench.pareto import load_profiles
    from srbench.profiling import DEFAULT_SIZES, parse_size
    from srbench.results import PROFILE_FILE, append_jsonl

    try:
        current = {parse_size(s).label: cost_key(model, scale, s) for s in DEFAULT_SIZES}
        have = {
            r.get("size")
            for r in load_profiles(results_dir)
            if r.get("model") == model and r.get("scale") == scale
            and r.get("cost_key") == current.get(str(r.get("size")))
        }  # fmt: skip
        missing = [s for s in DEFAULT_SIZES if parse_size(s).label not in have]
        if not missing:
            return ""
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
    and written with their provenance to ``<results_dir>/runs/<run id>.json`` (a run that
    computed nothing new: a fresh run id, so that no summary is overwritten)."""
    import json

    import pandas as pd

    from srbench.results import summarise

    protocol = config.protocol
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
    name = new_records[0]["run_id"] if new_records else new_run_id()
    path = Path(config.results_dir) / "runs" / f"{name}.json"
    atomic_write(path, json.dumps(run_summary, indent=1) + "\n")
    return summary, path


def run(config: RunConfig, sources: list[DatasetSource]) -> list[dict]:
    """Run to completion; returns the records written (not the skipped ones)."""
    return [e.record for e in iter_run(config, sources) if e.kind == "image" and e.record]
