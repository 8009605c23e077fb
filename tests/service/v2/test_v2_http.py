"""The Open Inference Protocol against a real 2-worker `bentoml serve`, called by
``tritonclient`` (JSON and binary modes) and by MLServer's PandasCodec wire format, for a binary
classifier, a multiclass one, one with categories and text classes, and a regressor."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import free_port
from tests.service.conftest import API_KEY, copy_home
from tests.support.service import ServiceHandle, start_service
from vigil.log.inference_log import InferenceLog
from vigil.registry.store import Registry
from vigil.settings import get_settings

pytestmark = pytest.mark.integration

MAX_ROWS = 300
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MODEL = "vigil-model"
KINDS = ["binary", "multiclass", "mixed", "regressor"]
TEMPLATES = {
    "binary": "trained_home_template",
    "multiclass": "wine_home_template",
    "mixed": "mixed_home_template",
    "regressor": "diabetes_home_template",
}


@dataclass
class Server:
    kind: str
    handle: ServiceHandle
    log: InferenceLog
    bundle: object
    rows: list[dict]  # reference rows, features only, no missing values

    @property
    def url(self) -> str:
        return self.handle.url

    def client(self) -> triton.InferenceServerClient:
        return triton.InferenceServerClient(url=f"127.0.0.1:{self.handle.port}")

    @property
    def classifier(self) -> bool:
        return self.kind != "regressor"

    @property
    def numeric(self) -> bool:
        return len(self.bundle.schema.numeric) == len(self.bundle.schema.names)


@pytest.fixture(scope="module", params=KINDS)
def server(request, tmp_path_factory):
    template = request.getfixturevalue(TEMPLATES[request.param])
    home = copy_home(template, tmp_path_factory.mktemp(f"v2-{request.param}") / "home")
    bundle = Registry(get_settings(home=home)).load_production()
    frame = bundle.reference[bundle.schema.names].dropna().head(MAX_ROWS)
    rows = json.loads(frame.to_json(orient="records"))
    env = {"VIGIL_API_KEY": API_KEY, "VIGIL_WORKERS": "2", "VIGIL_MAX_BATCH_ROWS": str(MAX_ROWS)}
    log = InferenceLog(f"sqlite:///{home / 'inference.sqlite3'}")
    try:
        with start_service(home, free_port(), env) as handle:
            yield Server(request.param, handle, log, bundle, rows)
    finally:
        log.close()


def feature_inputs(server: Server, rows: list[dict], binary: bool, shape2: bool = False):
    out = []
    for feature in server.bundle.schema.features:
        values = [row[feature.name] for row in rows]
        shape = [len(rows), 1] if shape2 else [len(rows)]
        if feature.kind == "numeric":
            data = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
            tensor = triton.InferInput(feature.name, shape, "FP64")
        else:
            data = np.array(values, dtype=object)
            tensor = triton.InferInput(feature.name, shape, "BYTES")
        tensor.set_data_from_numpy(data.reshape(shape), binary_data=binary)
        out.append(tensor)
    return out


def matrix_input(server: Server, rows: list[dict], binary: bool, datatype: str = "FP64"):
    names = server.bundle.schema.names
    data = np.array([[row[n] for n in names] for row in rows], dtype=np.float64)
    data = data.astype(np.float32) if datatype == "FP32" else data
    tensor = triton.InferInput("input-0", list(data.shape), datatype)
    tensor.set_data_from_numpy(data, binary_data=binary)
    return [tensor]


def predict_json(server: Server, rows: list[dict]) -> dict:
    response = httpx.post(
        f"{server.url}/predict", json={"instances": rows}, headers=AUTH, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def infer(server: Server, inputs, outputs=None, **kwargs):
    with server.client() as client:
        # A copy: the client adds Inference-Header-Content-Length to the dict it is given.
        return client.infer(MODEL, inputs, outputs=outputs, headers=dict(AUTH), **kwargs)


def assert_same_as_predict(server: Server, result, rows: list[dict]) -> None:
    """V2's outputs are /predict's answer for the same rows, in the protocol's types."""
    expected = predict_json(server, rows)
    predicted = result.as_numpy("predict")
    assert predicted.shape == (len(rows),)
    if server.classifier:
        labels = [v.decode() if isinstance(v, bytes) else v for v in predicted.tolist()]
        assert labels == expected["predictions"]
        keys = list(expected["probabilities"][0])
        proba = result.as_numpy("predict_proba")
        assert proba.dtype == np.float64 and proba.shape == (len(rows), len(keys))
        assert result.get_output("predict_proba")["parameters"]["classes"] == keys
        want = np.array([[p[k] for k in keys] for p in expected["probabilities"]])
        np.testing.assert_allclose(proba, want, atol=1e-6)
    else:
        assert predicted.dtype == np.float64
        np.testing.assert_allclose(predicted, expected["predictions"], rtol=1e-6)
        assert result.as_numpy("predict_proba") is None
    ids = result.as_numpy("prediction_id")
    assert len(ids) == len(rows) and len(set(ids.tolist())) == len(rows)


