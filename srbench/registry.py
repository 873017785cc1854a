"""Model registry: factory functions registered by a decorator, each with a model card.

Built-in families live in the top-level ``architectures`` package; third-party packages add models
through the ``srbench.architectures`` entry-point group. Both are imported lazily, on the first
query of the registry, never at ``import srbench`` time.

Every factory has the signature ``factory(scale: int, **overrides) -> torch.nn.Module`` and returns
a model whose ``forward`` takes the LR image (N, C, h, w) with values in [0, 1] -- C = 1 for
Y-channel models, 3 for RGB models -- and returns the SR image (N, C, h*scale, w*scale). Models
that work on a bicubic-upsampled input (SRCNN, VDSR, IDN's skip) upsample inside ``forward`` with
the project's MATLAB-exact bicubic, so every model has the same contract and its cost is counted.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, Literal

from srbench.errors import ModelNotFoundError, SRBenchError

if TYPE_CHECKING:
    from torch import nn

    from srbench.convert import ForeignFile, Recognised

ENTRY_POINT_GROUP = "srbench.architectures"

# Built-in families: imported on first use, in this order (an explicit list, not a folder scan).
BUILTIN_FAMILIES = (
    "architectures.bicubic",
    "architectures.srcnn",
    "architectures.vdsr",
    "architectures.idn",
    "architectures.edsr",
    "architectures.drn",
)


@dataclass(frozen=True)
class PublishedResult:
    """A number from a paper, with the protocol it was measured under."""

    dataset: str  # benchmark key: set5, set14, b100, urban100, manga109
    scale: int
    psnr_db: float
    ssim: float
    protocol: str  # srbench protocol id it is comparable with, e.g. "legacy-y"
    source: str  # where the number was printed


@dataclass(frozen=True)
class WeightsRef:
    """Weights for one scale: a safetensors file identified by its sha256."""

    filename: str
    sha256: str
    source: str  # where the weights come from (a zoo run, the authors' release)
    url: str | None = None  # where the authors' original file is published (`weights fetch`)
    # sha256 of that original download: 64 hex digits, or a prefix where only that is public
    # (EDSR-PyTorch puts 8 hex digits in its file names, as torch.hub checks them)
    download_sha256: str | None = None
    shipped: bool = False  # inside the srbench package (srbench/pretrained/), found by default


# Weight tags a model name may carry (``idn.official``): the authors' released weights, told apart
# from srbench's own equal-budget training (the plain name) in the store and the report.
WEIGHT_TAGS = ("official",)
# Tags of srbench's own training at a budget: ``zoo16k`` (16,000 iterations of the ladder,
# srbench/recipes/ladder.yaml, seed 0), ``zoo1k_s2`` (1,000, seed 2), and with a schedule name
# another recipe's budget: ``zoo1k_cosine`` (the zoo's 1,000-iteration cosine runs,
# srbench/recipes/zoo.yaml, shipped before the ladder). srbench/pretrained/ladder.json pins each.
BUDGET_TAG = re.compile(r"zoo(\d+)k(?:_([a-z]+))?(?:_s(\d+))?")


def is_budget_tag(tag: str) -> bool:
    """``zoo16k``, ``zoo1k_s2``, ``zoo1k_cosine``: a tag naming srbench's own training at a
    recorded budget (one pinned file per scale), never a user's tag."""
    return BUDGET_TAG.fullmatch(tag) is not None


def budget_of(tag: str) -> tuple[int, int] | None:
    """``zoo4k_s1`` -> (4000, 1): a ladder rung's iterations and seed; None for other tags,
    including another recipe's budget (``zoo1k_cosine``), which is not a rung of the ladder."""
    match = BUDGET_TAG.fullmatch(tag)
    if match is None or match.group(2):
        return None
    return int(match.group(1)) * 1000, int(match.group(3) or 0)


