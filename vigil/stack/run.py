"""``vigil run`` (``make run``): the whole loop on one machine, on embedded defaults.

Trains and promotes the default model when there is no production model, then runs the
prediction service and the drift monitor, plus Prometheus, Alertmanager and a terminal webhook
receiver when their binaries are installed. Ctrl-C stops everything, service last-in-first-out.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import typer

PROMETHEUS = ("prometheus",)
ALERTMANAGER = ("prometheus-alertmanager", "alertmanager")
INSTALL_HINT = (
    "Prometheus/Alertmanager not found; to get alerts locally: "
    "sudo apt-get install --no-install-recommends prometheus prometheus-alertmanager"
)


@dataclass(frozen=True)
class Component:
    """A process ``make run`` starts, and the address it listens on (``port`` None: none)."""

    name: str
    argv: list[str]
    port: int | None = None
    host: str = "127.0.0.1"
    setting: str = ""  # the variable that moves its port
    ready: str | None = None  # the path that answers 200 once it serves (None: not polled)
    shown: str = ""  # what the ready list shows: a path and a note
    log_to_file: bool = False  # third-party daemons are chatty: their logs go to files


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path | None = None


def _which(names: tuple[str, ...]) -> str | None:
    return next((p for p in map(shutil.which, names) if p), None)


def _start(component: Component, log_dir: Path | None = None) -> Child:
    out, log = None, None
    if component.log_to_file and log_dir is not None:
        log = log_dir / f"{component.name}.log"
        out = open(log, "ab")  # noqa: SIM115 - closed with the process
    # A session of its own: Ctrl-C reaches only us, and we stop the children in order.
    proc = subprocess.Popen(
        component.argv,
        stdout=out,
        stderr=subprocess.STDOUT if out else None,
        start_new_session=True,
    )
    typer.echo(f"[vigil] started {component.name} (pid {proc.pid})")
    return Child(component.name, proc, log)


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
    result = subprocess.run([sys.executable, "-m", "vigil", "train", "--promote"])
    if result.returncode != 0:
        raise typer.Exit(result.returncode)


def upgrade_log(settings) -> None:
    """Migrate the embedded SQLite log to this build's schema (``vigil db upgrade``);
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


LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def webhook_address(settings) -> tuple[str, int]:
    """The host and port Alertmanager posts alerts to (``resolved_alert_webhook_url``)."""
    url = settings.resolved_alert_webhook_url
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ValueError(f"VIGIL_ALERT_WEBHOOK_URL is not an http(s) URL: {url!r}")
    return parts.hostname, port


def receives_alerts_here(settings) -> bool:
    """Whether alerts go to this machine, where only the terminal receiver may take them
    (a URL that is not one is refused by ``address_problems``)."""
    try:
        return webhook_address(settings)[0] in LOOPBACK
    except ValueError:
        return False


