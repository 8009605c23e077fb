"""A model file trained elsewhere, read once and loaded under Vigil's trust rules.

``.skops`` files load with skops' type check (a type outside Vigil's trusted set and the
caller's ``--trust`` is refused by name); pickles only with ``--trust-pickle``, since
unpickling runs whatever code the file names. ``training.register`` reads ``--model`` files
here and ``training.mlflow.source`` the files it fetches from MLflow.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from vigil.text import one_line

PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
# Read whole before any parsing: far above a forest of hundreds of deep trees (~100 MB).
MAX_MODEL_BYTES = 2 * 1024**3
# scikit-learn's own types that skops does not trust by default but that hold only arrays
# (a fitted HistGradientBoosting's trees): trusted without --trust.
DEFAULT_TRUSTED = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)


class BadModel(ValueError):
    """The model or its data cannot be registered; the message says why, in one line."""


def read_model_file(path: Path) -> bytes:
    """The file's bytes, read once and at most ``MAX_MODEL_BYTES`` of them (``BadModel``
    beyond): what is checked, loaded, gated, hashed and stored is this one read."""
    if not path.is_file():
        raise BadModel(f"{path}: no such file")
    if path.stat().st_size > MAX_MODEL_BYTES:  # refused before reading any of it
        raise BadModel(f"{path}: {path.stat().st_size} bytes, more than {MAX_MODEL_BYTES}")
    with path.open("rb") as file:
        data = file.read(MAX_MODEL_BYTES + 1)  # the file may have grown since the stat
    if len(data) > MAX_MODEL_BYTES:
        raise BadModel(f"{path}: more than {MAX_MODEL_BYTES} bytes")
    return data


def load_model_file(
    path: Path, *, trust: tuple[str, ...] = (), trust_pickle: bool = False
) -> tuple[Any, str, list[str]]:
    """``(model, format, trusted types)`` from a ``.skops`` or pickle file; ``BadModel`` for a
    refused or unloadable file (an untrusted type, a pickle without ``trust_pickle``, a
    module that cannot be imported)."""
    return load_model_data(read_model_file(path), path, trust=trust, trust_pickle=trust_pickle)


def load_model_data(
    data: bytes, path: Path, *, trust: tuple[str, ...] = (), trust_pickle: bool = False
) -> tuple[Any, str, list[str]]:
    """As ``load_model_file``, from the bytes already read from ``path`` (whose suffix says
    the format)."""
    from vigil.registry.store import MissingModelCode, load_model_bytes

    suffix = path.suffix.lower()
    if suffix == ".skops":
        import skops.io

        try:
            untrusted = skops.io.get_untrusted_types(data=data)
        except Exception as exc:
            raise BadModel(f"{path}: not a readable skops file: {one_line(exc)}") from None
        refused = sorted(set(untrusted) - set(trust) - set(DEFAULT_TRUSTED))
        if refused:
            raise BadModel(
                f"{path}: type {refused[0]} is not trusted by skops"
                + (
                    f" (nor {len(refused) - 1} more: {', '.join(refused[1:4])})"
                    if refused[1:]
                    else ""
                )
                + "; if you trust it, pass --trust "
                + refused[0]
            )
        fmt, trusted = "skops", sorted(untrusted)
    elif suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise BadModel(
                f"{path}: a pickle is loaded only with --trust-pickle: unpickling runs any code "
                "the file names, so load only files you made yourself (or save it with skops)"
            )
        fmt, trusted = "joblib", []
    else:
        raise BadModel(f"{path}: expected a .skops, .joblib or .pkl file")
    try:
        return load_model_bytes(data, fmt, trusted, str(path)), fmt, trusted
    except MissingModelCode as exc:
        raise BadModel(str(exc)) from None
    except Exception as exc:
        raise BadModel(f"{path}: cannot be loaded: {type(exc).__name__}: {one_line(exc)}") from None


def load_source(model: Path, trust: tuple[str, ...], trust_pickle: bool):
    """``(model, source)`` from a model file, as ``--model`` reads it: the source is what
    lineage records (file, sha256, format, trusted types) plus a skops file's bytes."""
    content = read_model_file(model)  # one read: what is loaded is what is hashed and stored
    loaded, fmt, trusted = load_model_data(content, model, trust=trust, trust_pickle=trust_pickle)
    source = {
        "file": model.name,
        "sha256": hashlib.sha256(content).hexdigest(),
        "format": fmt,
        "trusted": trusted,
        **({"bytes": content} if fmt == "skops" else {}),
    }
    return loaded, source
