"""Shipping the budget ladder: each (model, scale)'s top finished rung becomes the plain name.

:func:`ship` takes, for every model and scale of a ladder spec, the highest finished rung of
seed 0 (recorded in ``srbench/pretrained/ladder.json`` by ``srbench ladder record``), writes the
spec's chosen weights (``weights: raw``) as float16 to ``<package>/<model>_x<scale>.safetensors``
and pins it in ``shipped.json`` (``recipe: ladder``, its budget tag, iterations, seed, time,
machine, precision), so that ``drn_s`` and its aliases run it with no flag. The zoo row it
replaces moves to ``ladder.json`` under the zoo's own tag (``zoo1k_cosine``) with the replaced
file's git blob id: results of that file then stay told apart (:func:`srbench.results.
migrate_record` renames them; ``tools/migrate_store.py`` rewrites a store), and the file can be
taken back from git history. Scales the ladder has not trained keep their zoo rows.

Shipping again changes nothing (byte-identical manifests and files). Everything is checked
before the package is touched: a rung that is not the top finished one, a rung not recorded
(or whose file changed since), and a package over :data:`SHIPPED_LIMIT_BYTES` are refused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from srbench.errors import SRBenchError
from srbench.files import atomic_path, atomic_write, read_json_object
from srbench.training.ladder import WEIGHTS_KINDS, Ladder, LadderRun, write_tag_manifest
from srbench.training.zoo import run_status

_FIX = "restore it with `git checkout -- srbench/pretrained/`"


def git_blob_id(path: Path) -> str:
    """The id git gives these bytes as a blob (``git hash-object``): ``git cat-file blob ID``
    gives the file back from any clone that has the commit that held it."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def top_rungs(
    ladder: Ladder,
    output_dir: Path,
    models: Sequence[str] | None = None,
    scales: Sequence[int] | None = None,
) -> dict[tuple[str, int], LadderRun | None]:
    """(model, scale) -> the highest finished seed-0 rung in ``output_dir`` (None: none yet),
    for the spec's models (or ``models``, names or aliases, each one the spec lists) and
    scales (or ``scales``, each one the spec trains)."""
    from srbench.registry import get_card

    seed0 = [r for r in ladder.runs if r.seed == 0]
    listed = {r.model for r in seed0}
    wanted = {get_card(m).name for m in models} if models else listed
    if wanted - listed:
        raise SRBenchError(
            f"{', '.join(sorted(wanted - listed))}: not in {ladder.source} at seed 0 "
            f"(it trains: {', '.join(sorted(listed))})"
        )
    trained = {r.recipe.scale for r in seed0 if r.model in wanted}
    if scales and set(scales) - trained:
        raise SRBenchError(
            f"x{', x'.join(map(str, sorted(set(scales) - trained)))}: {ladder.source} trains "
            f"{', '.join(sorted(wanted))} at x{', x'.join(map(str, sorted(trained)))} only"
        )
    out: dict[tuple[str, int], LadderRun | None] = {}
    for run in sorted(seed0, key=lambda r: (r.model, r.recipe.scale, r.rung)):
        if run.model in wanted and (not scales or run.recipe.scale in scales):
            key = (run.model, run.recipe.scale)
            out.setdefault(key, None)
            if run_status(run, output_dir)["state"] == "finished":
                out[key] = run
    return out


def _recorded_row(run: LadderRun, tags: dict, output_dir: Path, weights: str) -> dict[str, Any]:
    """The ladder.json row of ``run``, checked against its run folder's file."""
    from srbench.registry import budget_tag
    from srbench.weights import file_sha256

    tag = budget_tag(run.rung, run.seed)
    row = tags.get(run.model, {}).get(tag, {}).get(str(run.recipe.scale))
    record = f"record it first: `srbench ladder record --output-dir {output_dir}`"
    if row is None or row["run"] != run.name:
        raise SRBenchError(f"{run.model}.{tag} x{run.recipe.scale}: {run.name} is not recorded; "
                           f"{record}")  # fmt: skip
    if row["weights"] != weights:
        raise SRBenchError(
            f"{run.model}.{tag} x{run.recipe.scale}: recorded with its {row['weights']} weights, "
            f"the ladder spec ships {weights}; {record}"
        )
    file = output_dir / run.name / WEIGHTS_KINDS[weights]
    if not file.is_file() or file_sha256(file) != row["sha256"]:
        raise SRBenchError(
            f"{file}: missing or not the recorded checkpoint (sha256 {row['sha256'][:12]}...); "
            f"{record}"
        )
    return row


def _retire(model: str, scale: int, old: dict, tags: dict, pkg: Path) -> str | None:
    """Move the shipped row ``old`` that a ladder rung replaces into ``tags`` under its own
    budget tag (the zoo's ``zoo1k_cosine``); None when it is already the ladder's."""
    if old.get("recipe") == "ladder":
        return None
    from srbench.weights import file_sha256

    file = pkg / old["file"]
    if not file.is_file() or file_sha256(file) != old["sha256"]:  # e.g. a ship cut short
        raise SRBenchError(f"{file}: missing or not the file shipped.json pins; {_FIX}")
    tag = old["tag"]
    keep = {k: v for k, v in old.items() if k not in ("file", "tag")}
    retired = {"file": f"{Path(old['file']).stem}.{tag}.safetensors", **keep,
               "git_blob": git_blob_id(file)}  # fmt: skip
    by_scale = tags.setdefault(model, {}).setdefault(tag, {})
    before = by_scale.get(str(scale))
    if before is not None and before["sha256"] != retired["sha256"]:
        raise SRBenchError(
            f"ladder.json: {model}.{tag} x{scale} already pins another file "
            f"({before['sha256'][:12]}...); {_FIX}"
        )
    by_scale[str(scale)] = retired
    return tag


