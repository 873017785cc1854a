"""One optimisation step and what it is built from: loss, optimizer, schedule, precision.

The building blocks of :mod:`srbench.training.loop`, also used by the throughput benchmark
(:mod:`srbench.training.throughput`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from srbench.errors import SRBenchError
from srbench.precision import Precision
from srbench.training.recipe import Recipe


def make_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if name == "l1":
        return F.l1_loss
    if name == "mse":
        return F.mse_loss
    if name == "charbonnier":
        return lambda sr, hr: torch.sqrt((sr - hr) ** 2 + 1e-6).mean()
    raise SRBenchError(f"unknown loss {name!r}; choose l1, mse or charbonnier")


def build_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """timm's ``create_optimizer_v2`` with the recipe's settings."""
    from timm.optim import create_optimizer_v2

    cfg = recipe.optimizer
    name = cfg.name.lower()
    kwargs: dict[str, Any] = {}
    if "adam" in name or name in ("nadam", "radam", "lamb", "lion"):
        kwargs["betas"] = tuple(cfg.betas)
        if name != "lion":
            kwargs["eps"] = cfg.eps
    return create_optimizer_v2(
        model,
        opt=name,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        momentum=cfg.momentum,
        **kwargs,
    )


def build_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe):
    """A timm scheduler stepped per iteration (``step_update(iteration)``)."""
    from timm.scheduler import CosineLRScheduler, MultiStepLRScheduler

    s = recipe.schedule
    if s.name == "wsd":
        return WSDScheduler(optimizer, recipe)
    common: dict[str, Any] = {
        "warmup_t": s.warmup_iterations,
        "warmup_lr_init": s.warmup_lr,
        "t_in_epochs": False,
    }
    if s.name == "cosine":
        return CosineLRScheduler(
            optimizer,
            t_initial=max(1, recipe.iterations - s.warmup_iterations),
            lr_min=s.min_lr,
            warmup_prefix=True,
            **common,
        )
    milestones = recipe.milestones() if s.name == "multistep" else []
    gamma = s.gamma if s.name == "multistep" else 1.0
    return MultiStepLRScheduler(optimizer, decay_t=milestones, decay_rate=gamma, **common)


class WSDScheduler:
    """Warm-up, stable, decay: linear warm-up from ``warmup_lr``, then the optimizer's rate,
    then over the last ``decay_fraction`` of the iterations a 1 - sqrt decay to ``min_lr``
    (Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed Training
    Durations": a 20% 1-sqrt cool-down matches a cosine run of the same length).

    The rate at iteration ``t`` depends on ``iterations`` only from the decay on, so runs of
    different lengths are identical up to the shorter one's decay start: each rung of a budget
    ladder is a short decay branch off one constant-rate trunk. Stateless (``state_dict`` is
    empty), so a branch can resume from a trunk's checkpoint.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, recipe: Recipe) -> None:
        self.optimizer = optimizer
        self.peak = recipe.optimizer.lr
        self.min_lr = recipe.schedule.min_lr
        self.warmup = recipe.schedule.warmup_iterations
        self.warmup_lr = recipe.schedule.warmup_lr
        self.total = recipe.iterations
        self.decay_start = int(recipe.decay_start or 0)

    def rate(self, t: int) -> float:
        if t < self.warmup:  # timm's linear warm-up formula, so the trunk matches it
            return self.warmup_lr + t * (self.peak - self.warmup_lr) / self.warmup
        if t < self.decay_start:
            return self.peak
        progress = (t - self.decay_start) / max(1, self.total - self.decay_start)
        return self.min_lr + (self.peak - self.min_lr) * (1.0 - progress**0.5)

    def step_update(self, num_updates: int) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.rate(num_updates)

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


class TrainStep:
    """One optimisation step: forward (bf16 autocast on request), loss, backward, update."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        *,
        device: torch.device,
        precision: Precision,
        grad_clip: float | None = None,
        params: Sequence[torch.Tensor] | None = None,
    ) -> None:
        self.net = net
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.device = device
        self.bf16 = precision.autocast_bf16
        self.channels_last = precision.channels_last
        self.grad_clip = grad_clip
        self.params = list(params if params is not None else net.parameters())

    def __call__(self, lr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            lr = lr.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            sr = self.net(lr)
        loss = self.loss_fn(sr.float(), hr)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        self.optimizer.step()
        return loss.detach()
