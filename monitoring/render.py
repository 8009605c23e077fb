"""Render the Prometheus and Alertmanager configs from their templates.

Neither Prometheus nor Alertmanager 0.25 expands environment variables, so the webhook URL,
targets, intervals and alert durations are substituted here, at start (``make run``) or in tests,
and the committed files under ``monitoring/`` are these templates rendered with the defaults.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
import yaml

MONITORING_DIR = Path(__file__).resolve().parent
PROMETHEUS_DIR = MONITORING_DIR / "prometheus"
ALERTMANAGER_DIR = MONITORING_DIR / "alertmanager"
PROMETHEUS_TEMPLATE = PROMETHEUS_DIR / "prometheus.yml.tmpl"
RULES_TEMPLATE = PROMETHEUS_DIR / "rules" / "vigil.rules.yml.tmpl"
ALERTMANAGER_TEMPLATE = ALERTMANAGER_DIR / "alertmanager.yml.tmpl"

# Where each rendered file goes, relative to the output directory; prometheus.yml names the
# rules file by this relative path.
PROMETHEUS_FILE = Path("prometheus.yml")
RULES_FILE = Path("rules/vigil.rules.yml")
ALERTMANAGER_FILE = Path("alertmanager.yml")

# Default `for:` of every alert: long enough to ride out one bad scrape or evaluation. Drift
# verdicts change only at checks, on full windows, already corrected across features: a `for:`
# would add dead time and no evidence (docs/runbook.md, "Timing").
DEFAULT_FOR: dict[str, str] = {
    "DataDriftDetected": "0s",
    "FeatureDriftDetected": "0s",
    "DriftCheckStale": "1m",
    "DriftMonitorDown": "2m",
    "PredictionServiceDown": "1m",
    "HighPredictionErrorRate": "5m",
    "HighPredictionLatency": "10m",
    "InferenceLogFailures": "1m",
    "ModelQualityDrop": "10m",
    "ProductionModelNotServed": "2m",
    # Estimated quality and data quality: every check over five minutes must agree, so one
    # unlucky window among frequent checks does not page (docs/runbook.md, "Estimated quality").
    "ModelQualityDropEstimated": "5m",
    "DataQualityDegraded": "5m",
}
ALERT_NAMES: tuple[str, ...] = tuple(DEFAULT_FOR)
DRIFT_ALERTS: tuple[str, ...] = ("DataDriftDetected", "FeatureDriftDetected")
# An alert on the monitor's verdicts (drift, quality) outlives its last firing evaluation by
# this much: a borderline window that flips between checks, or the gap while a standby monitor
# takes over, does not resolve and re-fire it.
MONITOR_KEEP_FIRING_FOR = "5m"
# Drift alerts of one model version wait this long to be sent together, as one notification
# (DataDriftDetected and its FeatureDriftDetected alerts fire in the same rule evaluation).
DRIFT_GROUP_WAIT = "10s"
# A feature drifting without a dataset-level verdict alerts once it has stayed drifted this long.
FEATURE_ALONE_FOR = "5m"

# Inside docker-compose the containers reach each other by service name on fixed ports.
COMPOSE_TARGETS = {
    "service_target": "service:3000",
    "monitor_target": "monitor:9108",
    "alertmanager_target": "alertmanager:9093",
    "webhook_url": "http://webhook:9095/alerts",
}

_PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_DURATION_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)
_TARGET = re.compile(r"^[A-Za-z0-9_.\-]+:\d{1,5}$")
# Links are written unquoted into YAML: no spaces, quotes, braces or a leading indicator.
_LINK = re.compile(r"^[A-Za-z0-9./][A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]*$")


def substitute(template: str, values: Mapping[str, str]) -> str:
    """Fill ``${NAME}`` placeholders; an unknown name is an error, ``{{ $labels }}`` is kept."""
    missing = sorted({name for name in _PLACEHOLDER.findall(template) if name not in values})
    if missing:
        raise KeyError(f"no value for template placeholder(s): {', '.join(missing)}")
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def duration_seconds(duration: str) -> float:
    """Seconds in a Prometheus duration such as ``20m`` or ``1h30m``."""
    match = _DURATION.match(duration)
    if not duration or not match:
        raise ValueError(f"not a Prometheus duration: {duration!r} (e.g. 30s, 5m, 1h30m)")
    return sum(
        int(n) * unit for n, unit in zip(match.groups(), _DURATION_SECONDS, strict=True) if n
    )


def seconds_to_duration(seconds: float) -> str:
    """The shortest whole-unit Prometheus duration for ``seconds`` (rounded to a second)."""
    total = max(0, round(seconds))
    for suffix, unit in (("h", 3600), ("m", 60)):
        if total and total % unit == 0:
            return f"{total // unit}{suffix}"
    return f"{total}s"


def _duration(name: str, value: str) -> str:
    try:
        duration_seconds(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return value


def _positive_duration(name: str, value: str) -> str:
    if not duration_seconds(_duration(name, value)) > 0:
        raise ValueError(f"{name} must be longer than 0s (a PromQL range), got {value!r}")
    return value


def _target(name: str, value: str) -> str:
    if not _TARGET.match(value):
        raise ValueError(f"{name} must be host:port, got {value!r}")
    return json.dumps(value)


def _link(name: str, value: str) -> str:
    if not _LINK.match(value):
        raise ValueError(f"{name} must be a URL or path without spaces or quotes, got {value!r}")
    return value


def _number(name: str, value: float) -> str:
    if not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return f"{value:g}"


def render_prometheus(
    *,
    service_target: str,
    monitor_target: str,
    alertmanager_target: str,
    scrape_interval: str = "15s",
    evaluation_interval: str = "15s",
) -> str:
    values = {
        "SERVICE_TARGET": _target("service_target", service_target),
        "MONITOR_TARGET": _target("monitor_target", monitor_target),
        "ALERTMANAGER_TARGET": _target("alertmanager_target", alertmanager_target),
        "SCRAPE_INTERVAL": _duration("scrape_interval", scrape_interval),
        "EVALUATION_INTERVAL": _duration("evaluation_interval", evaluation_interval),
    }
    return _checked(_header(PROMETHEUS_TEMPLATE) + substitute(_read(PROMETHEUS_TEMPLATE), values))


def _higher_is_better_classifier_metrics() -> str:
    """The classifier metrics an absolute drop alarms on (not log loss: lower is better)."""
    from vigil.tasks.base import CLASSIFIER

    return "|".join(m for m in CLASSIFIER.metrics if CLASSIFIER.higher_is_better[m])


def render_rules(
    *,
    for_all: str | None = None,
    for_overrides: Mapping[str, str] | None = None,
    stale_after: str = "20m",
    monitor_keep_firing_for: str = MONITOR_KEEP_FIRING_FOR,
    feature_alone_for: str = FEATURE_ALONE_FOR,
    rate_window: str = "5m",
    error_rate_threshold: float = 0.05,
    latency_p95_seconds: float = 0.5,
    quality_margin: float = 0.05,
    quality_rmse_margin: float = 0.2,
    quality_min_labeled_rows: int = 200,
    report_base_url: str = "http://127.0.0.1:9108/reports/",
    runbook_url: str = "docs/runbook.md",
) -> str:
    """The alert rules; ``for_all`` replaces every ``for:``, ``for_overrides`` single ones;
    ``monitor_keep_firing_for`` is how long a drift or quality alert outlives its condition;
    ``feature_alone_for`` how long a feature drifting without a dataset verdict must persist."""
    overrides = dict(for_overrides or {})
    unknown = sorted(set(overrides) - set(ALERT_NAMES))
    if unknown:
        raise ValueError(f"unknown alert(s) in for_overrides: {', '.join(unknown)}")
    values: dict[str, str] = {}
    for alert, default in DEFAULT_FOR.items():
        chosen = overrides.get(alert, for_all if for_all is not None else default)
        values[f"FOR_{alert.upper()}"] = _duration(f"for {alert}", chosen)
    if not 0 < error_rate_threshold < 1:
        raise ValueError(f"error_rate_threshold must be in (0, 1), got {error_rate_threshold}")
    values |= {
        "STALE_AFTER": _duration("stale_after", stale_after),
        "MONITOR_KEEP_FIRING_FOR": _duration("monitor_keep_firing_for", monitor_keep_firing_for),
        "FEATURE_ALONE_FOR": _positive_duration("feature_alone_for", feature_alone_for),
        "STALE_AFTER_SECONDS": f"{duration_seconds(stale_after):g}",
        "RATE_WINDOW": _duration("rate_window", rate_window),
        "ERROR_RATE_THRESHOLD": _number("error_rate_threshold", error_rate_threshold),
        "ERROR_RATE_PERCENT": f"{error_rate_threshold * 100:g}%",
        "LATENCY_P95_SECONDS": _number("latency_p95_seconds", latency_p95_seconds),
        "QUALITY_MARGIN": _number("quality_margin", quality_margin),
        "QUALITY_HIGHER_METRICS": _higher_is_better_classifier_metrics(),
        "QUALITY_RMSE_MARGIN": _number("quality_rmse_margin", quality_rmse_margin),
        "QUALITY_RMSE_MARGIN_PERCENT": f"{quality_rmse_margin * 100:g}%",
        "QUALITY_MIN_LABELED_ROWS": str(int(quality_min_labeled_rows)),
        "REPORT_URL": _link("report_base_url", report_base_url.rstrip("/") + "/latest"),
        "RUNBOOK_URL": _link("runbook_url", runbook_url),
    }
    return _checked(_header(RULES_TEMPLATE) + substitute(_read(RULES_TEMPLATE), values))


# Only when the retraining trigger is on (VIGIL_RETRAIN_TRIGGER_ENABLED): `continue` keeps the
# people's webhook notified as well.
_RETRAIN_ROUTE = """    - matchers: ['alertname=~"DataDriftDetected|ModelQualityDrop"']
      receiver: vigil-retrain
      continue: true
