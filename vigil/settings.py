"""The one settings object: every knob is a ``VIGIL_`` environment variable (or ``.env`` line)."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vigil.limits import MAX_REQUEST_ROWS

# Shortest bearer token accepted for the retraining trigger.
MIN_TOKEN_CHARS = 16


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VIGIL_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # State: model store (BentoML home inside it), SQLite log, reports.
    home: Path = Path("./.vigil")
    # Inference log; ``postgresql://...`` for several replicas. Default: SQLite under ``home``.
    database_url: str | None = None
    # Prefix for the inference-log tables, so several deployments (or test runs) share a database.
    table_prefix: str = Field(default="vigil_", pattern=r"^[a-z_][a-z0-9_]{0,30}$")
    # How long a log write may wait for a lock or connection before the request gets a 503.
    log_timeout_seconds: float = Field(default=5.0, gt=0)

    # Prediction service.
    # Listen address of the prediction service.
    host: str = "127.0.0.1"
    # Listen port of the prediction service.
    port: int = Field(default=3000, ge=1, le=65535)
    # Worker processes of the prediction service (each loads the model).
    workers: int = Field(default=2, ge=1, le=64)
    # Bearer token /predict and /feedback require; unset: no auth (a warning off loopback).
    api_key: SecretStr | None = None
    # At most 65536: a prediction id numbers its request's instances with four hex digits.
    max_batch_rows: int = Field(default=1000, ge=1, le=MAX_REQUEST_ROWS)
    # Bodies above this are refused (413) before they are read, whatever their row count.
    # Unset: derived from VIGIL_MAX_BATCH_ROWS and the model's schema (service.validation).
    max_body_bytes: int | None = Field(default=None, ge=1024)
    # Unseen categories: a 400 when true; otherwise predicted and counted.
    strict_categories: bool = False
    # auto: ONNX Runtime when the model has a verified ONNX artifact, else scikit-learn;
    # onnx: not ready without one; sklearn: always scikit-learn.
    inference: Literal["auto", "onnx", "sklearn"] = "auto"
    # Longest category string accepted (characters); longer ones are a 400.
    max_category_chars: int = Field(default=200, ge=1, le=10_000)
    # Distinct unseen categories a worker keeps per feature per VIGIL_DRIFT_WINDOW_ROWS rows;
    # further new values are logged (and predicted) as one token, "__other__".
    max_unseen_categories: int = Field(default=50, ge=0)
    # Overload: past these bounds a worker answers 503 with Retry-After instead of queueing.
    max_in_flight: int = Field(default=64, ge=1)
    # Rows a worker queues for its batcher before answering 503.
    max_queued_rows: int = Field(default=4000, ge=1)
    # In-worker micro-batching: most rows per model call, and the longest a request waits for
    # company before its batch runs.
    batch_max_rows: int = Field(default=2000, ge=1)
    # Longest a request waits for company before its batch runs (milliseconds).
    batch_wait_ms: float = Field(default=2.0, ge=0)
    # A candidate on live traffic (shadow or canary): the other model scores answered rows in
    # a thread of its own, at most this many rows behind (further rows are skipped and
    # counted), this many rows per model call.
    shadow_max_queued_rows: int = Field(default=2000, ge=1)
    # Rows per candidate model call.
    shadow_batch_rows: int = Field(default=500, ge=1)
    # Whether this process may change the database's schema: create the tables on an empty
    # database and each day's log partitions. False for the service under its least-privilege
    # role (docs/deploy.md): the monitor and `vigil db upgrade` do it instead.
    manage_schema: bool = True
    # Model signatures (vigil.registry.signing): training signs with the private key, everything
    # that loads a model verifies with the public one; with require_signed_models an unsigned or
    # wrongly signed model is refused (`vigil keys keygen` makes a pair).
    model_signing_key: SecretStr | None = None
    # Public key (base64) every model reader verifies signatures with.
    model_verify_key: str | None = None
    # Refuse models that are unsigned or whose signature does not verify.
    require_signed_models: bool = False
    # Benchmark only: turns off the inference log and custom metrics to measure their cost.
    # Never set in production: predictions answered with it are not logged.
    unsafe_disable_logging: bool = False

    # Drift monitor.
    # Listen address of the drift monitor (/metrics, /reports/).
    monitor_host: str = "127.0.0.1"
    # Listen port of the drift monitor.
    monitor_port: int = Field(default=9108, ge=1, le=65535)
    # A check runs as soon as drift_window_rows new rows are logged, but never more often than
    # drift_min_interval_seconds; drift_interval_seconds is the longest gap between checks.
    drift_interval_seconds: float = Field(default=300, gt=0)
    # Shortest gap between two checks.
    drift_min_interval_seconds: float = Field(default=15, ge=0)
    # Newest logged rows one check tests.
    drift_window_rows: int = Field(default=1000, ge=1)
    # Optional time bound on the window: only rows newer than this many minutes count.
    drift_window_minutes: float | None = Field(default=None, gt=0)
    # Fewest rows a window needs for a verdict.
    drift_min_rows: int = Field(default=100, ge=1)
    # How long after a promotion the window is expected to hold drift_min_rows rows. Past it,
    # a check on too few rows ("insufficient_data") no longer counts as a success, so
    # DriftCheckStale fires for a production model that gets no traffic (one no replica
    # serves, say).
    drift_window_fill_seconds: float = Field(default=86_400, gt=0)
    # Chance of flagging any feature on a window with no drift (corrected across features).
    drift_alpha: float = Field(default=0.01, gt=0, lt=1)
    # Share of drifted features at which the dataset counts as drifted.
    drift_share: float = Field(default=0.5, gt=0, le=1)
    # Largest window read into memory; bigger windows are sampled uniformly (said in the output).
    drift_max_rows: int = Field(default=100_000, ge=1)
    # HTML reports kept under VIGIL_HOME/reports.
    reports_keep: int = Field(default=20, ge=1)
    # Inference-log retention applied by the monitor (0 keeps everything). On PostgreSQL whole
    # day partitions are dropped; SQLite deletes in short batches.
    log_retention_days: float = Field(default=30, ge=0)
    # Models kept by the monitor's daily collection besides production and the rollback stack
    # (the newest saved); older ones and the bytes only they used are deleted. 0: never.
    registry_keep_models: int = Field(default=20, ge=0)
    # Newest labeled rows live quality is computed on.
    quality_window_rows: int = Field(default=1000, ge=1)
    # ModelQualityDrop: fires when a live metric falls this far below its held-out value, once
    # this many labeled rows are behind it.
    quality_alert_margin: float = Field(default=0.05, ge=0, le=1)
    # A regressor's ModelQualityDrop: live RMSE above its held-out RMSE by this share.
    # ModelQualityDropEstimated applies the same relative margin to estimated MAE and RMSE.
    quality_rmse_margin: float = Field(default=0.2, ge=0, le=10)
    # Labeled rows ModelQualityDrop needs before it can fire.
    quality_alert_min_labels: int = Field(default=200, ge=1)

    # Candidates.
    # Candidate verdict: rows both models saw per check, the paired test's alpha, and the
    # labeled rows below which it stays undecided (and `promote --if-better` refuses).
    candidate_window_rows: int = Field(default=5000, ge=1)
    # Alpha of the paired test that decides whether a candidate is better.
    candidate_alpha: float = Field(default=0.01, gt=0, lt=1)
    # Labeled rows below which the verdict stays undecided.
    candidate_min_labeled_rows: int = Field(default=200, ge=1)

    # Retraining.
    # Retraining trigger: an Alertmanager webhook that starts `training.retrain` (off by default).
    retrain_trigger_enabled: bool = False
    # Listen port of the retraining trigger's webhook.
    retrain_trigger_port: int = Field(default=9096, ge=1, le=65535)
    # The bearer token Alertmanager must send; required when the trigger is enabled.
    retrain_trigger_token: SecretStr | None = None
    # Shortest gap between two retraining runs it starts.
    retrain_min_interval_seconds: float = Field(default=3600, ge=0)

    # MLflow.
    # MLflow (training only): where runs and model versions are recorded. Unset: MLflow's own
    # MLFLOW_TRACKING_URI when set, else an embedded store under `home`; "off" records nothing.
    mlflow_tracking_uri: str | None = None
    # The MLflow experiment that training, registration and retraining runs are recorded in.
    mlflow_experiment: str = Field(default="vigil", min_length=1, max_length=200)
    # The registered model whose versions are Vigil's models (aliases mirror Vigil's pointers).
    mlflow_model_name: str = Field(default="vigil-model", min_length=1, max_length=200)

    # Alerting.
    # Where Alertmanager posts alerts; unset: the terminal receiver that `make run` starts on
    # VIGIL_WEBHOOK_PORT (resolved_alert_webhook_url).
    alert_webhook_url: str | None = None
    # Port `make run` starts Prometheus on.
    prometheus_port: int = Field(default=9090, ge=1, le=65535)
    # Port `make run` starts Alertmanager on.
    alertmanager_port: int = Field(default=9093, ge=1, le=65535)
    # Port of `make run`'s terminal webhook receiver.
    webhook_port: int = Field(default=9095, ge=1, le=65535)

    @model_validator(mode="after")
    def _trigger_has_a_token(self) -> Settings:
        token = self.retrain_trigger_token
        short = token is None or len(token.get_secret_value()) < MIN_TOKEN_CHARS
        if self.retrain_trigger_enabled and short:
            raise ValueError(
                f"VIGIL_RETRAIN_TRIGGER_ENABLED needs VIGIL_RETRAIN_TRIGGER_TOKEN (at least "
                f"{MIN_TOKEN_CHARS} characters, e.g. from `openssl rand -hex 32`)"
            )
        return self

    @field_validator("api_key")
    @classmethod
    def _key_not_empty(cls, key: SecretStr | None) -> SecretStr | None:
        # An empty key must not silently turn auth off.
        if key is not None and not key.get_secret_value().strip():
            raise ValueError("VIGIL_API_KEY is set but empty: set a key, or unset it for no auth")
        return key

    @cached_property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def bentoml_home(self) -> Path:
        return self.home_dir / "bentoml"

    @property
    def reports_dir(self) -> Path:
        return self.home_dir / "reports"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_dir / 'inference.sqlite3'}"

    @property
    def resolved_alert_webhook_url(self) -> str:
        if self.alert_webhook_url:
            return self.alert_webhook_url
        return f"http://127.0.0.1:{self.webhook_port}/alerts"

    def apply_bentoml_env(self) -> None:
        """Point BentoML at our model store; call before ``import bentoml``."""
        os.environ["BENTOML_HOME"] = str(self.bentoml_home)
        os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


ENV_FILE_VARIABLE = "VIGIL_ENV_FILE"


def get_settings(**overrides: object) -> Settings:
    """Read the settings now (never at import time); overrides win over the environment, which
    wins over the env file: ``VIGIL_ENV_FILE`` names it (default ``.env`` in the working
    directory; empty for none, as the tests set so a developer's own ``.env`` stays out)."""
    env_file = os.environ.get(ENV_FILE_VARIABLE, ".env") or None
    return Settings(_env_file=env_file, **overrides)


def settings_problem(exc: ValidationError) -> str:
    """Invalid settings as one line naming the variables, for a CLI to print instead of
    pydantic's multi-line report (which also echoes the values: keys, passwords)."""
    parts = []
    for error in exc.errors():
        name = "VIGIL_" + "_".join(str(p) for p in error["loc"]).upper() if error["loc"] else ""
        msg = str(error["msg"]).removeprefix("Value error, ")
        parts.append(msg if not name or msg.startswith(name) else f"{name}: {msg}")
    return "invalid settings: " + "; ".join(parts)
