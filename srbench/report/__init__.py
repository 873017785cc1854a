"""The HTML report: one self-contained folder, made from the result store, that opens offline.

``build_report(results_dir, output_dir)`` writes ``output_dir/index.html`` and ``output_dir/img/<build>/``
(Pareto plots as PNG + SVG, visual-comparison crops as PNG), all referenced by relative paths;
the page loads nothing from the network (no CDN, no fonts, no scripts). What it shows:

* per protocol (id + hash -- numbers from different protocols are never in one table) and scale,
  a table of every metric (:data:`srbench.schema.METRICS`) on every benchmark present, with parameters, MACs and latency
  (:mod:`srbench.pareto` says where each cost comes from), and a paper-vs-measured table for
  every model whose card publishes numbers under that same protocol;
* Pareto plots (the headline metric, PSNR, vs parameters and MACs; latency when ``srbench profile`` measured it);
* visual comparisons: the same HR crop of a few hard benchmark images for every model, as
  ``srbench run`` stored them (:mod:`srbench.crops`), beside exactly the records the tables show;
* the DRN ablation results (records that carry an ``ablation`` field);
* a footer with each protocol's id, hash and definition, the hardware and the software versions
  (from the records' metadata).

Every value reaches the page through Jinja2 with ``autoescape=True``.

The modules: :mod:`~srbench.report.text` (cell text), :mod:`~srbench.report.page` (the page
model), :mod:`~srbench.report.tables`, :mod:`~srbench.report.visuals`,
:mod:`~srbench.report.plots` and :mod:`~srbench.report.build` (:func:`build_report`).
"""

from srbench.report.build import build_report
from srbench.report.page import (
    Cell,
    Crop,
    PaperRow,
    Plot,
    ProtocolSection,
    Row,
    ScaleSection,
    Visual,
)
from srbench.report.text import fmt, fmt_int, fmt_macs, fmt_metric, fmt_ms, ordered_datasets
from srbench.report.visuals import IMG_DIR, VISUAL_IMAGES, visual_order

__all__ = [
    "IMG_DIR",
    "VISUAL_IMAGES",
    "Cell",
    "Crop",
    "PaperRow",
    "Plot",
    "ProtocolSection",
    "Row",
    "ScaleSection",
    "Visual",
    "build_report",
    "fmt",
    "fmt_int",
    "fmt_macs",
    "fmt_metric",
    "fmt_ms",
    "ordered_datasets",
    "visual_order",
]