def test_health_and_server_metadata(server):
    with server.client() as client:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready(MODEL)
        assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    assert httpx.get(f"{server.url}/v2/health/live").json() == {"live": True}
    assert httpx.get(f"{server.url}/v2/health/ready").json() == {"ready": True}


def test_model_metadata_lists_every_feature_and_the_tasks_outputs(server):
    tag = server.bundle.tag
    with server.client() as client:
        meta = client.get_model_metadata(MODEL)
        assert client.get_model_metadata(MODEL, model_version=tag) == meta
        assert client.is_model_ready(MODEL, model_version=tag)
    assert meta["name"] == MODEL and meta["versions"] == [tag]
    schema = server.bundle.schema
    assert [i["name"] for i in meta["inputs"]] == schema.names
    for item, feature in zip(meta["inputs"], schema.features, strict=True):
        assert item["datatype"] == ("FP64" if feature.kind == "numeric" else "BYTES")
        assert item["shape"] == [-1]
    names = [o["name"] for o in meta["outputs"]]
    if server.classifier:
        assert names == ["predict", "predict_proba", "prediction_id"]
        classes = [str(c) for c in schema.classes]
        assert meta["outputs"][1]["parameters"]["classes"] == classes
        assert meta["outputs"][1]["shape"] == [-1, len(classes)]
    else:
        assert names == ["predict", "prediction_id"]
        assert meta["outputs"][0]["datatype"] == "FP64"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("shape2", [False, True], ids=["n", "n-1"])
def test_one_input_per_feature(server, binary, shape2):
    rows = server.rows[:25]
    result = infer(server, feature_inputs(server, rows, binary, shape2))
    assert_same_as_predict(server, result, rows)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", ["FP64", "FP32"])
def test_one_2d_tensor_in_metadata_order(server, binary, datatype):
    rows = server.rows[:40]
    if not server.numeric:
        with pytest.raises(InferenceServerException, match="categorical features"):
            infer(server, matrix_input(server, [dict.fromkeys(r, 1.0) for r in rows], binary))
        return
    result = infer(server, matrix_input(server, rows, binary, datatype))
    if datatype == "FP64":
        assert_same_as_predict(server, result, rows)
    else:
        assert result.as_numpy("predict").shape == (len(rows),)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_outputs_are_selected_and_the_id_is_echoed(server, binary):
    rows = server.rows[:3]
    outputs = [
        triton.InferRequestedOutput("prediction_id", binary_data=binary),
        triton.InferRequestedOutput("predict", binary_data=not binary),
    ]
    result = infer(server, feature_inputs(server, rows, True), outputs, request_id="req-7")
    answer = result.get_response()
    assert answer["id"] == "req-7"
    assert answer["model_name"] == MODEL and answer["model_version"] == server.bundle.tag
    assert [o["name"] for o in answer["outputs"]] == ["prediction_id", "predict"]
    assert result.as_numpy("predict_proba") is None
    assert len(result.as_numpy("prediction_id")) == 3


