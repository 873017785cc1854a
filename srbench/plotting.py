"""Figure helpers shared by the Pareto plots (:mod:`srbench.pareto`) and the report's figures
(:mod:`srbench.figures`): labels that overlap nothing, a log axis with a zero-cost tick, and
byte-reproducible saving. Library code: nothing here prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from srbench.files import atomic_path

# Label positions tried around a point, in points (dx, dy): beside it first, then further up or
# down (with a leader line), so that close points (DRN-M and EDSR-baseline, ~1.4 M parameters and
# ~36.7 dB) get labels that neither overlap each other nor cover a marker.
_LABEL_OFFSETS = [(dx, sign * dy) for dy in (4, 13, 22, 31) for dx in (5, -5) for sign in (1, -1)]


def place_labels(
    ax: Any,
    xs: Sequence[float],
    ys: Sequence[float],
    texts: Sequence[str],
    *,
    avoid: Sequence[Any] = (),
    avoid_points: Sequence[tuple[float, float]] = (),
    **text_kw: Any,
) -> list[Any]:
    """Annotate each point with its text where it overlaps no other label and no marker.

    ``avoid``: annotations already on ``ax`` (an earlier call's); ``avoid_points``: other markers
    (data coordinates). Call once the axes' limits and the figure's layout are final (after
    ``tight_layout``): the overlap test is made in display space. Where every position overlaps,
    the least overlapping one is kept -- a label is never dropped.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import Bbox

    fig = ax.get_figure()
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    ax.get_xlim(), ax.get_ylim()  # settle autoscaling before transforming
    points = ax.transData.transform(list(zip(xs, ys, strict=True)))
    extra = ax.transData.transform(list(avoid_points)) if avoid_points else []
    radius = 5.0 * fig.dpi / 72.0  # a marker's half width, in pixels

    def marker_boxes(centres: Any) -> list[Any]:
        return [
            Bbox.from_extents(x - radius, y - radius, x + radius, y + radius) for x, y in centres
        ]

    markers = marker_boxes(points)
    fixed = marker_boxes(extra) + [_text_box(a, renderer) for a in avoid]
    frame = ax.get_window_extent(renderer)
    placed: list[Any] = list(fixed)
    annotations = []
    order = sorted(range(len(texts)), key=lambda i: (points[i][0], points[i][1]))
    for i in order:
        best = None
        for dx, dy in _LABEL_OFFSETS:
            far = abs(dy) > 8
            ann = ax.annotate(
                str(texts[i]), (xs[i], ys[i]), textcoords="offset points", xytext=(dx, dy),
                ha="left" if dx > 0 else "right", va="bottom" if dy > 0 else "top",
                arrowprops={"arrowstyle": "-", "lw": 0.6, "color": "0.35"} if far else None,
                **text_kw,
            )  # fmt: skip
            box = _text_box(ann, renderer)
            others = placed + [m for j, m in enumerate(markers) if j != i]
            overlap = sum(_overlap_area(box, b) for b in others)
            outside = box.width * box.height - _overlap_area(box, frame)
            cost = overlap + outside
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann, box)
            else:
                ann.remove()
            if cost == 0:
                break
        if best is None:  # no offsets: cannot happen (the list is fixed), kept for mypy
            continue
        placed.append(best[2])
        annotations.append(best[1])
    return annotations


def _text_box(annotation: Any, renderer: Any) -> Any:
    """The text's box in display space (an Annotation's own extent includes its leader line)."""
    from matplotlib.text import Text

    annotation.update_positions(renderer)  # an annotation is placed only when drawn
    return Text.get_window_extent(annotation, renderer)


def _overlap_area(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def zero_cost_axis(ax: Any, zero_x: float, right: float) -> None:
    """Zero cost has no place on a log axis: such points sit at ``zero_x`` on a tick labelled 0,
    left of a dotted break line, and the axis has no minor ticks that would suggest a scale."""
    from matplotlib.ticker import FixedLocator, NullLocator

    hi = right * 3
    ax.set_xlim(zero_x / 2, hi)
    ax.axvline(zero_x * 3, color="lightgray", linestyle=":", linewidth=1)
    first = math.floor(math.log10(zero_x)) + 1
    ticks = [10.0**k for k in range(first, math.floor(math.log10(hi)) + 1)]
    ax.xaxis.set_major_locator(FixedLocator([zero_x, *ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels(["0", *[f"$10^{{{round(math.log10(t))}}}$" for t in ticks]])


def save_figure(fig: Any, paths: dict[str, Path]) -> dict[str, Path]:
    """Write ``fig`` in each format of ``paths``, byte-reproducibly (no date or software stamp,
    fixed SVG element ids): a figure regenerated from an unchanged store is unchanged in git."""
    import matplotlib

    metadata = {"svg": {"Date": None}, "png": {"Software": None}}
    with matplotlib.rc_context({"svg.hashsalt": "srbench"}):
        for kind, path in paths.items():
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=kind, metadata=metadata[kind])
    return paths
