"""Render the Prometheus and Alertmanager configs from their templates (``vigil render configs``).

Neither Prometheus nor Alertmanager 0.25 expands environment variables, so the webhook URL,
targets, intervals and alert durations are substituted here, at start (``make run``) or in tests,
and the committed files under ``monitoring/`` are these templates rendered with the defaults.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import yaml

# The templates and the committed configs are the monitoring package's data: found by its spec,
# which runs none of its code.
MONITORING_DIR = Path(importlib.util.find_spec("monitoring").submodule_search_locations[0])
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


def _error_rate(name: str, value: float) -> dict[str, str]:
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value}")
    return {"ERROR_RATE_THRESHOLD": _number(name, value), "ERROR_RATE_PERCENT": f"{value * 100:g}%"}


def _stale_after(name: str, value: str) -> dict[str, str]:
    return {
        "STALE_AFTER": _duration(name, value),
        "STALE_AFTER_SECONDS": f"{duration_seconds(value):g}",
    }


def _rmse_margin(name: str, value: float) -> dict[str, str]:
    return {
        "QUALITY_RMSE_MARGIN": _number(name, value),
        "QUALITY_RMSE_MARGIN_PERCENT": f"{value * 100:g}%",
    }


def _report_url(name: str, value: str) -> dict[str, str]:
    return {"REPORT_URL": _link(name, value.rstrip("/") + "/latest")}


def _count(name: str, value: int) -> str:
    return str(int(value))


def _one(check: Callable[[str, Any], str]) -> Callable[[str, Any], dict[str, str]]:
    """A check that fills the placeholder named as the parameter, upper case."""
    return lambda name, value: {name.upper(): check(name, value)}


@dataclass(frozen=True)
class AlertParameter:
    """A value rendered into one config: its keyword (``render_configs`` and the CLI), its
    default, the placeholders it fills (checked), and the setting a local run takes it from."""

    name: str
    config: Literal["prometheus", "rules", "alertmanager"]
    default: Any
    fill: Callable[[str, Any], dict[str, str]]
    doc: str
    setting: str = ""  # the VIGIL_ variable(s) it follows, for the docs
    from_settings: Callable[[Any], Any] | None = None


# The one declaration of every tunable value in the configs; the renderers, the settings
# mapping (settings_defaults), the CLI and the table in docs/alerting.md read it.
ALERT_PARAMETERS: tuple[AlertParameter, ...] = (
    AlertParameter(
        "scrape_interval", "prometheus", "15s", _one(_duration), "Prometheus scrape interval."
    ),
    AlertParameter(
        "evaluation_interval",
        "prometheus",
        "15s",
        _one(_duration),
        "Prometheus rule evaluation interval.",
    ),
    AlertParameter(
        "stale_after",
        "rules",
        "20m",
        _stale_after,
        "DriftCheckStale: no successful check for this long. Three missed checks plus one "
        "interval of slack for a slow check.",
        "4 × VIGIL_DRIFT_INTERVAL_SECONDS",
        lambda s: seconds_to_duration(4 * s.drift_interval_seconds),
    ),
    AlertParameter(
        "monitor_keep_firing_for",
        "rules",
        "5m",
        _one(_duration),
        "How long a drift or quality alert outlives its last firing evaluation: a borderline "
        "window that flips between checks, or a standby monitor taking over, does not "
        "resolve and re-fire it.",
    ),
    AlertParameter(
        "feature_alone_for",
        "rules",
        "5m",
        _one(_positive_duration),
        "FeatureDriftDetected without a dataset-level verdict: how long the feature must have "
        "stayed drifted.",
    ),
    AlertParameter(
        "rate_window",
        "rules",
        "5m",
        _one(_duration),
        "The range of the service's error-rate and latency queries.",
    ),
    AlertParameter(
        "error_rate_threshold",
        "rules",
        0.05,
        _error_rate,
        "HighPredictionErrorRate: share of requests answered 5xx.",
    ),
    AlertParameter(
        "latency_p95_seconds",
        "rules",
        0.5,
        _one(_number),
        "HighPredictionLatency: 95th percentile of request latency, in seconds.",
    ),
    AlertParameter(
        "quality_margin",
        "rules",
        0.05,
        _one(_number),
        "ModelQualityDrop: how far a classifier's live score may fall below its held-out value.",
        "VIGIL_QUALITY_ALERT_MARGIN",
        lambda s: s.quality_alert_margin,
    ),
    AlertParameter(
        "quality_rmse_margin",
        "rules",
        0.2,
        _rmse_margin,
        "ModelQualityDrop: a regressor's live RMSE above its held-out RMSE by this share "
        "(ModelQualityDropEstimated: the same for estimated MAE and RMSE).",
        "VIGIL_QUALITY_RMSE_MARGIN",
        lambda s: s.quality_rmse_margin,
    ),
    AlertParameter(
        "quality_min_labeled_rows",
        "rules",
        200,
        _one(_count),
        "ModelQualityDrop: labeled rows needed behind a live metric.",
        "VIGIL_QUALITY_ALERT_MIN_LABELS",
        lambda s: s.quality_alert_min_labels,
    ),
    AlertParameter(
        "report_base_url",
        "rules",
        "http://127.0.0.1:9108/reports/",
        _report_url,
        "Where the alerts link to the latest drift report.",
        "VIGIL_MONITOR_HOST, VIGIL_MONITOR_PORT",
        lambda s: f"http://{_local(s.monitor_host)}:{s.monitor_port}/reports/",
    ),
    AlertParameter(
        "runbook_url",
        "rules",
        "docs/runbook.md",
        _one(_link),
        "Where the alerts link to the runbook.",
    ),
    AlertParameter(
        "group_wait", "alertmanager", "30s", _one(_duration), "Alertmanager group_wait."
    ),
    AlertParameter(
        "group_interval", "alertmanager", "5m", _one(_duration), "Alertmanager group_interval."
    ),
    AlertParameter(
        "repeat_interval", "alertmanager", "4h", _one(_duration), "Alertmanager repeat_interval."
    ),
    AlertParameter(
        "drift_group_wait",
        "alertmanager",
        "10s",
        _one(_duration),
        "Alertmanager group_wait of the drift route: DataDriftDetected and its "
        "FeatureDriftDetected alerts fire in one rule evaluation and are sent together.",
    ),
)
PARAMETERS: dict[str, AlertParameter] = {p.name: p for p in ALERT_PARAMETERS}
DOCS = MONITORING_DIR.parent / "docs" / "alerting.md"
TABLE_MARKERS = (
    "<!-- parameters: generated by `vigil render configs --committed` -->\n",
    "<!-- end of parameters -->\n",
)


def _filled(config: str, given: Mapping[str, Any]) -> dict[str, str]:
    """The placeholders of ``config``'s parameters: ``given`` values, else the defaults."""
    own = {p.name: p for p in ALERT_PARAMETERS if p.config == config}
    unknown = sorted(set(given) - set(own))
    if unknown:
        raise TypeError(f"not a parameter of the {config} config: {', '.join(unknown)}")
    values: dict[str, str] = {}
    for name, parameter in own.items():
        values |= parameter.fill(name, given.get(name, parameter.default))
    return values


