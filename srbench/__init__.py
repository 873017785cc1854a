"""srbench: a benchmark and ablation suite for single-image super-resolution."""

from srbench.registry import create_model, get_card, list_models, register_model

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "get_card", "list_models", "register_model"]