def components(settings, prometheus: str | None, alertmanager: str | None) -> list[Component]:
    """What ``make run`` starts, in order: Prometheus, Alertmanager and the webhook receiver
    only when both binaries are installed."""
    from vigil.render.alerting import ALERTMANAGER_FILE, PROMETHEUS_FILE

    python = sys.executable
    home, conf = settings.home_dir, settings.home_dir / "config"
    planned = [
        Component(
            "service",
            [python, "-m", "vigil", "serve"],
            settings.port,
            settings.host,
            "VIGIL_PORT",
            ready="/readyz",
            shown="  (POST /predict, GET /model; OpenAPI: /docs.json)",
        ),
        Component(
            "monitor",
            [python, "-m", "vigil", "monitor"],
            settings.monitor_port,
            settings.monitor_host,
            "VIGIL_MONITOR_PORT",
            ready="/metrics",
            shown="/reports/latest  (the latest drift report, once a window is full)",
        ),
    ]
    if settings.retrain_trigger_enabled:
        planned.append(
            Component(
                "retrain-trigger",
                [python, "-m", "vigil", "trigger"],
                settings.retrain_trigger_port,
                setting="VIGIL_RETRAIN_TRIGGER_PORT",
            )
        )
    if not (prometheus and alertmanager):
        return planned
    if receives_alerts_here(settings):
        planned.append(
            Component(
                "webhook-receiver",
                [python, "-m", "monitoring.webhook_receiver", "--port", str(settings.webhook_port)],
                settings.webhook_port,
                setting="VIGIL_WEBHOOK_PORT",
            )
        )
    planned.append(
        Component(
            "alertmanager",
            [
                alertmanager,
                f"--config.file={conf / ALERTMANAGER_FILE}",
                f"--storage.path={home / 'alertmanager'}",
                f"--web.listen-address=127.0.0.1:{settings.alertmanager_port}",
                "--cluster.listen-address=",
            ],
            settings.alertmanager_port,
            setting="VIGIL_ALERTMANAGER_PORT",
            log_to_file=True,
            ready="/-/ready",
        )
    )
    planned.append(
        Component(
            "prometheus",
            [
                prometheus,
                f"--config.file={conf / PROMETHEUS_FILE}",
                f"--storage.tsdb.path={home / 'prometheus'}",
                f"--web.listen-address=127.0.0.1:{settings.prometheus_port}",
            ],
            settings.prometheus_port,
            setting="VIGIL_PROMETHEUS_PORT",
            log_to_file=True,
            ready="/-/ready",
        )
    )
    return planned


def address_problems(settings, planned: list[Component]) -> list[str]:
    """Settings whose addresses disagree, one line each: the webhook URL on this machine but
    not on the receiver's port (alerts would reach whatever listens there, or nothing), and two
    components on one port."""
    problems = []
    try:
        host, port = webhook_address(settings)
    except ValueError as exc:
        problems.append(str(exc))
    else:
        if host in LOOPBACK and port != settings.webhook_port:
            problems.append(
                f"VIGIL_ALERT_WEBHOOK_URL ({settings.resolved_alert_webhook_url}) is on this "
                f"machine but not on VIGIL_WEBHOOK_PORT ({settings.webhook_port}), where make "
                "run starts the alert receiver: unset VIGIL_ALERT_WEBHOOK_URL (it follows "
                "VIGIL_WEBHOOK_PORT) or make the two agree"
            )
    first: dict[int, Component] = {}
    for component in planned:
        if component.port is None:
            continue
        other = first.setdefault(component.port, component)
        if other is not component:
            problems.append(
                f"{other.setting} and {component.setting} are both {component.port}: the "
                f"{other.name} and the {component.name} cannot share a port"
            )
    return problems


def port_problem(component: Component) -> str | None:
    """Why ``component`` cannot listen on its address now (taken, or no such address)."""
    if component.port is None:
        return None
    family = socket.AF_INET6 if ":" in component.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As servers do: a closed connection in TIME_WAIT does not hold the port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((component.host, component.port))
        except OSError as exc:
            return (
                f"cannot start the {component.name}: {component.host}:{component.port} "
                f"{exc.strerror or exc} (set {component.setting} to a free port)"
            )
    return None


def render_alerting(settings) -> Path:
    """Render the Prometheus and Alertmanager configs for these settings; their log dir."""
    from vigil.render.alerting import render_configs, settings_defaults

    logs = settings.home_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    render_configs(settings.home_dir / "config", **settings_defaults(settings))
    return logs


READY_WITHIN = 180.0  # seconds before the ready list names what still does not answer


def _url(component: Component) -> str:
    # A server bound to every interface is reached over loopback.
    host = "127.0.0.1" if component.host in {"0.0.0.0", "::", ""} else component.host
    return f"http://{host}:{component.port}"


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def alerts_page(prometheus: str) -> str:
    """Prometheus's alerts page: Debian's 2.x serves the classic one at /classic/alerts (its
    /alerts is a 404), 3.x at /alerts."""
    return (
        f"{prometheus}/classic/alerts"
        if _answers(f"{prometheus}/classic/alerts")
        else (f"{prometheus}/alerts")
    )


