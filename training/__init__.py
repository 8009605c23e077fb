"""Training, registering and retraining models. ``from training import register_model``
registers a model fitted elsewhere (``training.register``); imported on first use."""

from typing import Any

__all__ = ["register_model"]


def __getattr__(name: str) -> Any:
    if name == "register_model":
        from training.register import register_model

        return register_model
    raise AttributeError(f"module 'training' has no attribute {name!r}")