def ship(
    ladder: Ladder,
    *,
    output_dir: str | Path | None = None,
    package_dir: str | Path | None = None,
    models: Sequence[str] | None = None,
    scales: Sequence[int] | None = None,
    rung: int | None = None,
    limit_bytes: int | None = None,
) -> list[dict[str, Any]]:
    """Ship the top finished seed-0 rung of every (model, scale) of ``ladder`` (or of
    ``models``, at ``scales``) into ``package_dir`` (default: srbench/pretrained); see the module
    docstring. ``rung``: the rung the caller expects to ship; any other top rung is refused. Returns one
    ``{model, scale, tag, run, file, sha256, retired}`` per shipped rung."""
    import torch
    from safetensors.torch import load_file

    from srbench.pretrained import LADDER_MANIFEST, SHIPPED_LIMIT_BYTES, SHIPPED_MANIFEST
    from srbench.registry import budget_tag
    from srbench.training.ladder import ladder_output_dir
    from srbench.weights import save_tensors, shipped_dir

    out = ladder_output_dir(output_dir)
    pkg = Path(package_dir) if package_dir else shipped_dir()
    shipped_path, tags_path = pkg / SHIPPED_MANIFEST.name, pkg / LADDER_MANIFEST.name
    table = read_json_object(shipped_path, _FIX)
    tags = read_json_object(tags_path, _FIX) if tags_path.is_file() else {}
    before = {row["file"] for rows in table.values() for row in rows.values()}
    plans = []
    for (model, scale), run in top_rungs(ladder, out, models, scales).items():
        want = f"{model}.{budget_tag(rung)}" if rung else ""
        if run is None or (rung and run.rung != rung):
            if not rung:
                continue  # nothing finished yet: the zoo row stays
            top = f"{model}.{budget_tag(run.rung)} is" if run else "none is finished"
            raise SRBenchError(
                f"{want} x{scale}: not the top finished seed-0 rung ({top}); only the top "
                f"finished rung ships (choose the scales with --scales, or drop --rung to ship "
                f"each model's top rung)"
            )
        tag = budget_tag(run.rung)
        row = _recorded_row(run, tags, out, ladder.weights)
        old = table.get(model, {}).get(str(scale))
        if old and old.get("recipe") == "ladder" and old["run"] != run.name:
            raise SRBenchError(
                f"{shipped_path}: {model} x{scale} ships {model}.{old['tag']} already; replacing "
                f"one shipped rung by another would leave the store's {model} results of both "
                f"under one name, which `srbench ladder ship` does not do"
            )
        retired = _retire(model, scale, old, tags, pkg) if old else None
        plans.append((run, tag, row, retired))
    with tempfile.TemporaryDirectory(dir=pkg, prefix=".ship-") as staging:
        shipped: list[dict[str, Any]] = []
        for run, tag, row, retired in plans:
            model, scale = run.model, run.recipe.scale
            name = f"{model}_x{scale}.safetensors"
            tensors = load_file(str(out / run.name / WEIGHTS_KINDS[ladder.weights]), device="cpu")
            sha = save_tensors(tensors, Path(staging) / name, model_name=model, scale=scale,
                               dtype=torch.float16)  # fmt: skip
            table.setdefault(model, {})[str(scale)] = {
                "file": name, "sha256": sha, "run": run.name, "recipe": "ladder", "tag": tag,
                "iterations": run.rung, "seed": run.seed, "train_seconds": row["train_seconds"],
                "machine": row["machine"], "precision": row["precision"],
                **({"lr_backoffs": row["lr_backoffs"]} if row.get("lr_backoffs") else {}),
            }  # fmt: skip
            row["shipped"] = True
            shipped.append({"model": model, "scale": scale, "tag": tag, "run": run.name,
                            "file": str(pkg / name), "sha256": sha, "retired": retired})  # fmt: skip
        files = {r["file"] for rows in table.values() for r in rows.values()}
        paths = [Path(staging) / f if (Path(staging) / f).is_file() else pkg / f for f in files]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise SRBenchError(f"{missing[0]}: shipped weights missing; {_FIX}")
        total = sum(p.stat().st_size for p in paths)
        limit = SHIPPED_LIMIT_BYTES if limit_bytes is None else limit_bytes
        if total > limit:
            raise SRBenchError(
                f"{pkg}: the shipped weights would total {total / 2**20:.2f} MiB, over the "
                f"{limit / 2**20:.2f} MiB limit; ship fewer models (--models) -- nothing was written"
            )
        for entry in shipped:
            with atomic_path(entry["file"]) as tmp:
                shutil.copyfile(Path(staging) / Path(entry["file"]).name, tmp)
    for gone in sorted(before - files):  # a file no scale ships any more (VDSR's x2x3x4)
        (pkg / gone).unlink()
    atomic_write(shipped_path, json.dumps(table, indent=1, sort_keys=True) + "\n")
    write_tag_manifest(tags_path, tags)
    return shipped