def ready_lines(settings, started: list[Component], alerting: bool) -> list[str]:
    """Where each started component answers, once all do: what ``make run`` prints."""
    lines = ["ready:"]
    for component in started:
        if component.ready is None:
            continue
        url = _url(component)
        if component.name == "prometheus":
            url, shown = alerts_page(url), "  (alerts, pending and firing)"
        else:
            shown = component.shown
        lines.append(f"  {component.name:<16}{url}{shown}")
    if alerting:
        lines.append(f"  {'alerts go to':<16}{settings.resolved_alert_webhook_url}")
    return lines


class Readiness:
    """Polls the started components until each answers (at most once a second)."""

    def __init__(self, started: list[Component], clock=time.monotonic):
        self.pending = {c.name: c for c in started if c.ready is not None}
        self.clock = clock
        self.since = clock()
        self.last = 0.0
        self.late_said = False

    def poll(self) -> bool:
        """True once every component answered (then always)."""
        if self.pending and self.clock() - self.last >= 1.0:
            self.last = self.clock()
            for name, component in list(self.pending.items()):
                if _answers(_url(component) + component.ready):
                    del self.pending[name]
        return not self.pending

    def late(self) -> list[str]:
        """The components that still do not answer after READY_WITHIN, said once."""
        if self.late_said or not self.pending or self.clock() - self.since < READY_WITHIN:
            return []
        self.late_said = True
        return sorted(self.pending)


def _refuse(problems: list[str], code: int) -> None:
    """Exit with ``code`` after one line per problem; nothing when there is none."""
    if not problems:
        return
    for problem in problems:
        typer.echo(f"[vigil] error: {problem}", err=True)
    raise typer.Exit(code)


def main() -> None:
    """Train if needed, then run service, monitor and (when installed) Prometheus/Alertmanager."""
    from pydantic import ValidationError

    from vigil.settings import get_settings, settings_problem

    try:
        settings = get_settings()
    except ValidationError as exc:
        _refuse([settings_problem(exc)], 2)
    prometheus, alertmanager = _which(PROMETHEUS), _which(ALERTMANAGER)
    planned = components(settings, prometheus, alertmanager)
    _refuse(address_problems(settings, planned), 2)
    # Before training, which takes a while: a taken port is said now, not after it.
    _refuse([p for p in map(port_problem, planned) if p], 1)
    settings.apply_bentoml_env()
    upgrade_log(settings)
    ensure_model(settings)
    logs = None
    if prometheus and alertmanager:
        logs = render_alerting(settings)
    else:
        typer.echo(f"[vigil] {INSTALL_HINT}")
    children: list[Child] = []
    stopping = failed = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for component in planned:
            children.append(_start(component, logs))
        if logs is not None:
            typer.echo(f"[vigil] Prometheus' and Alertmanager's logs: {logs}")
        readiness, announced = Readiness(planned), False
        while not stopping:
            if not announced and readiness.poll():
                announced = True
                for line in ready_lines(settings, planned, logs is not None):
                    typer.echo(f"[vigil] {line}")
                typer.echo(
                    "[vigil] try: make traffic   |   make traffic DRIFT=most   |   Ctrl-C to stop"
                )
            waiting = readiness.late()
            if waiting:
                typer.echo(f"[vigil] still waiting for: {', '.join(waiting)}", err=True)
            for child in children:
                if child.proc.poll() is not None:
                    where = f" (its log: {child.log})" if child.log else ""
                    typer.echo(
                        f"[vigil] error: {child.name} exited with {child.proc.returncode}{where}",
                        err=True,
                    )
                    stopping = failed = True
            time.sleep(0.5)
    finally:
        typer.echo("[vigil] stopping")
        _stop(children)
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
