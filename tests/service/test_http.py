"""The HTTP contract against a real `bentoml serve` with two workers, on SQLite and on
PostgreSQL: responses, every error body, auth, metrics summed over workers, and the inference
log holding exactly the instances answered 200."""

from __future__ import annotations

import json
import math
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict

from service.routing import ROUTES
from tests.conftest import POSTGRES_URL, free_port, postgres_log
from tests.service.conftest import API_KEY, copy_home
from tests.service.test_routing import example
from tests.support.prom import label_values, scrape, total
from tests.support.registry import publish
from tests.support.service import ServiceHandle, start_service
from vigil.log.inference_log import InferenceLog
from vigil.registry.schema import drop_registry_schema
from vigil.registry.store import Registry
from vigil.schema import to_frame
from vigil.settings import get_settings

pytestmark = pytest.mark.integration

MAX_ROWS = 50
MAX_BODY_BYTES = 100_000  # about 130 of the default rows
AUTH = {"Authorization": f"Bearer {API_KEY}"}
RESPONSE_KEYS = {"model_version", "request_id", "predictions", "probabilities", "prediction_ids"}


@dataclass
class Server:
    handle: ServiceHandle
    log: InferenceLog
    backend: str
    runtime: str  # the runtime that should serve: VIGIL_INFERENCE=auto serves ONNX

    @property
    def url(self) -> str:
        return self.handle.url

    def post(self, path: str, body, headers=AUTH, **kwargs) -> httpx.Response:
        if isinstance(body, bytes | str):
            kwargs["content"] = body
            headers = {"Content-Type": "application/json", **headers}
        else:
            kwargs["json"] = body
        return httpx.post(f"{self.url}{path}", headers=headers, timeout=30, **kwargs)


