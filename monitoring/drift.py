"""The drift monitor's command line.

    python -m monitoring.drift check [--json] [--window-rows N] [--fail-on-drift]
    python -m monitoring.drift run

``check`` exits 0 after a check whatever the verdict, 1 with ``--fail-on-drift`` when the
dataset drifted, 2 when the check could not run (the reason on stderr).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import sys
from typing import Annotated

import typer

app = typer.Typer(
    help="Vigil drift monitor: compares the production model's logged inputs with its "
    "training reference (settings from VIGIL_* variables or .env).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def check(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print exactly one JSON object (the contract's)")
    ] = False,
    window_rows: Annotated[
        int | None,
        typer.Option(min=1, help="Rows in the window (default: VIGIL_DRIFT_WINDOW_ROWS)"),
    ] = None,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help="Exit 1 when the dataset drifted")
    ] = False,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Skip the HTML report (seconds faster)")
    ] = False,
) -> None:
    """One drift check now of the production model's latest window.

    Writes an HTML report under VIGIL_HOME/reports. Exit 0 after a check, 1 with
    --fail-on-drift when the dataset drifted, 2 when the check could not run.
    """
    from monitoring.check import Checker, CheckFailed
    from vigil.settings import get_settings

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    # The report is rendered after the verdict, so a person reads the verdict seconds sooner.
    checker = Checker(get_settings(), report=False)
    try:
        # Nothing but our own lines may reach stdout: libraries' prints go to stderr.
        with contextlib.redirect_stdout(sys.stderr):
            result = checker.check(window_rows)
        payload = result.payload
        report = result.report_job is not None and not no_report
        if not as_json:
            typer.echo(describe(payload, report_pending=report))
        if report:
            with contextlib.redirect_stdout(sys.stderr):
                checker.write_report(result)
            if not as_json:
                typer.echo(f"report: {payload['report_path'] or payload['message']}")
    except CheckFailed as exc:
        typer.echo(f"drift check could not run: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:  # exit 1 means drift: an unexpected failure must not look like it
        logging.getLogger(__name__).debug("drift check failed", exc_info=True)
        typer.echo(f"drift check failed: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(2) from None
    finally:
        checker.close()
    if as_json:
        typer.echo(json.dumps(payload))
    if fail_on_drift and payload["drift_detected"]:
        raise typer.Exit(1)


# Drifted features shown with their test in the summary; the rest by name (all in --json).
SHOWN_FEATURES = 5


def describe(p: dict, *, report_pending: bool = False) -> str:
    """The check for a person to read: verdict, drifted features, estimated and live quality,
    data quality, and the report (its path, or that it is being written)."""
    lines = [
        f"model {p['model_version']}: window {p['window_rows']} rows"
        f"{' (sampled)' if p['sampled'] else ''}, reference {p['reference_rows']} rows"
    ]
    if p["drift_detected"] is None:
        lines.append(f"no verdict: {p['message']}")
    else:
        verdict = "DRIFT DETECTED" if p["drift_detected"] else "no dataset drift"
        drifted = [(name, f) for name, f in p["features"].items() if f["drifted"]]
        lines.append(
            f"{verdict}: drift share {p['drift_share']} "
            f"({len(drifted)} of {len(p['features'])} features)"
        )
        for name, f in drifted[:SHOWN_FEATURES]:
            score = "untested" if f["score"] is None else f"{f['score']:.3g}"
            note = f" ({f['note']})" if f.get("note") else ""
            lines.append(
                f"  drifted: {name}  {f['method']} {f['score_kind']} {score} "
                f"< {f['threshold']:.3g}{note}"
            )
        if len(drifted) > SHOWN_FEATURES:
            rest = ", ".join(name for name, _ in drifted[SHOWN_FEATURES:])
            lines.append(f"  and {len(drifted) - SHOWN_FEATURES} more: {rest}")
        pred = p["prediction_drift"]
        if pred:
            lines.append(
                f"prediction drift: {'yes' if pred['drifted'] else 'no'} "
                f"({pred['method']} {pred['score_kind']} {pred['score']:.3g})"
            )
        if p["message"]:
            lines.append(p["message"])
    quality = p.get("quality")
    if quality:
        from vigil.tasks import QUALITY_METRICS

        figures = ", ".join(f"{m} {quality[m]}" for m in QUALITY_METRICS if m in quality)
        lines.append(f"live quality on {quality['labeled_rows']} labeled rows: {figures}")
    lines.extend(_estimated_and_data_quality(p))
    if p["report_path"]:
        lines.append(f"report: {p['report_path']}")
    elif report_pending:
        lines.append("report: writing the HTML report…")
    return "\n".join(lines)


def _estimated_and_data_quality(p: dict) -> list[str]:
    lines = []
    estimated = p.get("estimated_quality") or {}
    figures = [
        f"{m} {v:.3g}" + (f" ± {se:.2g}" if (se := estimated.get(m + "_se")) is not None else "")
        for m, v in estimated.items()
        if not m.endswith("_se") and v is not None
    ]
    if figures:
        lines.append(f"estimated quality (no labels): {', '.join(figures)}")
    data_quality = p.get("data_quality")
    if data_quality is not None:
        flagged = {n: q for n, q in data_quality.items() if q.get("flagged")}
        if not flagged:
            lines.append(f"data quality: no feature flagged ({len(data_quality)} checked)")
        for name, q in flagged.items():
            lines.append(
                f"  data quality flagged: {name}  {', '.join(q.get('flagged_checks') or [])}"
            )
    return lines


@app.command()
def run() -> None:
    """Check every VIGIL_DRIFT_INTERVAL_SECONDS and serve /metrics and /reports/.

    The first check runs at start; HTTP on VIGIL_MONITOR_HOST:VIGIL_MONITOR_PORT. Runs until
    Ctrl-C or SIGTERM.
    """
    from monitoring.monitor import serve
    from vigil.settings import get_settings

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    # Alembic's INFO lines ("Context impl SQLiteImpl.") tell an operator nothing.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = get_settings()
    try:
        serve(settings)
    except OSError as exc:  # the port is taken, most often
        typer.echo(
            f"drift monitor cannot serve on {settings.monitor_host}:{settings.monitor_port}: {exc}",
            err=True,
        )
        raise typer.Exit(2) from None
    # The process ends here: the last collection at exit would walk every object the check's
    # libraries made (seconds on a loaded machine, past a pod's grace period) only to free
    # memory that the exit frees anyway.
    gc.freeze()


if __name__ == "__main__":
    app()