def _split(parameters: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``parameters`` by the config each belongs to; an unknown name is a TypeError."""
    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise TypeError(f"unknown alert parameter(s): {', '.join(unknown)}")
    out: dict[str, dict[str, Any]] = {"prometheus": {}, "rules": {}, "alertmanager": {}}
    for name, value in parameters.items():
        out[PARAMETERS[name].config][name] = value
    return out


def parameters_table() -> str:
    """The parameters as a Markdown table (``DOCS`` holds it between ``TABLE_MARKERS``)."""
    lines = [
        "| parameter | config | default | follows | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in ALERT_PARAMETERS:
        follows = p.setting or ""
        lines.append(f"| `{p.name}` | {p.config} | `{p.default}` | {follows} | {p.doc} |")
    return "\n".join(lines) + "\n"


def with_parameters_table(text: str) -> str:
    """``text`` (docs/alerting.md) with the table between its markers rewritten."""
    begin, end = TABLE_MARKERS
    head, found, rest = text.partition(begin)
    if not found or end not in rest:
        raise ValueError(f"{DOCS.name} lacks the parameter table's markers")
    return head + begin + parameters_table() + end + rest.split(end, 1)[1]


def render_prometheus(
    *, service_target: str, monitor_target: str, alertmanager_target: str, **parameters: Any
) -> str:
    """prometheus.yml; ``parameters``: the prometheus ones of ``ALERT_PARAMETERS``."""
    values = {
        "SERVICE_TARGET": _target("service_target", service_target),
        "MONITOR_TARGET": _target("monitor_target", monitor_target),
        "ALERTMANAGER_TARGET": _target("alertmanager_target", alertmanager_target),
        **_filled("prometheus", parameters),
    }
    return _checked(_header(PROMETHEUS_TEMPLATE) + substitute(_read(PROMETHEUS_TEMPLATE), values))


def _higher_is_better_classifier_metrics() -> str:
    """The classifier metrics an absolute drop alarms on (not log loss: lower is better)."""
    from vigil.tasks import CLASSIFIER

    return "|".join(m for m in CLASSIFIER.metrics if CLASSIFIER.higher_is_better[m])


def render_rules(
    *,
    for_all: str | None = None,
    for_overrides: Mapping[str, str] | None = None,
    **parameters: Any,
) -> str:
    """The alert rules; ``for_all`` replaces every ``for:``, ``for_overrides`` single ones;
    ``parameters``: the rules ones of ``ALERT_PARAMETERS``."""
    overrides = dict(for_overrides or {})
    unknown = sorted(set(overrides) - set(ALERT_NAMES))
    if unknown:
        raise ValueError(f"unknown alert(s) in for_overrides: {', '.join(unknown)}")
    values: dict[str, str] = {}
    for alert, default in DEFAULT_FOR.items():
        chosen = overrides.get(alert, for_all if for_all is not None else default)
        values[f"FOR_{alert.upper()}"] = _duration(f"for {alert}", chosen)
    values |= _filled("rules", parameters)
    values["QUALITY_HIGHER_METRICS"] = _higher_is_better_classifier_metrics()
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
    retrain_url: str | None = None,
    retrain_token_file: Path | None = None,
    **parameters: Any,
) -> str:
    """``retrain_url``: also send drift and quality alerts to the retraining trigger, with the
    bearer token read from ``retrain_token_file`` (an absolute path); ``parameters``: the
    alertmanager ones of ``ALERT_PARAMETERS``."""
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
        **_filled("alertmanager", parameters),
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
    for_all: str | None = None,
    for_overrides: Mapping[str, str] | None = None,
    retrain_url: str | None = None,
    retrain_token: str | None = None,
    **parameters: Any,
) -> dict[str, Path]:
    """Write prometheus.yml, rules/vigil.rules.yml and alertmanager.yml into ``out_dir`` (and,
    with ``retrain_url``, the trigger's token as ``retrain_token``, mode 0600); ``parameters``:
    any of ``ALERT_PARAMETERS``, the rest keep their defaults.

    Returns their paths under the keys ``prometheus``, ``rules`` and ``alertmanager``.
    """
    by_config = _split(parameters)
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
                **by_config["prometheus"],
            ),
        ),
        "rules": (
            RULES_FILE,
            render_rules(for_all=for_all, for_overrides=for_overrides, **by_config["rules"]),
        ),
        "alertmanager": (
            ALERTMANAGER_FILE,
            render_alertmanager(
                webhook_url=webhook_url,
                retrain_url=retrain_url,
                retrain_token_file=token_file,
                **by_config["alertmanager"],
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
        **{p.name: p.from_settings(s) for p in ALERT_PARAMETERS if p.from_settings},
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
    from_settings = _split({p.name: local[p.name] for p in ALERT_PARAMETERS if p.from_settings})
    prom_keys = ("service_target", "monitor_target", "alertmanager_target")
    return {
        Path("prometheus") / PROMETHEUS_FILE: render_prometheus(**{k: local[k] for k in prom_keys}),
        Path("prometheus/prometheus.compose.yml"): render_prometheus(
            **{k: compose[k] for k in prom_keys}
        ),
        Path("prometheus") / RULES_FILE: render_rules(**from_settings["rules"]),
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
    return (
        f"# GENERATED from {source} by `vigil render configs` (vigil/render/alerting.py); "
        "edit the template, not this file.\n"
    )


def _checked(text: str) -> str:
    yaml.safe_load(text)  # a bad substitution fails here, not in Prometheus
    return text


app = typer.Typer(
    add_completion=False,
    help="Render Vigil's Prometheus, rules and Alertmanager configs from their templates.",
)


def _option(name: str) -> Any:
    """The CLI option of an alert parameter: its default and help from the one declaration."""
    return typer.Option(help=PARAMETERS[name].doc)


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
            "and the parameter table in docs/alerting.md from the built-in defaults, ignoring "
            "the environment.",
        ),
    ] = False,
    scrape_interval: Annotated[str, _option("scrape_interval")] = PARAMETERS[
        "scrape_interval"
    ].default,
    evaluation_interval: Annotated[str, _option("evaluation_interval")] = PARAMETERS[
        "evaluation_interval"
    ].default,
    for_all: Annotated[
        str | None,
        typer.Option("--for", help="Replace every alert's `for:` (e.g. 0s for demos and tests)."),
    ] = None,
    group_wait: Annotated[str, _option("group_wait")] = PARAMETERS["group_wait"].default,
    group_interval: Annotated[str, _option("group_interval")] = PARAMETERS[
        "group_interval"
    ].default,
    repeat_interval: Annotated[str, _option("repeat_interval")] = PARAMETERS[
        "repeat_interval"
    ].default,
    drift_group_wait: Annotated[str, _option("drift_group_wait")] = PARAMETERS[
        "drift_group_wait"
    ].default,
    monitor_keep_firing_for: Annotated[str, _option("monitor_keep_firing_for")] = PARAMETERS[
        "monitor_keep_firing_for"
    ].default,
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
        DOCS.write_text(with_parameters_table(DOCS.read_text(encoding="utf-8")), encoding="utf-8")
        typer.echo(f"wrote {DOCS.relative_to(MONITORING_DIR.parent)}")
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
