"""Prometheus and Alertmanager in tests: how to start the real binaries, an in-test webhook that
records what Alertmanager posts, and a small Prometheus query client."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import yaml

from tests.conftest import need_binary
from tests.support.processes import Proc, http_ok, wait_until
from tests.support.prom import samples


def start_prometheus(config: Path, data: Path, port: int, log: Path, *extra: str, env=None) -> Proc:
    """Debian's Prometheus on ``port`` (not waited for: see ``wait_ready``)."""
    argv = [
        need_binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        *extra,
    ]
    return Proc("prometheus", argv, log, env)


def start_alertmanager(config: Path, data: Path, port: int, log: Path, env=None) -> Proc:
    """Debian's Alertmanager on ``port``, clustering off (not waited for)."""
    argv = [
        need_binary("prometheus-alertmanager", "alertmanager"),
        f"--config.file={config}",
        f"--storage.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    return Proc("alertmanager", argv, log, env)


def wait_ready(proc: Proc, base: str, timeout: float = 30.0) -> None:
    """Until ``base/-/ready`` answers 200 (both binaries have it)."""
    wait_until(lambda: http_ok(f"{base}/-/ready"), timeout, f"{proc.name} /-/ready", [proc])


def notifications_due(base: str, config: Path) -> int | None:
    """How many notifications the Alertmanager at ``base`` sends first for the alerts it holds:
    one per integration of each aggregation group's receiver in ``config`` (None while it does
    not answer). A group sends nothing more before its group_interval."""
    integrations = {
        receiver["name"]: sum(len(v) for k, v in receiver.items() if k.endswith("_configs"))
        for receiver in yaml.safe_load(config.read_text())["receivers"]
    }
    try:
        groups = httpx.get(
            f"{base}/api/v2/alerts/groups",
            params={"inhibited": "false", "silenced": "false"},
            timeout=5,
        ).json()
    except (httpx.HTTPError, ValueError):
        return None
    return sum(integrations[group["receiver"]["name"]] for group in groups)


@dataclass
class Received:
    at: float  # time.monotonic() when the notification arrived
    status: str
    labels: dict
    annotations: dict


class Webhook(ThreadingHTTPServer):
    """The in-test Alertmanager receiver: records every alert of every notification."""

    daemon_threads = True

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.payloads: list[dict] = []  # each notification as posted
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                at = time.monotonic()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hook.lock:
                    hook.payloads.append(body)
                    for alert in body.get("alerts", []):
                        hook.received.append(
                            Received(
                                at,
                                alert["status"],
                                alert.get("labels", {}),
                                alert.get("annotations", {}),
                            )
                        )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/alerts"

    def alerts(self, name: str | None = None, status: str = "firing", **labels) -> list[Received]:
        with self.lock:
            return [
                r
                for r in self.received
                if r.status == status
                and (name is None or r.labels.get("alertname") == name)
                and all(r.labels.get(k) == v for k, v in labels.items())
            ]

    def first(self, name: str, since: float = 0.0, **labels) -> Received | None:
        hits = [r for r in self.alerts(name, **labels) if r.at >= since]
        return min(hits, key=lambda r: r.at) if hits else None

    def names(self) -> set[str]:
        return {r.labels.get("alertname") for r in self.alerts()}

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class Prometheus:
    def __init__(self, base: str):
        self.base = base

    def query(self, expr: str) -> list[dict] | None:
        """The instant query's result (a list, maybe empty); None when Prometheus did not
        answer or rejected the query (its error is kept in ``last_error``)."""
        try:
            resp = httpx.get(f"{self.base}/api/v1/query", params={"query": expr}, timeout=5)
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            self.last_error = repr(exc)
            return None
        if body.get("status") != "success":
            self.last_error = f"{body.get('errorType')}: {body.get('error')}"
            return None
        result = body["data"]["result"]
        return result if isinstance(result, list) else [result]

    def scraped_at(self, expr: str) -> float | None:
        """When Prometheus scraped the newest sample of ``expr``'s series (Unix seconds), or
        None while it has none."""
        found = self.values(f"max(timestamp({expr}))")
        return max(found.values()) if found else None

    def evaluated_after(self, at: float) -> bool:
        """Whether every rule group's last evaluation came after ``at`` (Unix seconds): from
        then on, what the rules make of the samples scraped by ``at`` is in ``ALERTS``."""
        try:
            text = httpx.get(f"{self.base}/metrics", timeout=5).text
        except httpx.HTTPError:
            return False
        times = [
            value
            for name, _labels, value in samples(text)
            if name == "prometheus_rule_group_last_evaluation_timestamp_seconds"
        ]
        return bool(times) and min(times) > at

    def values(self, expr: str) -> dict[tuple, float]:
        """``{sorted label items: value}`` of an instant vector query."""
        return {
            tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in self.query(expr) or []
        }
