"""Where MLflow records go, and a client bounded in time.

``VIGIL_MLFLOW_TRACKING_URI`` wins; unset, MLflow's own ``MLFLOW_TRACKING_URI``; else an
embedded SQLite store under ``VIGIL_HOME`` with its artifacts beside it (never ``./mlruns`` in
the working directory). ``off`` turns MLflow off.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil import text

OFF = "off"
# MLflow's defaults stall a client about four minutes against a dead server (7 retries). A
# loaded one-worker server took more than 5 s to create a model version here; a silent server
# is caught by the 10 s bound on reaching MLflow (training.mlflow.tracking) anyway.
HTTP_TIMEOUT_SECONDS = 15
HTTP_RETRIES = 0
REACH_SECONDS = 10.0
RECORD_SECONDS = 120.0
# Version tags Vigil writes on MLflow's model versions.
MODEL_TAG = "vigil.model_tag"
STATUS_TAG = "vigil.status"
REASON_TAG = "vigil.reason"


@dataclass(frozen=True)
class Store:
    tracking_uri: str
    # Embedded store only: where the experiment's artifacts go (a file: URI).
    artifact_location: str | None
    experiment: str
    model_name: str

    @property
    def embedded(self) -> bool:
        return self.artifact_location is not None

    @property
    def display_uri(self) -> str:
        return without_credentials(self.tracking_uri)


def store_for(settings) -> Store | None:
    """The MLflow store the settings name; None when MLflow is off."""
    uri = (settings.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "").strip()
    if uri.lower() == OFF:
        return None
    location = None
    if not uri:
        root = embedded_root(settings)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        location = (root / "artifacts").as_uri()
    return Store(uri, location, settings.mlflow_experiment, settings.mlflow_model_name)


def embedded_root(settings) -> Path:
    return settings.home_dir / "mlflow"


def client(store: Store):
    """An ``MlflowClient`` on ``store``, with telemetry off and HTTP calls bounded (a caller
    that set these variables itself keeps its values)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(HTTP_TIMEOUT_SECONDS))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(HTTP_RETRIES))
    if store.embedded:
        Path(store.artifact_location.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    import mlflow
    from mlflow import MlflowClient

    # MLflow also writes these into the environment, where store_for would read them as the
    # user's choice: the process's fluent calls use the store, the environment stays as it was.
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(store.tracking_uri)
    mlflow.set_registry_uri(store.tracking_uri)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    return MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)


def experiment_id(mlflow_client, store: Store) -> str:
    """The id of the store's experiment, created (with the embedded artifact location) when
    missing."""
    found = mlflow_client.get_experiment_by_name(store.experiment)
    if found is not None:
        return found.experiment_id
    return mlflow_client.create_experiment(
        store.experiment, artifact_location=store.artifact_location
    )


def without_credentials(uri: str) -> str:
    """``uri`` with any ``user:password@`` removed (lineage and messages never carry it)."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", uri)


def error_line(exc: BaseException) -> str:
    """The error's type and first line: MLflow's messages often make no sense without it."""
    return f"{type(exc).__name__}: {text.one_line(exc)}"[:300]


def reach_for(store: Store) -> float:
    """How long MLflow may take to answer at all: ``REACH_SECONDS`` for a tracking server;
    the embedded store is a local file (no network to fail) whose first use creates MLflow's
    tables, which took 10-40 s on two loaded cores, so it has the whole ``RECORD_SECONDS``."""
    return RECORD_SECONDS if store.embedded else REACH_SECONDS


def bounded(work, reach: float = REACH_SECONDS, finish: float = RECORD_SECONDS) -> dict:
    """Run ``work(reached)`` in a daemon thread; ``reached`` is an event ``work`` sets once
    MLflow answered. Its result as a dict, or ``{"error": …}`` on an exception or past the
    bounds (the thread is left behind: the command exits without waiting for it)."""
    reached, done = threading.Event(), threading.Event()
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work(reached)
        except BaseException as exc:  # reported, never raised into the command
            result["value"] = {"error": error_line(exc)}
        finally:
            done.set()

    threading.Thread(target=run, name="vigil-mlflow", daemon=True).start()
    if not done.wait(reach) and not reached.is_set():
        return {"error": f"MLflow did not answer within {reach:g} s; nothing recorded"}
    if not done.wait(finish):
        return {"error": f"MLflow did not finish recording within {finish:g} s"}
    return result["value"]
