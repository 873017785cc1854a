"""The page model: what the template (``templates/report.html.j2``) draws, as plain text."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Cell:
    """One (model, benchmark) cell: every metric's mean, headline first ("–": not measured);
    no values where nothing is shown (the flags say why)."""

    values: list[str] = field(default_factory=list)
    images: str = ""
    flags: list[str] = field(default_factory=list)


@dataclass
class Row:
    label: str
    model: str
    weights: str
    weights_warning: str
    kind: str  # whose weights (srbench.kinds.KINDS legend)
    budget: str  # srbench's training budget, for zoo models
    cells: list[Cell]
    params: str
    macs: str
    network_macs: str
    latency: str
    latency_hw: str
    cost_source: str
    paper: str


@dataclass
class PaperRow:
    label: str
    dataset: str
    metrics: list[tuple[str, str, str]]  # per metric: (paper, measured, measured - paper)
    source: str
    note: str


@dataclass
class Plot:
    title: str
    png: str | None
    svg: str | None
    alt: str
    problem: str = ""  # why it is not drawn
    note: str = ""  # what a drawn figure leaves out


@dataclass
class Crop:
    label: str
    src: str
    psnr: str
    crop_psnr: str
    note: str = ""


@dataclass
class Visual:
    dataset: str
    image: str
    box: str
    crops: list[Crop]


@dataclass
class ScaleSection:
    scale: int
    datasets: list[str]
    rows: list[Row]
    paper: list[PaperRow]
    plots: list[Plot]
    visuals: list[Visual]
    visual_skipped: list[str]
    latency_hardware: list[str]


@dataclass
class ProtocolSection:
    protocol: str
    protocol_hash: str
    anchor: str
    title: str
    known: bool
    scales: list[ScaleSection]
    preview_note: str = ""