@pytest.fixture(
    scope="module",
    # The default (auto) serves ONNX; the suite also runs once with scikit-learn.
    params=["sqlite", "sqlite-sklearn", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def server(request, trained_home_template, tmp_path_factory):
    home = copy_home(trained_home_template, tmp_path_factory.mktemp("http") / "home")
    env = {
        "VIGIL_INFERENCE": "sklearn" if request.param.endswith("-sklearn") else "auto",
        "VIGIL_API_KEY": API_KEY,
        "VIGIL_WORKERS": "2",
        "VIGIL_MAX_BATCH_ROWS": str(MAX_ROWS),
        "VIGIL_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    }
    if request.param == "postgres":
        log = postgres_log()
        env.update({"VIGIL_DATABASE_URL": POSTGRES_URL, "VIGIL_TABLE_PREFIX": log.table_prefix})
        registry = get_settings(home=home, database_url=POSTGRES_URL, table_prefix=log.table_prefix)
        publish(get_settings(home=home), registry)  # the registry lives in PostgreSQL too
    else:
        log = InferenceLog(f"sqlite:///{home / 'inference.sqlite3'}")
    try:
        with start_service(home, free_port(), env) as handle:
            runtime = "sklearn" if request.param.endswith("-sklearn") else "onnx"
            yield Server(handle, log, request.param.removesuffix("-sklearn"), runtime)
    finally:
        if request.param == "postgres":
            log.drop_schema()
            drop_registry_schema(Registry(registry).engine, log.table_prefix)
        log.close()


def test_single_prediction(server, default_rows, default_bundle):
    response = server.post("/predict", {"instances": default_rows[:1]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == RESPONSE_KEYS
    assert body["model_version"] == default_bundle.tag
    assert body["predictions"] in ([0], [1])
    assert type(body["predictions"][0]) is int
    assert set(body["probabilities"][0]) == {"0", "1"}
    assert sum(body["probabilities"][0].values()) == pytest.approx(1.0, abs=1e-5)
    assert len(body["prediction_ids"]) == 1 and body["request_id"]


def test_batch_prediction_keeps_order(server, default_rows, default_bundle):
    rows = default_rows[:MAX_ROWS]
    response = server.post("/predict", {"instances": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = default_bundle.pipeline.predict(to_frame(default_bundle.schema, rows)).tolist()
    assert body["predictions"] == expected
    assert len(body["probabilities"]) == len(body["prediction_ids"]) == len(rows)
    assert len(set(body["prediction_ids"])) == len(rows)


def test_null_is_accepted_as_a_missing_value(server, default_rows):
    row = dict(default_rows[0], **{"mean radius": None, "worst area": None})
    response = server.post("/predict", {"instances": [row]})
    assert response.status_code == 200, response.text
    (pid,) = response.json()["prediction_ids"]
    window = server.log.latest(response.json()["model_version"], 50)
    logged = window.frame.set_index("prediction_id").loc[pid]
    assert math.isnan(logged["mean radius"]) and math.isnan(logged["worst area"])


def test_out_of_range_numbers_are_accepted(server, default_rows):
    row = {k: v * 1000 for k, v in default_rows[0].items()}
    assert server.post("/predict", {"instances": [row]}).status_code == 200


def _bad_bodies(row: dict) -> list[tuple[str, object, int, list]]:
    def without(key):
        return {k: v for k, v in row.items() if k != key}

    raw_row = json.dumps(row)

    def literal(token: str) -> str:  # the row with a bare JSON literal as its first value
        return '{"instances": [' + raw_row.replace("17.99", token, 1) + "]}"

    return [
        ("malformed JSON", '{"instances": [', 400, []),
        ("not JSON", "hello", 400, []),
        ("a JSON array", "[]", 400, ["body"]),
        ("missing instances", {}, 400, ["instances"]),
        ("unknown top-level field", {"instances": [row], "strict": True}, 400, ["strict"]),
        ("empty list", {"instances": []}, 400, ["instances"]),
        ("instances not a list", {"instances": "rows"}, 400, ["instances"]),
        ("instance not an object", {"instances": [row, 1]}, 400, ["instances", 1]),
        ("absent key", {"instances": [row, without("mean radius")]}, 400,
         ["instances", 1, "mean radius"]),
        ("unknown key", {"instances": [dict(row, colour=1)]}, 400, ["instances", 0, "colour"]),
        ("string for numeric", {"instances": [dict(row, **{"mean radius": "17"})]}, 400,
         ["instances", 0, "mean radius"]),
        ("bool for numeric", {"instances": [dict(row, **{"mean area": True})]}, 400,
         ["instances", 0, "mean area"]),
        ("NaN", literal("NaN"), 400,
         ["instances", 0, "mean radius"]),
        ("Infinity", literal("Infinity"), 400,
         ["instances", 0, "mean radius"]),
        ("-Infinity", literal("-Infinity"), 400,
         ["instances", 0, "mean radius"]),
        # json.loads takes it, BentoML's parser does not: refused as before the precheck
        # handed BentoML a stand-in body.
        ("byte order mark", "\ufeff" + json.dumps({"instances": [row]}), 400, []),
        ("too many rows", {"instances": [row] * (MAX_ROWS + 1)}, 413, ["instances"]),
        ("body too large", {"instances": [row] * 300}, 413, ["body"]),
    ]  # fmt: skip


def test_every_bad_input_gets_the_contract_error_body(server, default_rows):
    row = dict(default_rows[0], **{"mean radius": 17.99})
    cases = _bad_bodies(row)
    before = scrape(server.url)
    for name, body, status, loc in cases:
        response = server.post("/predict", body)
        assert response.status_code == status, (name, response.text)
        assert response.headers["content-type"].startswith("application/json"), name
        payload = response.json()
        assert set(payload) == {"error", "detail"}, (name, payload)
        assert isinstance(payload["error"], str) and "\n" not in payload["error"], name
        assert "Traceback" not in response.text, name
        assert all(set(d) == {"loc", "msg"} for d in payload["detail"]), (name, payload)
        if loc:
            assert payload["detail"][0]["loc"] == loc, (name, payload)
    after = scrape(server.url)
    rejected = total(after, "vigil_input_rejected_total") - total(
        before, "vigil_input_rejected_total"
    )
    assert rejected == len(cases)
    assert total(after, "vigil_input_rejected_total", reason="too_many_rows") >= 1
    assert total(after, "vigil_input_rejected_total", reason="body_too_large") >= 1
    assert total(after, "vigil_input_rejected_total", reason="non_finite") >= 3


def test_an_oversized_body_is_refused_even_without_a_length(server, default_rows):
    big = json.dumps({"instances": default_rows[:1] * 300}).encode()
    assert len(big) > MAX_BODY_BYTES

    def chunks():  # no Content-Length: httpx sends it chunked
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    headers = {**AUTH, "Content-Type": "application/json"}
    response = httpx.post(f"{server.url}/predict", content=chunks(), headers=headers, timeout=30)
    assert response.status_code == 413, response.text
    assert response.json()["detail"][0]["loc"] == ["body"]
    assert "VIGIL_MAX_BODY_BYTES" in response.json()["error"]
    # A chunked body under the limit is read and answered as usual.
    small = json.dumps({"instances": default_rows[:2]}).encode()
    parts = iter([small[:100], small[100:]])
    response = httpx.post(f"{server.url}/predict", content=parts, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 2


def test_api_key_is_required_on_predict_and_feedback(server, default_rows):
    body = {"instances": default_rows[:1]}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        for path, payload in (("/predict", body), ("/feedback", {"labels": []})):
            response = server.post(path, payload, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert set(response.json()) == {"error", "detail"}
    assert server.post("/predict", body).status_code == 200
    # Reading endpoints stay open (Prometheus and probes have no key).
    for path in ("/metrics", "/livez", "/readyz", "/model"):
        assert httpx.get(f"{server.url}{path}").status_code == 200, path


def test_wrong_method_is_a_json_error(server):
    response = httpx.get(f"{server.url}/predict", headers=AUTH)
    assert response.status_code == 405
    assert response.json() == {"error": "method not allowed (HTTP 405)", "detail": []}


def test_form_content_type_is_still_read_as_json(server, default_rows):
    response = httpx.post(
        f"{server.url}/predict",
        content=json.dumps({"instances": default_rows[:1]}),
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text


def _worker_totals(handle: ServiceHandle, metric: str) -> dict[int, float]:
    """Each worker's own value of ``metric`` from its multiprocess file."""
    folder = handle.home / "bentoml" / "servers" / str(handle.port) / "prometheus_multiproc_dir"
    out: dict[int, float] = {}
    for pid in handle.worker_pids():
        path = folder / f"counter_{pid}.db"
        if path.exists():
            values = MmapedDict.read_all_values_from_file(str(path))
            out[pid] = sum(v for key, v, *_ in values if json.loads(key)[1] == metric)
    return out


def test_metrics_and_log_hold_exactly_the_answered_instances(server, default_rows):
    """Concurrent good and bad requests on fresh connections (so both workers serve): the
    metrics, summed over the workers, and the log count exactly the instances answered 200."""
    before_text = scrape(server.url)
    before_ids = server.log.prediction_ids()
    before_workers = _worker_totals(server.handle, "vigil_predictions_total")

    def send(i: int):
        n = 1 + i % 3
        rows = default_rows[i % 100 : i % 100 + n]
        if i % 5 == 4:  # every fifth request is bad: nothing of it may be logged or counted
            rows = [*rows[:-1], dict(rows[-1], **{"mean radius": "bad"})]
        with httpx.Client(headers=AUTH, timeout=30) as client:
            return n, client.post(f"{server.url}/predict", json={"instances": rows})

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(120)))
    answered = [r.json()["prediction_ids"] for _, r in results if r.status_code == 200]
    assert {r.status_code for _, r in results} == {200, 400}
    ids = [pid for batch in answered for pid in batch]
    expected_rows = sum(n for n, r in results if r.status_code == 200)
    assert len(ids) == len(set(ids)) == expected_rows

    after_text = scrape(server.url)

    def delta(name, **labels):
        return total(after_text, name, **labels) - total(before_text, name, **labels)

    assert delta("vigil_predictions_total") == expected_rows
    assert delta("vigil_inference_log_rows_total") == expected_rows
    assert delta("vigil_prediction_confidence_count") == expected_rows
    assert delta("vigil_inference_log_failures_total") == 0
    assert delta("bentoml_service_request_total", endpoint="/predict", http_response_code="200") \
        == len(answered)  # fmt: skip
    # Both workers answered some of it; their own files add up to the scraped total.
    workers = _worker_totals(server.handle, "vigil_predictions_total")
    gained = {pid: workers[pid] - before_workers.get(pid, 0) for pid in workers}
    assert len(gained) == 2 and all(v > 0 for v in gained.values()), gained
    assert sum(gained.values()) == expected_rows

    assert server.log.prediction_ids() - before_ids == set(ids)


def test_feedback_joins_labels_to_logged_predictions(server, default_rows):
    predicted = server.post("/predict", {"instances": default_rows[:3]}).json()
    a, b, c = predicted["prediction_ids"]
    before = scrape(server.url)
    response = server.post(
        "/feedback",
        {"labels": [{"prediction_id": a, "label": 1}, {"prediction_id": "nope", "label": 0}]},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1, "unknown_ids": ["nope"]}
    # A repeated id replaces the earlier label.
    response = server.post(
        "/feedback",
        {"labels": [{"prediction_id": a, "label": 0}, {"prediction_id": b, "label": 1}]},
    )
    assert response.json() == {"accepted": 2, "unknown_ids": []}
    labeled = server.log.labeled(predicted["model_version"], 1000).set_index("prediction_id")
    assert labeled.loc[a, "label"] == 0 and labeled.loc[b, "label"] == 1
    assert c not in labeled.index
    after = scrape(server.url)
    assert (
        total(after, "vigil_feedback_labels_total") - total(before, "vigil_feedback_labels_total")
        == 3
    )

    for bad, status in (
        ({"labels": [{"prediction_id": a, "label": 7}]}, 400),
        ({"labels": [{"prediction_id": a, "label": "1"}]}, 400),
        ({"labels": []}, 400),
        ({}, 400),
        ({"labels": [{"prediction_id": a, "label": 1}] * (MAX_ROWS + 1)}, 413),
    ):
        response = server.post("/feedback", bad)
        assert response.status_code == status, (bad, response.text)
        assert set(response.json()) == {"error", "detail"}


def test_model_endpoint(server, default_bundle):
    body = httpx.get(f"{server.url}/model").json()
    assert body["tag"] == body["model_version"] == default_bundle.tag
    assert [f["name"] for f in body["schema"]["features"]] == default_bundle.schema.names
    assert body["metrics"]["accuracy"] > 0.8
    assert len(body["dataset_sha256"]) == 64
    # The default model, trained as `make run` trains it and served with the default
    # VIGIL_INFERENCE=auto, is served through ONNX.
    assert body["inference"]["runtime"] == server.runtime, body["inference"]
    # A key is set: how the model was made is shown only to callers who send it.
    assert not {"params", "lineage", "git_commit", "versions"} & set(body)
    full = httpx.get(f"{server.url}/model", headers=AUTH).json()
    assert {"params", "lineage", "git_commit", "versions"} <= set(full)


def test_probes_docs_and_bentoml_metrics(server):
    assert httpx.get(f"{server.url}/livez").status_code == 200
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    docs = httpx.get(f"{server.url}/docs.json").json()
    assert "/predict" in docs["paths"] and "/feedback" in docs["paths"]
    text = scrape(server.url)
    for name in (
        "bentoml_service_request_total",
        "bentoml_service_request_duration_seconds",
        "bentoml_service_request_in_progress",
        "vigil_model_info",
    ):
        assert name in text, name
    # Summed over 2 workers, still 1 (livemax) and without a pid label.
    served = label_values(text, "vigil_model_served_info", "model_version")
    assert len(served) == 1
    assert total(text, "vigil_model_served_info", model_version=served.pop()) == 1
    assert "pid=" not in _lines(text, "vigil_model_served_info")


def test_unknown_paths_share_one_endpoint_label(server):
    paths = [f"/scan-{uuid.uuid4().hex[:8]}" for _ in range(5)] + ["/wp-admin/setup.php"]
    for path in paths:
        assert httpx.get(f"{server.url}{path}").status_code == 404
        assert httpx.post(f"{server.url}{path}", json={}).status_code == 404
    endpoints = label_values(scrape(server.url), "bentoml_service_request_total", "endpoint")
    assert not endpoints & set(paths)
    assert "/__unknown__" in endpoints and "/predict" in endpoints


def test_every_route_of_the_table_answers_as_declared(server):
    tag = httpx.get(f"{server.url}/model").json()["tag"]
    documented = set(httpx.get(f"{server.url}/docs.json").json()["paths"])
    for route in ROUTES:
        path = example(route, version=tag)
        method = route.methods[0] if route.methods else "GET"
        keyless = httpx.request(method, f"{server.url}{path}", content=b"{}", timeout=30)
        answer = httpx.request(method, f"{server.url}{path}", content=b"{}", headers=AUTH)
        if route.keyed:
            assert keyless.status_code == 401, route
            assert keyless.headers["www-authenticate"] == "Bearer", route
        else:
            assert keyless.status_code == answer.status_code, route
        if route.handler == "not_found":
            assert answer.status_code == 404 and set(answer.json()) == {"error"}, route
        elif route.body_field is not None:  # read and checked by the JSON API's middleware
            assert answer.status_code == 400, (route, answer.text)
            assert answer.json()["detail"] == [{"loc": [route.body_field], "msg": "field required"}]
        elif route.handler == "infer":
            assert answer.status_code == 400 and set(answer.json()) == {"error"}, route
        else:
            assert answer.status_code == 200, (route, answer.status_code)
        if route.methods:
            other = "GET" if route.methods != ("GET",) else "DELETE"
            refused = httpx.request(other, f"{server.url}{path}", headers=AUTH)
            assert refused.status_code == 405, (route, other)
        assert (route.served_path in documented) is route.documented, route
    for path in ("/no-such-route", "/predict/x", "/v2/models/vigil-model/infer/x"):
        assert httpx.get(f"{server.url}{path}", headers=AUTH).status_code == 404, path


def _lines(text: str, word: str) -> str:
    return "\n".join(line for line in text.splitlines() if word in line)