def budget_tag(iterations: int, seed: int = 0, schedule: str = "") -> str:
    """(4000, 1) -> ``zoo4k_s1``: the weights tag of a ladder checkpoint; ``schedule`` names
    another recipe's schedule (``cosine`` -> ``zoo1k_cosine``, the zoo's runs)."""
    if iterations % 1000 or iterations <= 0:
        raise ValueError(f"budget tags count whole thousands of iterations, not {iterations}")
    if schedule and not re.fullmatch(r"[a-z]+", schedule):
        raise ValueError(f"a budget tag's schedule is lower-case letters, not {schedule!r}")
    return (
        f"zoo{iterations // 1000}k"
        + (f"_{schedule}" if schedule else "")
        + (f"_s{seed}" if seed else "")
    )


@dataclass(frozen=True)
class ModelCard:
    name: str
    family: str
    paper: str
    year: int
    scales: tuple[int, ...]
    input_channels: Literal["y", "rgb", "any"]
    # True when the network itself works at HR size on a bicubic-upsampled input (done inside
    # forward; the runner always passes the LR image).
    pre_upsampled: bool
    value_range: tuple[float, float] = (0.0, 1.0)
    licence: str = "unknown"
    published: tuple[PublishedResult, ...] = ()
    published_params: dict[int, int] = field(default_factory=dict)  # scale -> trainable params
    # srbench's own weights (the zoo, shipped in the package): what the plain name runs with.
    weights: dict[int, WeightsRef] = field(default_factory=dict)
    # The authors' released weights, converted: what ``<name>.official`` runs with.
    official_weights: dict[int, WeightsRef] = field(default_factory=dict)
    # Other names a user may type (``drn`` -> drn_s); one name in results, the card's.
    aliases: tuple[str, ...] = ()
    # Constructor options (``create_model(name, s, **options)``, recipes' model_overrides);
    # anything else is refused by the registry with the allowed list, for every model alike.
    options: tuple[str, ...] = ()
    assumptions: tuple[str, ...] = ()
    notes: str = ""
    # Trainable models are trained by `srbench train`; bicubic is not.
    trainable: bool = True
    # Spatial size the LR input must be a multiple of (1 for fully convolutional models).
    input_multiple: int = 1
    # Smallest LR side the network accepts (profiling refuses smaller sizes).
    min_input_size: int = 1
    # The family's knowledge of its authors' files (architectures/<family>.py): shown a foreign
    # file as its format reads it (srbench.convert.ForeignFile), returns the model, the scale the
    # file declares and the tensors under srbench's names -- or None for a file it does not know.
    # `srbench weights convert` asks every card; see docs/models.md.
    recognise_weights: Callable[[ForeignFile], Recognised | None] | None = None

    def published_for(self, dataset: str, scale: int) -> PublishedResult | None:
        for result in self.published:
            if result.dataset == dataset and result.scale == scale:
                return result
        return None

    def missing_fields(self) -> list[str]:
        """Names of card fields a complete card must fill in (used by the registry-wide tests)."""
        missing = [f for f in ("name", "family", "paper", "licence") if not getattr(self, f)]
        if not self.scales:
            missing.append("scales")
        if self.year < 1900:
            missing.append("year")
        return missing


@dataclass(frozen=True)
class ModelRef:
    """A resolved model name: the card, and the weights tag (``""``: srbench's own weights)."""

    card: ModelCard
    tag: str = ""

    @property
    def key(self) -> str:
        """The name results are stored under: ``idn`` or ``idn.official``."""
        return f"{self.card.name}.{self.tag}" if self.tag else self.card.name

    @property
    def weights(self) -> dict[int, WeightsRef]:
        """Scale -> the weights this name selects (:func:`srbench.pretrained.weights_set`)."""
        from srbench.pretrained import weights_set

        return weights_set(self.card, self.tag)

    @property
    def budget(self) -> tuple[int, int] | None:
        """(iterations, seed) for a ladder checkpoint (``drn_s.zoo16k``), else None."""
        return budget_of(self.tag)

    @property
    def budgeted(self) -> bool:
        """A budget tag (``drn_s.zoo16k``, ``drn_s.zoo1k_cosine``): the name pins exactly the
        file srbench/pretrained/ladder.json records for it."""
        return is_budget_tag(self.tag)


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Any]
    card: ModelCard
    origin: str  # module or entry point that registered it


_REGISTRY: dict[str, _Entry] = {}
_loaded = False
_loading = False


_ALIASES: dict[str, str] = {}


