"""``make run``: the whole loop on one machine, on embedded defaults.

Trains and promotes the default model when there is no production model, then runs the
prediction service and the drift monitor, plus Prometheus, Alertmanager and a terminal webhook
receiver when their binaries are installed. Ctrl-C stops everything, service last-in-first-out.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import typer

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ("prometheus",)
ALERTMANAGER = ("prometheus-alertmanager", "alertmanager")
INSTALL_HINT = (
    "Prometheus/Alertmanager not found; to get alerts locally: "
    "sudo apt-get install --no-install-recommends prometheus prometheus-alertmanager"
)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen


def _which(names: tuple[str, ...]) -> str | None:
    return next((p for p in map(shutil.which, names) if p), None)


def _start(name: str, argv: list[str], log_dir: Path | None = None) -> Child:
    out = None
    if log_dir is not None:  # third-party daemons are chatty: their logs go to files
        out = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
    # A session of its own: Ctrl-C reaches only us, and we stop the children in order.
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        start_new_session=True,
    )
    typer.echo(f"[vigil] started {name} (pid {proc.pid})")
    return Child(name, proc)


def _stop(children: list[Child], timeout: float = 20.0) -> None:
    for child in reversed(children):
        if child.proc.poll() is None:
            try:
                os.killpg(child.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout
    for child in reversed(children):
        try:
            child.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
        typer.echo(f"[vigil] stopped {child.name}")


def ensure_model(settings) -> None:
    from vigil.registry.store import Registry

    if Registry(settings).production_tag() is not None:
        return
    typer.echo("[vigil] no production model yet: training the default model")
    result = subprocess.run([sys.executable, "-m", "training.train", "--promote"], cwd=ROOT)
    if result.returncode != 0:
        raise typer.Exit(result.returncode)


def upgrade_log(settings) -> None:
    """Migrate the embedded SQLite log to this build's schema (``python -m vigil.db upgrade``);
    a PostgreSQL log is migrated by its operator, with the same command."""
    if not settings.resolved_database_url.startswith("sqlite"):
        return
    from vigil.log.inference_log import InferenceLog
    from vigil.store import migrations

    log = InferenceLog.from_settings(settings)
    try:
        before = migrations.upgrade(log.engine, log.table_prefix)
    except migrations.SchemaError as exc:
        typer.echo(f"[vigil] inference log: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        log.close()
    if before != "current":
        typer.echo(f"[vigil] inference log schema upgraded (was {before})")


def alerting(settings, children: list[Child]) -> None:
    prometheus, alertmanager = _which(PROMETHEUS), _which(ALERTMANAGER)
    if not (prometheus and alertmanager):
        typer.echo(f"[vigil] {INSTALL_HINT}")
        return
    from monitoring.render import render_configs, settings_defaults

    conf = settings.home_dir / "config"
    logs = settings.home_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    paths = render_configs(conf, **settings_defaults(settings))
    if settings.alert_webhook_url == f"http://127.0.0.1:{settings.webhook_port}/alerts":
        children.append(
            _start(
                "webhook-receiver",
                [
                    sys.executable,
                    "-m",
                    "monitoring.webhook_receiver",
                    "--port",
                    str(settings.webhook_port),
                ],
            )
        )
    children.append(
        _start(
            "alertmanager",
            [
                alertmanager,
                f"--config.file={paths['alertmanager']}",
                f"--storage.path={settings.home_dir / 'alertmanager'}",
                f"--web.listen-address=127.0.0.1:{settings.alertmanager_port}",
                "--cluster.listen-address=",
            ],
            logs,
        )
    )
    children.append(
        _start(
            "prometheus",
            [
                prometheus,
                f"--config.file={paths['prometheus']}",
                f"--storage.tsdb.path={settings.home_dir / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
            ],
            logs,
        )
    )
    typer.echo(
        f"[vigil] Prometheus http://127.0.0.1:{settings.prometheus_port}  "
        f"Alertmanager http://127.0.0.1:{settings.alertmanager_port}  (logs in {logs})"
    )


def main() -> None:
    """Train if needed, then run service, monitor and (when installed) Prometheus/Alertmanager."""
    from vigil.settings import get_settings

    settings = get_settings()
    settings.apply_bentoml_env()
    upgrade_log(settings)
    ensure_model(settings)
    children: list[Child] = []
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        children.append(_start("service", [sys.executable, "-m", "service", "serve"]))
        children.append(_start("monitor", [sys.executable, "-m", "monitoring.drift", "run"]))
        if settings.retrain_trigger_enabled:
            children.append(_start("retrain-trigger", [sys.executable, "-m", "training.trigger"]))
        alerting(settings, children)
        typer.echo(
            f"[vigil] service http://{settings.host}:{settings.port}  "
            f"monitor http://{settings.monitor_host}:{settings.monitor_port}/reports/\n"
            f"[vigil] try: make traffic   |   make traffic DRIFT=most   |   Ctrl-C to stop"
        )
        while not stopping:
            for child in children:
                if child.proc.poll() is not None:
                    typer.echo(f"[vigil] {child.name} exited with {child.proc.returncode}")
                    stopping = True
            time.sleep(0.5)
    finally:
        typer.echo("[vigil] stopping")
        _stop(children)


if __name__ == "__main__":
    typer.run(main)