def test_binary_answer_to_a_json_request(server):
    rows = server.rows[:5]
    body = {
        "inputs": [
            {"name": "input-0", "datatype": "FP64", "shape": [5, len(rows[0])],
             "data": [[r[n] for n in server.bundle.schema.names] for r in rows]}
        ] if server.numeric else [
            {"name": f.name, "datatype": "FP64" if f.kind == "numeric" else "BYTES",
             "shape": [5], "data": [r[f.name] for r in rows]}
            for f in server.bundle.schema.features
        ],
        "parameters": {"binary_data_output": True},
    }  # fmt: skip
    response = httpx.post(f"{server.url}/v2/models/{MODEL}/infer", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    length = int(response.headers["Inference-Header-Content-Length"])
    head = json.loads(response.content[:length])
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    assert sum(sizes) == len(response.content) - length


def test_rows_answered_through_v2_are_logged_with_their_ids_and_take_feedback(server):
    rows = server.rows[:30]
    before = server.log.prediction_ids()
    ids = []
    for binary in (False, True):
        result = infer(server, feature_inputs(server, rows, binary))
        ids += [i.decode() for i in result.as_numpy("prediction_id").tolist()]
    assert server.log.prediction_ids() - before == set(ids)
    label = server.bundle.schema.classes[0] if server.classifier else 100.5
    response = httpx.post(
        f"{server.url}/feedback",
        json={"labels": [{"prediction_id": i, "label": label} for i in ids]},
        headers=AUTH,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": len(ids), "unknown_ids": []}


def pandas_codec_request(rows: list[dict], schema) -> dict:
    """What MLServer 1.7's ``PandasCodec.encode_request(DataFrame(rows))`` sends (its
    ``.model_dump_json()``): request parameters ``content_type: pd``; one input per column,
    shape ``[n, 1]``; numbers as FP64 (INT64 for integer columns); text columns as BYTES with
    ``content_type: str``."""
    inputs = []
    for feature in schema.features:
        values = [row[feature.name] for row in rows]
        tensor = {"name": feature.name, "shape": [len(rows), 1]}
        if feature.kind == "numeric":
            tensor |= {"datatype": "FP64", "data": [float(v) for v in values]}
        else:
            tensor |= {"datatype": "BYTES", "parameters": {"content_type": "str"}, "data": values}
        inputs.append(tensor)
    return {"parameters": {"content_type": "pd"}, "inputs": inputs}


# What MLServer 1.7.1 itself printed for
# PandasCodec.encode_request(DataFrame({"age": [35.0, 41.5], "plan": ["plus", "pro"]}))
# .model_dump_json(exclude_none=True), run once in a virtualenv of its own (its dependencies do
# not fit this project's lock): the reproduction above must match it.
MLSERVER_1_7_1_OUTPUT = (
    '{"parameters":{"content_type":"pd"},"inputs":[{"name":"age","shape":[2,1],"datatype":"FP64",'
    '"data":[35.0,41.5]},{"name":"plan","shape":[2,1],"datatype":"BYTES","parameters":'
    '{"content_type":"str"},"data":["plus","pro"]}]}'
)


def test_the_reproduced_pandas_codec_matches_mlservers_own_output():
    from types import SimpleNamespace

    schema = SimpleNamespace(
        features=[
            SimpleNamespace(name="age", kind="numeric"),
            SimpleNamespace(name="plan", kind="categorical"),
        ]
    )
    rows = [{"age": 35.0, "plan": "plus"}, {"age": 41.5, "plan": "pro"}]
    assert pandas_codec_request(rows, schema) == json.loads(MLSERVER_1_7_1_OUTPUT)


def test_mlserver_pandas_codec_wire_format(server):
    rows = server.rows[:10]
    body = pandas_codec_request(rows, server.bundle.schema)
    response = httpx.post(
        f"{server.url}/v2/models/{MODEL}/versions/{server.bundle.tag}/infer",
        content=json.dumps(body), headers={**AUTH, "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    answer = response.json()
    predict = next(o for o in answer["outputs"] if o["name"] == "predict")
    expected = predict_json(server, rows)["predictions"]
    if server.classifier:
        assert predict["data"] == expected
    else:
        np.testing.assert_allclose(predict["data"], expected, rtol=1e-6)


def post_infer(server: Server, body, headers=None, path=None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        f"{server.url}{path or f'/v2/models/{MODEL}/infer'}",
        content=content,
        headers={**AUTH, "Content-Type": "application/json", **(headers or {})},
        timeout=30,
    )


def one_feature_body(server: Server, value, datatype="FP64", row=0, n=3) -> dict:
    """Every feature from the reference rows; the first numeric one's ``row`` set to ``value``."""
    schema = server.bundle.schema
    target = schema.numeric[0]
    inputs = []
    for feature in schema.features:
        data = [r[feature.name] for r in server.rows[:n]]
        kind = "FP64" if feature.kind == "numeric" else "BYTES"
        if feature.name == target:
            data[row], kind = value, datatype
        inputs.append({"name": feature.name, "datatype": kind, "shape": [n], "data": data})
    return {"inputs": inputs}


def test_errors_name_the_input_and_row_in_the_protocols_shape(server):
    target = server.bundle.schema.numeric[0]
    cases = [
        (one_feature_body(server, "12.5", "BYTES", row=2), 400, f"input '{target}' row 2"),
        (one_feature_body(server, 1e39, row=1), 400, f"'{target}' row 1: number out of range"),
        ({"inputs": []}, 400, "at least one input"),
        ({"inputs": [{"name": "nope", "datatype": "FP64", "shape": [1], "data": [1]}]}, 400,
         "'nope' is not a feature"),
        ({"inputs": [{"name": target, "datatype": "FP64", "shape": [MAX_ROWS + 1], "data": []}]},
         413, "at most 300"),
        ({"inputs": [{"name": target, "datatype": "FP64", "shape": [2], "data": [1]}]}, 400,
         "1 elements for shape [2]"),
        (b"{not json", 400, "malformed JSON"),
        ({**one_feature_body(server, 1.0), "outputs": [{"name": "nope"}]}, 400,
         "output 'nope' unknown"),
    ]  # fmt: skip
    for body, status, fragment in cases:
        response = post_infer(server, body)
        assert response.status_code == status, (body, response.text)
        assert set(response.json()) == {"error"}, response.text
        assert fragment in response.json()["error"], response.text
    # A value sent is never echoed.
    response = post_infer(server, one_feature_body(server, "secret-value-42", "BYTES"))
    assert "secret-value-42" not in response.text
    with server.client() as client, pytest.raises(InferenceServerException, match="not served"):
        client.get_model_metadata(MODEL, model_version="v-other")
    for path, status in [
        (f"/v2/models/{MODEL}/versions/v-other/infer", 404),
        ("/v2/models/other-model/infer", 404),
    ]:
        response = post_infer(server, one_feature_body(server, 1.0), path=path)
        assert response.status_code == status and set(response.json()) == {"error"}
    assert httpx.get(f"{server.url}/v2/models/{MODEL}/infer", headers=AUTH).status_code == 405
    keyless = httpx.post(f"{server.url}/v2/models/{MODEL}/infer", json={"inputs": []})
    assert keyless.status_code == 401


def test_a_ragged_nested_row_is_refused_naming_the_row(server):
    """The total count right, the rows not: values would shift from one row to the next."""
    if not server.numeric:
        pytest.skip("one [rows, features] tensor takes an all-numeric model")
    names = server.bundle.schema.names
    first, second = ([server.rows[i][n] for n in names] for i in (0, 1))
    ragged = [first[:-1], second + [first[-1]]]
    shape = [2, len(names)]
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": shape, "data": ragged}]}
    response = post_infer(server, body)
    assert response.status_code == 400, response.text
    assert f"row 0 has {len(names) - 1} elements" in response.json()["error"]
    body["inputs"][0]["data"] = [first, second]
    assert post_infer(server, body).status_code == 200


def test_binary_bytes_that_do_not_fit_the_model_are_refused_before_decoding(server):
    """The width is refused, not the data: it would fail to decode (not UTF-8) if read."""
    shape = [50, 540]
    raw = (struct.pack("<I", 1) + b"\xff") * (shape[0] * shape[1])
    head = json.dumps(
        {"inputs": [{"name": "x", "datatype": "BYTES", "shape": shape,
                     "parameters": {"binary_data_size": len(raw)}}]}
    ).encode()  # fmt: skip
    response = post_infer(server, head + raw, {"Inference-Header-Content-Length": str(len(head))})
    assert response.status_code == 400, response.text
    expected = "540 columns" if server.numeric else "categorical features"
    assert expected in response.json()["error"], response.text


def binary_body(server: Server, declared: int, present: int) -> tuple[bytes, dict]:
    """A 2-row request of the first numeric feature (others as JSON) whose binary part
    declares ``declared`` bytes and carries ``present``."""
    body = one_feature_body(server, 1.0, n=2)
    target = server.bundle.schema.numeric[0]
    for item in body["inputs"]:
        if item["name"] == target:
            del item["data"]
            item["parameters"] = {"binary_data_size": declared}
    head = json.dumps(body).encode()
    raw = np.array([1.0, 2.0], dtype="<f8").tobytes()
    raw = (raw * 2)[:present]
    return head + raw, {"Inference-Header-Content-Length": str(len(head))}


def test_binary_sizes_that_disagree_with_the_bytes_present_are_refused(server):
    body, headers = binary_body(server, 16, 16)
    assert post_infer(server, body, headers).status_code == 200
    for declared, present, fragment in [
        (16, 8, "only 8 bytes of binary data remain"),
        (24, 24, "takes 16"),
        (2**40, 16, "only 16 bytes"),
        (16, 24, "8 bytes of binary data beyond"),
        (8, 8, "takes 16"),
    ]:
        body, headers = binary_body(server, declared, present)
        response = post_infer(server, body, headers)
        assert response.status_code == 400, response.text
        assert fragment in response.json()["error"]
    body, _ = binary_body(server, 16, 16)
    for bad in ["-1", str(len(body) + 1), "twelve"]:
        response = post_infer(server, body, {"Inference-Header-Content-Length": bad})
        assert response.status_code == 400, response.text


def test_v2_paths_add_no_endpoint_series(server):
    for i in range(30):
        httpx.get(f"{server.url}/v2/models/m{i}/versions/{i}")
    metrics = httpx.get(f"{server.url}/metrics").text
    endpoints = {
        line.split('endpoint="')[1].split('"')[0]
        for line in metrics.splitlines()
        if line.startswith("bentoml_service_request_total") and 'endpoint="' in line
    }
    assert not any(e.startswith("/v2/models/m") for e in endpoints), endpoints
    assert "/v2/*" in endpoints