def register_model(card: ModelCard) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``factory(scale, **overrides)`` under ``card.name`` (and aliases)."""

    def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
        name = card.name
        if "." in name:
            raise SRBenchError(f"model name {name!r} must not contain '.' (it separates tags)")
        for taken in (name, *card.aliases):
            owner = _REGISTRY.get(taken) or _REGISTRY.get(_ALIASES.get(taken, ""))
            if owner is not None:
                raise SRBenchError(
                    f"model name {taken!r} is registered twice ({owner.origin} and "
                    f"{factory.__module__}); rename one of them"
                )
        _REGISTRY[name] = _Entry(factory=factory, card=card, origin=factory.__module__)
        for alias in card.aliases:
            _ALIASES[alias] = name
        return factory

    return decorator


def unregister_model(name: str) -> None:
    """Remove a model (for tests that register temporary models)."""
    entry = _REGISTRY.pop(name, None)
    if entry is not None:
        for alias in entry.card.aliases:
            _ALIASES.pop(alias, None)


def _load_plugins() -> None:
    global _loaded, _loading
    if _loaded or _loading:
        return
    _loading = True
    try:
        for module in BUILTIN_FAMILIES:
            importlib.import_module(module)
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except SRBenchError:
                raise  # duplicate names are an error, not a warning
            except Exception as exc:  # a broken plugin must not break srbench
                warnings.warn(
                    f"srbench plugin {ep.name!r} ({ep.value}) failed to load and is skipped: "
                    f"{type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=2,
                )
        _loaded = True
    finally:
        _loading = False


def reload_plugins() -> None:
    """Re-scan the entry points (after installing a plugin in-process)."""
    global _loaded
    _loaded = False
    _load_plugins()


def list_models(
    pattern: str | Iterable[str] = "*",
    *,
    trainable: bool | None = None,
    pretrained: bool = False,
    tags: bool = False,
) -> list[str]:
    """Registered model names matching a shell-style wildcard (or any of several), sorted.

    A pattern also matches through an alias (``drn`` finds drn_s). ``pretrained``: only models
    with srbench weights for some scale (or parameter-free ones); ``tags``: add ``NAME.official``
    for models whose authors' weights srbench knows.
    """
    _load_plugins()
    patterns = [p.lower() for p in ([pattern] if isinstance(pattern, str) else list(pattern))]

    def matches(entry: _Entry) -> bool:
        names = (entry.card.name, *entry.card.aliases)
        return any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns)

    entries = [e for _, e in sorted(_REGISTRY.items()) if matches(e)]
    if trainable is not None:
        entries = [e for e in entries if e.card.trainable == trainable]
    if pretrained:
        entries = [e for e in entries if e.card.weights or not e.card.trainable]
    names = [e.card.name for e in entries]
    if tags:
        names += [f"{e.card.name}.official" for e in entries if e.card.official_weights]
    return sorted(names)


def _split_tag(name: str) -> tuple[str, str]:
    base, _, tag = name.strip().lower().replace("-", "_").partition(".")
    return _ALIASES.get(base, base), tag


def resolve(name: str) -> ModelRef:
    """``drn`` -> drn_s, ``edsr`` -> edsr_baseline, ``idn.official`` -> (idn, official)."""
    base, tag = _split_tag(name)
    card = _entry(base).card
    if tag and tag not in WEIGHT_TAGS and not is_budget_tag(tag):
        raise ModelNotFoundError(
            f"unknown weights tag {tag!r} in {name!r}; a model name is NAME, NAME.official or "
            "NAME.zoo<N>k[-s<seed>] (a budget-ladder checkpoint, e.g. drn_s.zoo16k; "
            "NAME.zoo1k-cosine: the zoo's runs shipped before the ladder)"
        )
    if tag == "official" and not card.official_weights:
        raise ModelNotFoundError(
            f"{name!r}: the authors of {card.name} published no weights that srbench knows of; "
            f"use {card.name} (srbench's own training)"
        )
    return ModelRef(card, tag)


def _entry(name: str) -> _Entry:
    _load_plugins()
    key, _ = _split_tag(name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    # Names containing what was typed ("edsr" -> edsr_baseline) first, then near-misses ("idm").
    close = [n for n in sorted([*_REGISTRY, *_ALIASES]) if key in n]
    close += difflib.get_close_matches(key, [*_REGISTRY, *_ALIASES], n=3, cutoff=0.5)
    close = list(dict.fromkeys(close))[:3]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ModelNotFoundError(f"unknown model {name!r}{hint} (`srbench models` lists them all)")


def get_card(name: str) -> ModelCard:
    return _entry(name).card


def model_origin(name: str) -> str:
    return _entry(name).origin


_CHECKED: set[tuple[str, int, str]] = set()
_CHANNELS = ("y", "rgb", "any")


def _check_contract(entry: _Entry, model: Any, scale: int, overrides: dict[str, Any]) -> None:
    """The first time a model is built (per scale and options): its card is well-formed and
    it maps an (N, C, h, w) input to (N, C, h*scale, w*scale). A plugin that breaks the
    contract gets one error naming it, here, instead of a wrong number or a traceback later."""
    import torch

    card = entry.card
    key = (card.name, scale, repr(sorted(overrides.items())))
    if key in _CHECKED:
        return
    where = f"model {card.name!r} (registered by {entry.origin})"
    if card.input_channels not in _CHANNELS:
        raise SRBenchError(
            f"{where}: card input_channels is {card.input_channels!r}; it must be one of "
            f"{', '.join(_CHANNELS)} (lower case)"
        )
    if not isinstance(model, torch.nn.Module):
        raise SRBenchError(f"{where}: the factory returned {type(model).__name__}, not a Module")
    params = list(model.parameters()) + list(model.buffers())
    if any(p.device.type == "meta" for p in params):
        return  # built for a shape check only (recipes): nothing to run
    side = max(8, card.input_multiple) if card.input_multiple > 1 else 8
    channels = 1 if card.input_channels == "y" else 3
    device = params[0].device if params else torch.device("cpu")
    # A private generator: the check must not move the global RNG (training seeds it).
    x = torch.rand(1, channels, side, side, generator=torch.Generator().manual_seed(0))
    x = x.to(device)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(x)
    except Exception as exc:  # a plugin's own failure: named, in one line
        msg = " ".join(str(exc).split())[:200]
        raise SRBenchError(
            f"{where}: forward on a {side}x{side} input failed ({type(exc).__name__}: {msg})"
        ) from None
    finally:
        model.train(was_training)
    want = (1, channels, side * scale, side * scale)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SRBenchError(
            f"{where}: x{scale} output for a (1, {channels}, {side}, {side}) input is {got}, not "
            f"{want}; the model must return the SR image at exactly scale x the input size"
        )
    _CHECKED.add(key)


def create_model(
    name: str | ModelRef,
    scale: int,
    pretrained: bool | str | os.PathLike[str] = False,
    **overrides: Any,
) -> nn.Module:
    """Build a registered model (a name, or a :class:`ModelRef` resolved before) for ``scale``.

    ``pretrained``: False (random init), True (the weights the name selects: srbench's shipped
    zoo weights, or the authors' for ``NAME.official``, verified against the card's sha256), or
    a path to a safetensors file. Loading is always strict.
    """
    if isinstance(name, ModelRef):
        ref, entry = name, _entry(name.card.name)
    else:
        entry, ref = _entry(name), resolve(name)
    card = entry.card
    if scale not in card.scales:
        raise SRBenchError(
            f"model {card.name!r} does not support scale x{scale} (supported: "
            f"{', '.join(f'x{s}' for s in card.scales)})"
        )
    unknown = sorted(set(overrides) - set(card.options))
    if unknown:
        allowed = ", ".join(sorted(card.options)) or "none"
        raise TypeError(f"{card.name} got unknown options {unknown} (allowed: {allowed})")
    model = entry.factory(scale=scale, **overrides)
    _check_contract(entry, model, scale, overrides)
    model.srbench_card = card
    model.srbench_scale = scale
    model.srbench_weights_sha256 = None
    if pretrained:
        from srbench.weights import load_weights, resolve_default_weights

        path = resolve_default_weights(ref, scale) if pretrained is True else pretrained
        model.srbench_weights_sha256 = load_weights(model, path, card=card, scale=scale)
    return model