"""
_RETRAIN_RECEIVER = """  - name: vigil-retrain
    webhook_configs:
      - url: URL
        send_resolved: false
        http_config:
          authorization:
            type: Bearer
            credentials_file: TOKEN_FILE
"""
# Written next to alertmanager.yml, readable by its owner only; the config names only the file.
RETRAIN_TOKEN_FILE = Path("retrain_token")


def render_alertmanager(
    *,
    webhook_url: str,
    group_wait: str = "30s",
    group_interval: str = "5m",
    repeat_interval: str = "4h",
    drift_group_wait: str = DRIFT_GROUP_WAIT,
    retrain_url: str | None = None,
    retrain_token_file: Path | None = None,
) -> str:
    """``retrain_url``: also send drift and quality alerts to the retraining trigger, with the
    bearer token read from ``retrain_token_file`` (an absolute path)."""
    for name, url in (("webhook_url", webhook_url), ("retrain_url", retrain_url or "http://")):
        if not re.match(r"^https?://", url):
            raise ValueError(f"{name} must be an http(s) URL, got {url!r}")
    if retrain_url and not (retrain_token_file and Path(retrain_token_file).is_absolute()):
        raise ValueError("retrain_url needs retrain_token_file, an absolute path")
    values = {
        "RETRAIN_ROUTE": _RETRAIN_ROUTE if retrain_url else "",
        "RETRAIN_RECEIVER": (
            _RETRAIN_RECEIVER.replace("URL", json.dumps(_link("retrain_url", retrain_url))).replace(
                "TOKEN_FILE", json.dumps(str(retrain_token_file))
            )
            if retrain_url
            else ""
        ),
        "WEBHOOK_URL": json.dumps(_link("webhook_url", webhook_url)),
        "GROUP_WAIT": _duration("group_wait", group_wait),
        "DRIFT_GROUP_WAIT": _duration("drift_group_wait", drift_group_wait),
        "GROUP_INTERVAL": _duration("group_interval", group_interval),
        "REPEAT_INTERVAL": _duration("repeat_interval", repeat_interval),
    }
    return _checked(
        _header(ALERTMANAGER_TEMPLATE) + substitute(_read(ALERTMANAGER_TEMPLATE), values)
    )


def render_configs(
    out_dir: Path,
    *,
    service_target: str,
    monitor_target: str,
    alertmanager_target: str,
    webhook_url: str,
    scrape_interval: str = "15s",
    evaluation_interval: str = "15s",
    for_all: str | None = None,
    for_overrides: Mapping[str, str] | None = None,
    stale_after: str = "20m",
    monitor_keep_firing_for: str = MONITOR_KEEP_FIRING_FOR,
    feature_alone_for: str = FEATURE_ALONE_FOR,
    rate_window: str = "5m",
    error_rate_threshold: float = 0.05,
    latency_p95_seconds: float = 0.5,
    quality_margin: float = 0.05,
    quality_rmse_margin: float = 0.2,
    quality_min_labeled_rows: int = 200,
    group_wait: str = "30s",
    group_interval: str = "5m",
    repeat_interval: str = "4h",
    drift_group_wait: str = DRIFT_GROUP_WAIT,
    report_base_url: str = "http://127.0.0.1:9108/reports/",
    runbook_url: str = "docs/runbook.md",
    retrain_url: str | None = None,
    retrain_token: str | None = None,
) -> dict[str, Path]:
    """Write prometheus.yml, rules/vigil.rules.yml and alertmanager.yml into ``out_dir`` (and,
    with ``retrain_url``, the trigger's token as ``retrain_token``, mode 0600).

    Returns their paths under the keys ``prometheus``, ``rules`` and ``alertmanager``.
    """
    token_file = (Path(out_dir) / RETRAIN_TOKEN_FILE).resolve() if retrain_url else None
    if token_file is not None:
        if not retrain_token:
            raise ValueError("retrain_url needs retrain_token (VIGIL_RETRAIN_TRIGGER_TOKEN)")
        token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(retrain_token)
    texts = {
        "prometheus": (
            PROMETHEUS_FILE,
            render_prometheus(
                service_target=service_target,
                monitor_target=monitor_target,
                alertmanager_target=alertmanager_target,
                scrape_interval=scrape_interval,
                evaluation_interval=evaluation_interval,
            ),
        ),
        "rules": (
            RULES_FILE,
            render_rules(
                for_all=for_all,
                for_overrides=for_overrides,
                stale_after=stale_after,
                monitor_keep_firing_for=monitor_keep_firing_for,
                feature_alone_for=feature_alone_for,
                rate_window=rate_window,
                error_rate_threshold=error_rate_threshold,
                latency_p95_seconds=latency_p95_seconds,
                quality_margin=quality_margin,
                quality_rmse_margin=quality_rmse_margin,
                quality_min_labeled_rows=quality_min_labeled_rows,
                report_base_url=report_base_url,
                runbook_url=runbook_url,
            ),
        ),
        "alertmanager": (
            ALERTMANAGER_FILE,
            render_alertmanager(
                webhook_url=webhook_url,
                group_wait=group_wait,
                group_interval=group_interval,
                repeat_interval=repeat_interval,
                drift_group_wait=drift_group_wait,
                retrain_url=retrain_url,
                retrain_token_file=token_file,
            ),
        ),
    }
    written: dict[str, Path] = {}
    for key, (relative, text) in texts.items():
        path = Path(out_dir) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written[key] = path
    return written


def settings_defaults(settings: object) -> dict[str, object]:
    """render_configs keyword arguments for a local run from a ``vigil.settings.Settings``."""
    s = settings
    return {
        "service_target": f"{_local(s.host)}:{s.port}",
        "monitor_target": f"{_local(s.monitor_host)}:{s.monitor_port}",
        "alertmanager_target": f"127.0.0.1:{s.alertmanager_port}",
        "webhook_url": s.resolved_alert_webhook_url,
        "report_base_url": f"http://{_local(s.monitor_host)}:{s.monitor_port}/reports/",
        # Three missed checks plus one interval of slack for a slow check.
        "stale_after": seconds_to_duration(4 * s.drift_interval_seconds),
        "quality_margin": s.quality_alert_margin,
        "quality_rmse_margin": s.quality_rmse_margin,
        "quality_min_labeled_rows": s.quality_alert_min_labels,
        "retrain_url": (
            f"http://127.0.0.1:{s.retrain_trigger_port}/retrain"
            if s.retrain_trigger_enabled
            else None
        ),
        "retrain_token": (
            s.retrain_trigger_token.get_secret_value() if s.retrain_trigger_token else None
        ),
    }


def committed_files(settings: object) -> dict[Path, str]:
    """The committed rendered configs (paths relative to ``monitoring/``) for these settings."""
    local = settings_defaults(settings)
    compose = {**local, **COMPOSE_TARGETS}
    rules_args = {
        k: local[k]
        for k in (
            "report_base_url",
            "stale_after",
            "quality_margin",
            "quality_rmse_margin",
            "quality_min_labeled_rows",
        )
    }
    prom_keys = ("service_target", "monitor_target", "alertmanager_target")
    return {
        Path("prometheus") / PROMETHEUS_FILE: render_prometheus(**{k: local[k] for k in prom_keys}),
        Path("prometheus/prometheus.compose.yml"): render_prometheus(
            **{k: compose[k] for k in prom_keys}
        ),
        Path("prometheus") / RULES_FILE: render_rules(**rules_args),
        Path("alertmanager") / ALERTMANAGER_FILE: render_alertmanager(
            webhook_url=local["webhook_url"]
        ),
        Path("alertmanager/alertmanager.compose.yml"): render_alertmanager(
            webhook_url=compose["webhook_url"]
        ),
    }


def _local(host: str) -> str:
    # A server bound to all interfaces is scraped over loopback.
    return "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _header(template: Path) -> str:
    source = template.relative_to(MONITORING_DIR.parent)
    return f"# GENERATED from {source} by monitoring/render.py; edit the template, not this file.\n"


def _checked(text: str) -> str:
    yaml.safe_load(text)  # a bad substitution fails here, not in Prometheus
    return text


app = typer.Typer(
    add_completion=False,
    help="Render Vigil's Prometheus, rules and Alertmanager configs from their templates.",
)


@app.command()
def main(
    out: Annotated[
        Path | None,
        typer.Option(help="Directory to write prometheus.yml, rules/ and alertmanager.yml into."),
    ] = None,
    committed: Annotated[
        bool,
        typer.Option(
            "--committed",
            help="Rewrite the committed defaults under monitoring/ (local and compose variants) "
            "from the built-in defaults, ignoring the environment.",
        ),
    ] = False,
    scrape_interval: Annotated[str, typer.Option(help="Prometheus scrape interval.")] = "15s",
    evaluation_interval: Annotated[
        str, typer.Option(help="Prometheus rule evaluation interval.")
    ] = "15s",
    for_all: Annotated[
        str | None,
        typer.Option("--for", help="Replace every alert's `for:` (e.g. 0s for demos and tests)."),
    ] = None,
    group_wait: Annotated[str, typer.Option(help="Alertmanager group_wait.")] = "30s",
    group_interval: Annotated[str, typer.Option(help="Alertmanager group_interval.")] = "5m",
    repeat_interval: Annotated[str, typer.Option(help="Alertmanager repeat_interval.")] = "4h",
    drift_group_wait: Annotated[
        str, typer.Option(help="Alertmanager group_wait of the drift route.")
    ] = DRIFT_GROUP_WAIT,
    monitor_keep_firing_for: Annotated[
        str, typer.Option(help="How long a drift or quality alert outlives its condition.")
    ] = MONITOR_KEEP_FIRING_FOR,
) -> None:
    """Targets, ports and the webhook URL come from the VIGIL_* settings."""
    from vigil.settings import Settings, get_settings

    if committed == (out is not None):
        raise typer.BadParameter("give exactly one of --out DIR or --committed")
    if committed:
        # model_construct skips the environment and .env: the committed files are the defaults.
        for relative, text in committed_files(Settings.model_construct()).items():
            (MONITORING_DIR / relative).write_text(text, encoding="utf-8")
            typer.echo(f"wrote monitoring/{relative}")
        return
    paths = render_configs(
        out,
        **settings_defaults(get_settings()),
        scrape_interval=scrape_interval,
        evaluation_interval=evaluation_interval,
        for_all=for_all,
        group_wait=group_wait,
        group_interval=group_interval,
        repeat_interval=repeat_interval,
        drift_group_wait=drift_group_wait,
        monitor_keep_firing_for=monitor_keep_firing_for,
    )
    for path in paths.values():
        typer.echo(f"wrote {path}")


if __name__ == "__main__":
    app()
