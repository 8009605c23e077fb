"""A candidate on live traffic, through the real CLI and a live 2-worker service: a shadow
leaves answers byte for byte as they were and logs its predictions under the same request
ids; a shadow that raises on every row changes nothing and is counted; overload skips shadow
rows and counts them; a canary answers its share, names itself in each answer and in the log,
and takes /feedback like production."""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx
import pytest

from service.canary import in_canary
from tests.conftest import free_port
from tests.support.candidates import save_exploding, save_other
from tests.support.cli import Ran, run_command
from tests.support.prom import label_values, scrape, total
from tests.support.service import ServiceHandle, start_service
from vigil.log.inference_log import InferenceLog
from vigil.log.shadow import ShadowLog
from vigil.registry.store import Registry
from vigil.settings import get_settings

pytestmark = pytest.mark.integration

SHADOW_QUEUE_ROWS = 300  # small, so that a burst of 100-row requests overflows it
FOLLOW_SECONDS = 10.0
ROUNDS = 2  # of the overload test's bursts without and with a shadow


def models_cli(home, *args: str) -> Ran:
    """``python -m training.models ARGS`` on ``home``, in this process: the service is the
    other process, and it must follow what the command wrote."""
    return run_command("training.models", *args, home=home)


def run_cli(home, *args: str) -> dict:
    done = models_cli(home, *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_following(
    svc: ServiceHandle, tag: str | None, mode: str | None, timeout=FOLLOW_SECONDS
) -> float:
    """Until every worker runs ``tag`` as ``mode`` (None: none); returns the seconds it took.
    ``vigil_candidate_info`` is summed over live workers: ``svc.workers`` once every one runs
    it, and 0 for every other candidate once none still runs one. A miss shows what the
    workers logged about candidates and pointers, and how loaded the machine was."""
    began = time.monotonic()
    while True:
        text = scrape(svc.url)
        running = {
            (v, m): total(text, "vigil_candidate_info", candidate_version=v, mode=m)
            for v in label_values(text, "vigil_candidate_info", "candidate_version")
            for m in ("shadow", "canary")
        }
        running = {key: n for key, n in running.items() if n}
        if running == ({(tag, mode): svc.workers} if tag else {}):
            return time.monotonic() - began
        assert time.monotonic() - began < timeout, (
            f"not followed in {timeout} s: {running}; load average {os.getloadavg()}; "
            f"the workers logged:\n{following_lines(svc)}"
        )
        time.sleep(0.1)


@pytest.fixture(scope="module")
def served(trained_home_template, tmp_path_factory):
    import shutil

    home = tmp_path_factory.mktemp("candidate") / "home"
    shutil.copytree(trained_home_template, home)
    settings = get_settings(home=home, database_url=None)
    registry = Registry(settings)
    bundle = registry.load_production()
    tags = {
        "production": bundle.tag,
        "other": save_other(registry, bundle),
        "exploding": save_exploding(registry, bundle),
    }
    env = {"VIGIL_WORKERS": "2", "VIGIL_SHADOW_MAX_QUEUED_ROWS": str(SHADOW_QUEUE_ROWS)}
    with start_service(home, free_port(), env) as svc:
        log = InferenceLog.from_settings(settings)
        try:
            yield svc, home, tags, bundle, log
        finally:
            log.close()


def following_lines(svc: ServiceHandle, last: int = 40) -> str:
    """The service log's last lines about candidates, pointers and loads."""
    words = ("candidate", "pointer", "load", "serving", "Traceback", "Error")
    lines = [line for line in svc.log_text().splitlines() if any(w in line for w in words)]
    return "\n".join(lines[-last:])


def stop_any(home, svc: ServiceHandle) -> None:
    for mode in ("shadow", "canary"):
        models_cli(home, mode, "--stop")
    wait_following(svc, None, None)


def answers(url: str, bodies: list[dict]) -> list[bytes]:
    with httpx.Client(timeout=30) as http:
        out = []
        for body in bodies:
            r = http.post(f"{url}/predict", json=body)
            assert r.status_code == 200, r.text
            out.append(r.content)
        return out


def without_ids(content: bytes) -> bytes:
    """The answer's bytes with its request id and prediction ids blanked (new per request)."""
    doc = json.loads(content)
    rid = doc["request_id"]
    text = content.decode().replace(rid, "R" * 32)
    for pid in doc["prediction_ids"]:
        text = text.replace(pid, "P" * len(pid))
    return text.encode()


def wait_scored(log: InferenceLog, tag: str, rows: int, timeout: float = 10.0) -> int:
    shadow = ShadowLog(log)
    deadline = time.monotonic() + timeout
    while (n := shadow.count(tag)) < rows and time.monotonic() < deadline:
        time.sleep(0.1)
    return n


def test_a_shadow_leaves_answers_byte_identical_and_logs_under_the_same_ids(served, default_rows):
    svc, home, tags, bundle, log = served
    stop_any(home, svc)
    bodies = [{"instances": default_rows[i : i + 1 + i % 3]} for i in range(40)]
    before = answers(svc.url, bodies)

    started = run_cli(home, "shadow", tags["other"])
    assert started == {"started": "shadow", "model_version": tags["other"],
                       "revision": started["revision"]}  # fmt: skip
    took = wait_following(svc, tags["other"], "shadow")
    assert took < FOLLOW_SECONDS
    during = answers(svc.url, bodies)
    assert [without_ids(a) for a in during] == [without_ids(b) for b in before]
    assert all(json.loads(a)["model_version"] == tags["production"] for a in during)

    rows = sum(len(b["instances"]) for b in bodies)
    assert wait_scored(log, tags["other"], rows) == rows
    pairs = ShadowLog(log).pairs(tags["production"], tags["other"], 10_000)
    acked = {pid for a in during for pid in json.loads(a)["prediction_ids"]}
    assert set(pairs["prediction_id"]) == acked  # every answered row, under its own id
    assert (pairs["answered_by"] == tags["production"]).all()

    # A canary is refused while the shadow runs, and the command says why.
    refused = models_cli(home, "canary", tags["other"], "--percent", "10")
    assert refused.returncode == 1 and "never both active" in refused.stderr


def test_a_shadow_that_raises_on_every_row_leaves_serving_unaffected(served, default_rows):
    svc, home, tags, bundle, log = served
    stop_any(home, svc)
    bodies = [{"instances": default_rows[i : i + 2]} for i in range(20)]
    before = answers(svc.url, bodies)
    run_cli(home, "shadow", tags["exploding"])
    wait_following(svc, tags["exploding"], "shadow")
    during = answers(svc.url, bodies)
    assert [without_ids(a) for a in during] == [without_ids(b) for b in before]
    deadline = time.monotonic() + 10
    while True:
        failed = total(scrape(svc.url), "vigil_candidate_failures_total",
                       candidate_version=tags["exploding"], stage="predict")  # fmt: skip
        if failed >= 40 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert failed == 40
    assert ShadowLog(log).count(tags["exploding"]) == 0
    assert f"candidate {tags['exploding']} failed to predict" in svc.log_text()


def test_overload_skips_shadow_rows_and_counts_them(served, default_rows):
    svc, home, tags, bundle, log = served
    stop_any(home, svc)
    body = {"instances": default_rows[:100]}

    async def burst(n: int, clients: int) -> list[float]:
        latencies: list[float] = []

        async def client() -> None:
            async with httpx.AsyncClient(timeout=60) as http:
                for _ in range(n):
                    began = time.monotonic()
                    r = await http.post(f"{svc.url}/predict", json=body)
                    assert r.status_code in (200, 503), r.text
                    if r.status_code == 200:
                        latencies.append(time.monotonic() - began)

        await asyncio.gather(*(client() for _ in range(clients)))
        return sorted(latencies)

    def p99(values: list[float]) -> float:
        return values[min(len(values) - 1, int(len(values) * 0.99))]

    # Rounds alternate, without and with the shadow, and each side keeps its best: other
    # tests' servers share the two cores and can slow any one burst, on either side.
    off, on = [], []
    for round_ in range(ROUNDS):
        if round_:
            stop_any(home, svc)
        off.append(p99(asyncio.run(burst(15, 16))))
        run_cli(home, "shadow", tags["other"])
        wait_following(svc, tags["other"], "shadow")
        skipped_before = total(scrape(svc.url), "vigil_shadow_skipped_rows_total")
        on.append(p99(asyncio.run(burst(15, 16))))
        skipped = total(scrape(svc.url), "vigil_shadow_skipped_rows_total") - skipped_before
        assert skipped > 0 and skipped % 100 == 0  # whole requests, counted in rows
        print(f"p99 off {off[-1] * 1000:.0f} ms, on {on[-1] * 1000:.0f} ms, skipped {skipped:.0f}")
    # The bound: a shadow costs CPU on a 2-core machine shared with other tests; generous here,
    # the benchmark measures it under controlled load.
    assert min(on) <= 2.0 * min(off) + 0.05


def test_a_canary_answers_its_share_and_names_itself_and_takes_feedback(served, default_rows):
    svc, home, tags, bundle, log = served
    stop_any(home, svc)
    started = run_cli(home, "canary", tags["other"], "--percent", "30")
    assert started["percent"] == 30.0
    wait_following(svc, tags["other"], "canary")
    bodies = [{"instances": default_rows[i % 150 : i % 150 + 1]} for i in range(300)]
    docs = [json.loads(a) for a in answers(svc.url, bodies)]
    by = {d["request_id"]: d["model_version"] for d in docs}
    # The split is the hash of the request id: the same function everywhere.
    for rid, version in by.items():
        assert version == (tags["other"] if in_canary(rid, 30) else tags["production"])
    share = sum(v == tags["other"] for v in by.values()) / len(by)
    assert 0.2 < share < 0.4, share  # 300 requests: within about 3 standard errors of 30 %
    # The log records the model that answered.
    for version in (tags["production"], tags["other"]):
        assert log.count(version) >= sum(v == version for v in by.values())
    # /feedback takes labels for answers of either model.
    labels = [{"prediction_id": d["prediction_ids"][0], "label": 1} for d in docs[:60]]
    with httpx.Client(timeout=30) as http:
        r = http.post(f"{svc.url}/feedback", json={"labels": labels})
    assert r.status_code == 200 and r.json() == {"accepted": 60, "unknown_ids": []}
    answered = {by[d["request_id"]] for d in docs[:60]}
    assert answered == {tags["production"], tags["other"]}
    for version in answered:
        assert log.labeled_count(version) >= 1
    # Each answer was scored afterwards by the model that did not give it: the monitor pairs
    # both kinds, and `monitoring.drift check --json` reports the canary.
    canary_rows = sum(v == tags["other"] for v in by.values())
    wait_scored(log, tags["production"], canary_rows)
    wait_scored(log, tags["other"], len(by) - canary_rows)
    pairs = ShadowLog(log).pairs(tags["production"], tags["other"], 100_000)
    assert set(pairs["answered_by"]) == {tags["production"], tags["other"]}
    done = run_command("monitoring.drift", "check", "--json", home=home)
    assert done.returncode == 0, done.stderr
    candidate = json.loads(done.stdout)["candidate"]
    assert candidate["model_version"] == tags["other"] and candidate["mode"] == "canary"
    assert candidate["rows"] >= len(by) and candidate["labeled_rows"] >= 60
    run_cli(home, "canary", "--stop")
    wait_following(svc, None, None)


def test_a_canary_answers_its_share_through_the_open_inference_protocol(served, default_rows):
    """V2 infer is routed like /predict: the canary answers by the request id's hash, the
    answer names the model that gave it, and the other model scores it afterwards."""
    svc, home, tags, bundle, log = served
    stop_any(home, svc)
    run_cli(home, "canary", tags["other"], "--percent", "50")
    wait_following(svc, tags["other"], "canary")
    names = bundle.schema.names
    by = {}
    with httpx.Client(timeout=30) as http:
        for i in range(60):
            row = default_rows[i % 150]
            body = {
                "inputs": [
                    {"name": "x", "datatype": "FP64", "shape": [1, len(names)],
                     "data": [row[n] for n in names]}
                ]
            }  # fmt: skip
            r = http.post(f"{svc.url}/v2/models/vigil-model/infer", json=body)
            assert r.status_code == 200, r.text
            answer = r.json()
            by[answer["parameters"]["request_id"]] = answer["model_version"]
    for rid, version in by.items():
        assert version == (tags["other"] if in_canary(rid, 50) else tags["production"])
    assert set(by.values()) == {tags["production"], tags["other"]}
    canary_rows = sum(v == tags["other"] for v in by.values())
    assert wait_scored(log, tags["production"], canary_rows) >= canary_rows
    run_cli(home, "canary", "--stop")
    wait_following(svc, None, None)


def test_a_named_version_is_answered_by_that_version_whatever_the_canary(served, default_rows):
    """The canary splits only requests that name no version; one that names production's is
    answered by production (and scored by the canary afterwards), another version is a 404."""
    svc, home, tags, bundle, log = served
    stop_any(home, svc)
    run_cli(home, "canary", tags["other"], "--percent", "50")
    wait_following(svc, tags["other"], "canary")
    names = bundle.schema.names
    pinned = f"{svc.url}/v2/models/vigil-model/versions/{tags['production']}/infer"
    before = ShadowLog(log).count(tags["other"])
    with httpx.Client(timeout=30) as http:
        versions = []
        for i in range(20):
            row = default_rows[i]
            body = {
                "inputs": [
                    {"name": "x", "datatype": "FP64", "shape": [1, len(names)],
                     "data": [row[n] for n in names]}
                ]
            }  # fmt: skip
            r = http.post(pinned, json=body)
            assert r.status_code == 200, r.text
            versions.append(r.json()["model_version"])
        other = http.post(
            f"{svc.url}/v2/models/vigil-model/versions/{tags['other']}/infer", json=body
        )
    assert versions == [tags["production"]] * 20
    assert other.status_code == 404, other.text
    assert wait_scored(log, tags["other"], before + 20) >= before + 20
    run_cli(home, "canary", "--stop")
    wait_following(svc, None, None)
