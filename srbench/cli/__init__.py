"""The ``srbench`` command line: one package, a module per command group, one error handler.

Library code never prints; these modules do. Options shared by several commands are declared
once in :mod:`srbench.cli.common`; every command's :class:`~srbench.errors.SRBenchError` or
``OSError`` becomes one line and exit code 2 in :class:`srbench.cli.common.OneErrorHandler`.
``torchrun -m srbench train ...`` runs these same commands.
"""

from __future__ import annotations

from srbench.cli import compare, data, gate, profile, report, run, train, weights, zoo
from srbench.cli.common import app, err_console

app.add_typer(data.app, name="data")
app.add_typer(weights.app, name="weights")

__all__ = ["app", "compare", "gate", "main", "profile", "report", "run", "train", "zoo"]


def main() -> None:  # pragma: no cover - thin wrapper used by `python -m srbench`
    """Entry point: warnings become one line too."""
    import warnings

    def show_warning(message, category, filename, lineno, file=None, line=None):
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    warnings.showwarning = show_warning
    app()
