"""Where a number came from: code version, software versions and the machine."""

from __future__ import annotations

import os
import platform
import subprocess
from functools import cache
from pathlib import Path

import torch

import srbench


def _git(*args: str) -> str:
    """``git <args>`` in the srbench checkout, stripped stdout; raises OSError/SubprocessError
    where git or the checkout is missing."""
    here = Path(srbench.__file__).resolve().parent.parent
    return subprocess.run(
        ["git", "-C", str(here), *args], capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()


@cache
def git_commit() -> str:
    """The commit of the srbench checkout (with ``+dirty`` if it has uncommitted changes)."""
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + ("+dirty" if dirty else "")


# The code a result depends on (srbench.codehash.OWN_PACKAGES): changes elsewhere in the checkout
# -- the committed store itself, docs, weights and their manifests, pinned by sha256 in each
# record -- do not make a number's code uncommitted.
CODE_PATHS = ("srbench", "architectures")


@cache
def code_dirty() -> bool | None:
    """Whether srbench's own Python code differs from the checkout's commit: a tracked ``.py``
    file under :data:`CODE_PATHS` changed, or a new one not yet committed. None where it cannot
    be known (not a git checkout: an installed srbench is its version's code)."""
    pathspecs = [f"{top}/**.py" for top in CODE_PATHS]
    try:
        changed = _git("status", "--porcelain", "--", *pathspecs)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(changed)


def refuse_dirty_store(results_dir: str | os.PathLike[str], *, allow_dirty: bool) -> None:
    """Refuse to write into a store committed to git (a clone's ``results/``) from code with
    uncommitted changes: its records would name a commit whose code did not make them. The
    override (``srbench run --allow-dirty``) still marks every record ``code_dirty: true``."""
    from srbench.errors import SRBenchError

    if allow_dirty or not code_dirty():
        return
    records = Path(results_dir) / "records.jsonl"
    try:
        tracked = (
            subprocess.run(
                ["git", "-C", str(records.parent), "ls-files", "--error-unmatch", records.name],
                capture_output=True,
                timeout=10,
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):
        tracked = False  # no git, or no such folder yet: not a committed store
    if tracked:
        raise SRBenchError(
            f"{records}: this store is committed to git and srbench's code has uncommitted "
            "changes (git status srbench architectures); commit them first, or pass "
            "--allow-dirty to write records marked code_dirty: true"
        )


@cache
def cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where it is not readable)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip() and fields:
                break  # the first processor's block is enough
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    return cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_id() -> str:
    """Vendor, family and model numbers: the ``model name`` of a cloud CPU is often only
    "AMD EPYC", which does not tell one generation (and its speed) from the next."""
    info = cpuinfo()
    if not any(k in info for k in ("vendor_id", "cpu family", "model")):
        return platform.processor() or platform.machine()
    return (
        f"{info.get('vendor_id', '?')} family {info.get('cpu family', '?')} "
        f"model {info.get('model', '?')}"
    )


def device_description(device: torch.device) -> dict[str, str | int | float | None]:
    """Name and versions of the device a number was measured on."""
    info: dict[str, str | int | float | None] = {"device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu_name=props.name,
            cuda_version=torch.version.cuda,
            cudnn_version=torch.backends.cudnn.version(),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
        )
    info.update(cpu_model=cpu_model(), cpu_id=cpu_id(), torch_threads=torch.get_num_threads())
    return info


def environment(device: torch.device | str = "cpu") -> dict[str, object]:
    device = torch.device(device)
    return {
        "srbench_version": srbench.__version__,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": __import__("numpy").__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        **device_description(device),
    }


def record_provenance(
    env: dict, device: torch.device, run_id: str, seed: int, threads: dict | None = None
) -> dict[str, object]:
    """The provenance fields every stored per-image record carries. ``threads``: the thread
    fields of the policy that ran the image (``ThreadPolicy.provenance``: ``torch_threads``,
    ``thread_policy``, ``idle_cores``), which override the count at start-up in ``env``."""
    from datetime import datetime, timezone

    return {
        "run_id": run_id,
        "seed": seed,
        "device": env.get("gpu_name") or env["cpu_model"],
        "device_type": device.type,
        "torch_threads": env["torch_threads"],
        "srbench_version": env["srbench_version"],
        "git_commit": env["git_commit"],
        # True: made by code with uncommitted changes (see code_dirty); None: not known.
        "code_dirty": code_dirty(),
        "torch_version": env["torch"],
        "time_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(threads or {}),
    }
