"""The model store: models saved to BentoML's store with their contract, and the production
pointer.

A model directory holds the fitted pipeline (``pipeline.joblib``), its contract
(``contract.json``: feature schema, metrics, parameters, data fingerprint, versions, lineage)
and the reference sample (``reference.parquet``: training features plus ``__label__`` and
``__prediction__``). BentoML freezes a model's labels at save, so which model is production is
kept in one small file of our own, replaced atomically: exactly one production model, and a
history to roll back to.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from vigil.schema import FeatureSchema

MODEL_NAME = "vigil-model"
LABEL_COLUMN = "__label__"
PREDICTION_COLUMN = "__prediction__"
_PIPELINE_FILE = "pipeline.joblib"
_CONTRACT_FILE = "contract.json"
_REFERENCE_FILE = "reference.parquet"


class NoProductionModel(LookupError):
    """No model has been promoted to production yet."""


@dataclass
class ModelBundle:
    tag: str
    path: Path
    contract: dict[str, Any]
    _pipeline: Any = field(default=None, repr=False)
    _reference: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def schema(self) -> FeatureSchema:
        return FeatureSchema.from_dict(self.contract["schema"])

    @property
    def metrics(self) -> dict[str, float]:
        return self.contract.get("metrics", {})

    @property
    def pipeline(self) -> Any:
        if self._pipeline is None:
            self._pipeline = joblib.load(self.path / _PIPELINE_FILE)
        return self._pipeline

    def artifact_path(self, name: str) -> Path:
        """The local file of an artifact saved with the model; ``KeyError`` when it has none."""
        path = self.path / name
        if "/" in name or name.startswith(".") or not path.is_file():
            raise KeyError(f"{self.tag} has no artifact {name!r}")
        return path

    @property
    def reference(self) -> pd.DataFrame:
        """Training features plus ``__label__`` and ``__prediction__``."""
        if self._reference is None:
            self._reference = pd.read_parquet(self.path / _REFERENCE_FILE)
        return self._reference


class Registry:
    def __init__(self, settings):
        self.settings = settings
        self.pointer = Path(settings.production_pointer)

    def _store(self):
        from bentoml._internal.models.model import ModelStore

        # An explicit store rather than BENTOML_HOME: BentoML caches that path per process.
        path = Path(self.settings.bentoml_home) / "models"
        path.mkdir(parents=True, exist_ok=True)
        return ModelStore(str(path))

    def save(
        self,
        pipeline: Any,
        contract: dict[str, Any],
        reference: pd.DataFrame,
        artifacts: Mapping[str, bytes] | None = None,
    ) -> str:
        """Save a model with its contract (which must hold ``schema``) and extra files
        (``artifacts``: file name -> content, e.g. ``model.onnx``); returns its tag."""
        reserved = {_PIPELINE_FILE, _CONTRACT_FILE, _REFERENCE_FILE}
        for name in artifacts or {}:
            if "/" in name or name.startswith(".") or name in reserved:
                raise ValueError(f"bad artifact name {name!r}")
        import bentoml

        summary = {
            k: contract[k]
            for k in ("metrics", "dataset_sha256", "git_commit")
            if contract.get(k) is not None  # BentoML metadata rejects None
        }
        with bentoml.models.create(
            MODEL_NAME, metadata=summary, _model_store=self._store()
        ) as model:
            path = Path(model.path)
            joblib.dump(pipeline, path / _PIPELINE_FILE)
            reference.to_parquet(path / _REFERENCE_FILE, index=False)
            for name, content in (artifacts or {}).items():
                (path / name).write_bytes(content)
            tag = str(model.tag)
            (path / _CONTRACT_FILE).write_text(json.dumps({**contract, "tag": tag}, indent=2))
        return tag

    def load(self, tag: str) -> ModelBundle:
        model = self._store().get(tag)
        path = Path(model.path)
        contract = json.loads((path / _CONTRACT_FILE).read_text())
        return ModelBundle(tag=str(model.tag), path=path, contract=contract)

    def tags(self) -> list[str]:
        models = self._store().list(MODEL_NAME)
        return [str(m.tag) for m in sorted(models, key=lambda m: m.creation_time)]

    # -- production pointer ----------------------------------------------------------------

    def _read_pointer(self) -> dict[str, Any]:
        try:
            return json.loads(self.pointer.read_text())
        except FileNotFoundError:
            return {"tag": None, "history": []}

    def production_tag(self) -> str | None:
        return self._read_pointer().get("tag")

    def load_production(self) -> ModelBundle:
        tag = self.production_tag()
        if tag is None:
            raise NoProductionModel(
                f"no production model in {self.settings.home_dir} "
                "(run `make train` or `python -m training.train --promote`)"
            )
        return self.load(tag)

    def promote(self, tag: str) -> None:
        """Make ``tag`` the one production model; the previous one goes on the history."""
        self.load(tag)  # must exist
        state = self._read_pointer()
        history = list(state.get("history", []))
        if state.get("tag") and state["tag"] != tag:
            history.append(state["tag"])
        self._write_pointer({"tag": tag, "history": history, "promoted_at": time.time()})

    def rollback(self) -> str:
        """Return to the previous production model; returns its tag."""
        state = self._read_pointer()
        history = list(state.get("history", []))
        if not history:
            raise NoProductionModel("no previous production model to roll back to")
        tag = history.pop()
        self._write_pointer({"tag": tag, "history": history, "promoted_at": time.time()})
        return tag

    def _write_pointer(self, state: dict[str, Any]) -> None:
        self.pointer.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.pointer.parent, prefix=".production.")
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.pointer)  # readers see the old pointer or the new, never half
