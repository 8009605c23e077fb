"""The protocol's wire format without a server: request decoding (JSON and binary), the
checks of every declared size against the bytes present, and answer encoding."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from service.v2.tensors import Output, ProtocolError, decode_request, encode_answer


def binary_request(inputs: list[dict], chunks: list[bytes], **extra) -> tuple[bytes, int]:
    head = json.dumps({"inputs": inputs, **extra}).encode()
    return head + b"".join(chunks), len(head)


def declared(name: str, datatype: str, shape: list[int], size: int) -> dict:
    parameters = {"binary_data_size": size}
    return {"name": name, "datatype": datatype, "shape": shape, "parameters": parameters}


def strings(*values: str) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


def test_json_inputs_flat_or_nested_by_row():
    body = {
        "id": "r1",
        "inputs": [
            {"name": "a", "datatype": "FP64", "shape": [2, 1], "data": [[1.5], [None]]},
            {"name": "m", "datatype": "INT64", "shape": [2, 2], "data": [1, 2, 3, 4]},
        ],
        "outputs": [{"name": "predict", "parameters": {"binary_data": True}}],
    }
    request = decode_request(json.dumps(body).encode(), None, max_rows=10)
    assert request.id == "r1"
    assert [t.data for t in request.inputs] == [[1.5, None], [1, 2, 3, 4]]
    assert request.outputs == {"predict": True} and request.binary is False


def test_binary_inputs_numbers_and_bytes():
    numbers = np.array([1.0, np.nan, 3.0], dtype="<f4")
    body, length = binary_request(
        [
            {"name": "x", "datatype": "FP32", "shape": [3], "parameters": {"binary_data_size": 12}},
            {
                "name": "c",
                "datatype": "BYTES",
                "shape": [3],
                "parameters": {"binary_data_size": 18},
            },
        ],
        [numbers.tobytes(), strings("ab", "", "ü-x")],
        parameters={"binary_data_output": True},
    )
    request = decode_request(body, length, max_rows=10)
    x, c = request.inputs
    np.testing.assert_array_equal(x.data, numbers)
    assert c.data == ["ab", "", "ü-x"]
    assert request.binary is True and request.outputs is None


@pytest.mark.parametrize(
    ("size", "present", "fragment"),
    [
        (24, 16, "only 16 bytes of binary data remain"),
        (2**62, 16, "only 16 bytes"),
        (16, 24, "8 bytes of binary data beyond"),
        (8, 8, "takes 16"),
        (-1, 16, "byte count"),
    ],
)
def test_a_declared_size_that_disagrees_with_the_bytes_present_is_refused(size, present, fragment):
    raw = np.arange(3, dtype="<f8").tobytes()[:present]
    body, length = binary_request([declared("x", "FP64", [2], size)], [raw])
    with pytest.raises(ProtocolError, match=fragment) as caught:
        decode_request(body, length, max_rows=10)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "chunk",
    [
        b"\x01\x00",  # ends inside a length
        struct.pack("<I", 99) + b"abc",  # an element longer than the data
        strings("a") + b"\x00",  # more data than the elements
        struct.pack("<I", 2) + b"\xff\xfe",  # not UTF-8
    ],
)
def test_bytes_elements_never_read_past_their_data(chunk):
    body, length = binary_request([declared("c", "BYTES", [1], len(chunk))], [chunk])
    with pytest.raises(ProtocolError) as caught:
        decode_request(body, length, max_rows=10)
    assert caught.value.status == 400


@pytest.mark.parametrize("length", [-1, 10_000])
def test_a_header_length_outside_the_body_is_refused(length):
    with pytest.raises(ProtocolError, match="Inference-Header-Content-Length"):
        decode_request(b'{"inputs": []}', length, max_rows=10)


def test_the_row_cap_applies_before_any_data_is_read():
    # Declares a million rows and carries no data at all: refused on the shape alone.
    body, length = binary_request([declared("x", "FP64", [10**6], 8 * 10**6)], [])
    with pytest.raises(ProtocolError, match="at most 10") as caught:
        decode_request(body, length, max_rows=10)
    assert caught.value.status == 413 and caught.value.reason == "too_many_rows"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "inputs: field required"),
        ({"inputs": {}}, "expected a list"),
        ({"inputs": [], "extra": 1}, "unknown field"),
        ({"inputs": [{"name": "x", "datatype": "FP99", "shape": [1], "data": [1]}]}, "datatype"),
        ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 1, 1], "data": [1]}]}, "shape"),
        ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [2], "data": [1]}]}, "1 elements"),
        ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1]}]}, "data required"),
        ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1]}] * 2}, "twice"),
        ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1]}],
          "parameters": {"binary_data_output": "yes"}}, "true or false"),
        ({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1]}], "id": 5},
         "id: expected a string"),
    ],
)  # fmt: skip
def test_malformed_requests_are_refused_naming_what(body, fragment):
    with pytest.raises(ProtocolError, match=fragment.replace("[", r"\[")) as caught:
        decode_request(json.dumps(body).encode(), None, max_rows=10)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("shape", "data", "fragment"),
    [
        ([2, 3], [[1, 2], [3, 4, 5, 6]], "row 0 has 2 elements; shape [2, 3] takes 3"),
        ([2, 3], [[1, 2, 3], [4, 5, 6, 7]], "row 1 has 4 elements"),
        ([2, 1], [[1, 2], []], "row 0 has 2 elements"),
        ([2], [[1, 2]], "1 rows of data for shape [2]"),
        ([3, 2], [[1, 2], [3, 4, 5, 6]], "2 rows of data for shape [3, 2]"),
    ],
)
def test_a_ragged_nested_row_is_refused_naming_the_row(shape, data, fragment):
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": shape, "data": data}]}
    with pytest.raises(ProtocolError, match=fragment.replace("[", r"\[")) as caught:
        decode_request(json.dumps(body).encode(), None, max_rows=10)
    assert caught.value.status == 400 and caught.value.reason == "wrong_type"


def test_the_model_check_runs_before_binary_data_is_decoded():
    """BYTES data that would fail to decode is never read when the inputs do not fit."""
    chunk = struct.pack("<I", 2) + b"\xff\xfe"  # not UTF-8
    head = json.dumps({"inputs": [declared("x", "BYTES", [1, 1], len(chunk))]}).encode()
    body = head + chunk
    with pytest.raises(ProtocolError, match="not UTF-8"):
        decode_request(body, len(head), max_rows=10)

    def refuse(inputs):
        raise ProtocolError(400, f"{inputs[0].shape[1]} columns", "wrong_type")

    with pytest.raises(ProtocolError, match="1 columns"):
        decode_request(body, len(head), max_rows=10, check=refuse)


PROBA = np.array([[0.1, 0.9], [0.8, 0.2]])


def test_answers_in_json_and_binary():
    outputs = [
        Output("predict", "BYTES", ["yes", "no"]),
        Output("predict_proba", "FP64", PROBA, {"classes": ["n", "y"]}),
    ]  # fmt: skip
    body, length = encode_answer({"model_name": "m"}, outputs, {})
    assert length is None
    answer = json.loads(body)
    predict, proba = answer["outputs"]
    assert predict == {"name": "predict", "datatype": "BYTES", "shape": [2], "data": ["yes", "no"]}
    assert proba["shape"] == [2, 2] and proba["data"] == [0.1, 0.9, 0.8, 0.2]

    body, length = encode_answer({"model_name": "m"}, outputs, {"predict_proba": True})
    head = json.loads(body[:length])
    proba = head["outputs"][1]
    assert "data" not in proba and proba["parameters"]["binary_data_size"] == 32
    assert proba["parameters"]["classes"] == ["n", "y"]
    np.testing.assert_array_equal(np.frombuffer(body[length:], "<f8"), [0.1, 0.9, 0.8, 0.2])

    body, length = encode_answer({}, outputs[:1], {"predict": True})
    assert body[length:] == strings("yes", "no")
