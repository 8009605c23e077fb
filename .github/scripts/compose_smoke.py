"""Smoke test of a running `docker compose up` stack (CI's compose job), standard library only.

A prediction through the service, every Prometheus target up, and Grafana listing both
dashboards. Polls with a deadline: Prometheus needs a scrape, Grafana a provisioning pass.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVICE = "http://127.0.0.1:3000"
PROMETHEUS = "http://127.0.0.1:9090"
GRAFANA = "http://127.0.0.1:3001"
# Scrape jobs of monitoring/prometheus/prometheus.compose.yml.
JOBS = {"vigil-service", "vigil-monitor"}
DASHBOARDS = {"vigil-drift", "vigil-service"}
# Training the default model and starting the service come first.
DEADLINE_SECONDS = 300


def fetch(url: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> object:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def eventually(what: str, check) -> object:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        try:
            result = check()
            if result:
                print(f"ok: {what}")
                return result
            reason = "not yet"
        except OSError as exc:
            reason = str(exc)
        if time.monotonic() > deadline:
            sys.exit(f"FAILED: {what} ({reason})")
        time.sleep(3)


def predicted() -> bool:
    body = (REPO / "examples" / "request.json").read_bytes()
    answer = fetch(f"{SERVICE}/predict", body, {"Content-Type": "application/json"})
    return len(answer["predictions"]) == len(json.loads(body)["instances"])


def targets_up() -> bool:
    active = fetch(f"{PROMETHEUS}/api/v1/targets")["data"]["activeTargets"]
    jobs = {t["labels"]["job"] for t in active}
    return jobs >= JOBS and all(t["health"] == "up" for t in active)


def dashboards_listed() -> bool:
    password = os.environ["GRAFANA_ADMIN_PASSWORD"]
    token = base64.b64encode(f"admin:{password}".encode()).decode()
    found = fetch(f"{GRAFANA}/api/search?type=dash-db", headers={"Authorization": f"Basic {token}"})
    return {d["uid"] for d in found} >= DASHBOARDS


if __name__ == "__main__":
    eventually("POST /predict through the stack", predicted)
    eventually(f"every Prometheus target up ({', '.join(sorted(JOBS))})", targets_up)
    eventually(f"Grafana lists {', '.join(sorted(DASHBOARDS))}", dashboards_listed)
