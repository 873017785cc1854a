"""Errors that carry a one-line, user-facing message (the CLI prints them without a traceback)."""


class SRBenchError(Exception):
    """Base class: the message names the file or thing at fault and the fix."""


class DataError(SRBenchError):
    """A benchmark image or folder is missing, unreadable, of the wrong kind, or does not verify."""


class WeightsError(SRBenchError):
    """A weights file is missing, corrupt, pickled, or does not match the architecture/scale."""


class ModelNotFoundError(SRBenchError, KeyError):
    """An unknown model name (the message suggests close matches)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ProfilingError(SRBenchError):
    """An input size or precision a model or device cannot run."""
