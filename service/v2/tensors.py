"""The protocol's wire format: a request's JSON header and binary tensors in, an answer out.

Triton's binary tensor extension: the ``Inference-Header-Content-Length`` header says how many
bytes of the body are JSON; the rest holds, in input order, the raw data of every input whose
``parameters.binary_data_size`` is set (numbers little-endian, BYTES as a 4-byte little-endian
length before each element). Every declared size is checked against the bytes present before
anything is read: a mismatch is a 400, never a read past the buffer.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from math import prod
from typing import Any

import numpy as np
import pydantic_core

from vigil.log.format import dumps_bytes

HEADER_LENGTH = "inference-header-content-length"
# Numeric datatypes and their little-endian numpy types; BYTES is handled apart.
NUMERIC = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
DATATYPES = (*NUMERIC, "BYTES")
MAX_INPUTS = 1_000  # more than any model's features; bounds the work before the row check
_LENGTH = struct.Struct("<I")


class ProtocolError(Exception):
    """A request we answer with the protocol's ``{"error": ...}``; ``reason`` feeds
    vigil_input_rejected_total."""

    def __init__(
        self,
        status: int,
        error: str,
        reason: str | None = "malformed",
        headers: dict[str, str] | None = None,
    ):
        super().__init__(error)
        self.status = status
        self.error = " ".join(error.split())[:500]
        self.reason = reason
        self.headers = headers or {}


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    # Row-major elements: a flat list of Python values (JSON) or a numpy array (binary).
    data: Any = None
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.shape[0]


@dataclass
class InferRequest:
    id: str | None
    inputs: list[Tensor]
    outputs: dict[str, bool] | None  # requested name -> binary; None: all, in ``binary``
    binary: bool  # parameters.binary_data_output: the default for outputs


def header_length(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    for key, value in headers:
        if key.lower() == HEADER_LENGTH.encode():
            try:
                return int(value)
            except ValueError:
                raise ProtocolError(
                    400, "Inference-Header-Content-Length: expected a byte count"
                ) from None
    return None


def decode_request(
    body: bytes,
    json_length: int | None,
    max_rows: int,
    check: Callable[[list[Tensor]], object] | None = None,
) -> InferRequest:
    """The request in ``body``; ``json_length`` from Inference-Header-Content-Length (None:
    the whole body is JSON). Rows beyond ``max_rows`` are refused (413), and ``check`` (the
    model's names, shapes and datatypes) raises, before any binary data is decoded."""
    if json_length is None:
        json_length = len(body)
    if not 0 <= json_length <= len(body):
        raise ProtocolError(
            400,
            f"Inference-Header-Content-Length is {json_length} but the body has {len(body)} bytes",
        )
    try:
        header = pydantic_core.from_json(body if json_length == len(body) else body[:json_length])
    except ValueError as exc:
        raise ProtocolError(400, f"malformed JSON: {str(exc)[:100]}") from None
    if not isinstance(header, dict):
        raise ProtocolError(400, 'expected a JSON object {"inputs": [...]}', "wrong_type")
    unknown = set(header) - {"id", "inputs", "outputs", "parameters"}
    if unknown:
        raise ProtocolError(400, f"unknown field {sorted(unknown)[0][:40]!r}", "unknown_field")
    request_id = header.get("id")
    if request_id is not None and (type(request_id) is not str or len(request_id) > 256):
        raise ProtocolError(400, "id: expected a string of at most 256 characters", "wrong_type")
    parameters = _parameters(header.get("parameters"), "parameters")
    binary = parameters.get("binary_data_output", False)
    if type(binary) is not bool:
        raise ProtocolError(400, "parameters.binary_data_output: expected true or false")
    inputs = _inputs(header.get("inputs"), max_rows)
    outputs = _outputs(header.get("outputs"), binary)
    chunks = _read_data(inputs, memoryview(body)[json_length:])
    if check is not None:
        check(inputs)
    for tensor, chunk in chunks:
        tensor.data = _binary_elements(tensor, chunk, prod(tensor.shape), f"input {tensor.name!r}")
    return InferRequest(request_id, inputs, outputs, binary)


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(400, f"{where}: expected an object", "wrong_type")
    return value


def _inputs(value: Any, max_rows: int) -> list[Tensor]:
    if value is None:
        raise ProtocolError(400, "inputs: field required", "missing_field")
    if not isinstance(value, list):
        raise ProtocolError(400, "inputs: expected a list of tensors", "wrong_type")
    if not value:
        raise ProtocolError(400, "inputs: at least one input is required", "empty")
    if len(value) > MAX_INPUTS:
        raise ProtocolError(400, f"inputs: {len(value)} inputs; at most {MAX_INPUTS}")
    out, names = [], set()
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ProtocolError(400, f"inputs[{i}]: expected an object", "wrong_type")
        name = item.get("name")
        if type(name) is not str or not 0 < len(name) <= 256:
            raise ProtocolError(400, f"inputs[{i}].name: expected a name", "missing_field")
        where = f"input {name!r}"
        if name in names:
            raise ProtocolError(400, f"{where}: sent twice")
        names.add(name)
        unknown = set(item) - {"name", "datatype", "shape", "data", "parameters"}
        if unknown:
            raise ProtocolError(
                400, f"{where}: unknown field {sorted(unknown)[0][:40]!r}", "unknown_field"
            )
        datatype = item.get("datatype")
        if datatype not in DATATYPES:
            raise ProtocolError(
                400, f"{where}: datatype must be one of {', '.join(DATATYPES)}", "wrong_type"
            )
        shape = item.get("shape")
        if (
            not isinstance(shape, list)
            or not 1 <= len(shape) <= 2
            or any(type(d) is not int or d < 0 for d in shape)
        ):
            raise ProtocolError(
                400, f"{where}: shape must be [rows] or [rows, columns]", "wrong_type"
            )
        if shape[0] == 0:
            raise ProtocolError(400, f"{where}: at least one row is required", "empty")
        if shape[0] > max_rows:
            raise ProtocolError(
                413,
                f"{where}: {shape[0]} rows; at most {max_rows} per request (VIGIL_MAX_BATCH_ROWS)",
                "too_many_rows",
            )
        if len(shape) == 2 and shape[1] > MAX_INPUTS:
            raise ProtocolError(400, f"{where}: {shape[1]} columns; at most {MAX_INPUTS}")
        out.append(
            Tensor(
                name, datatype, shape, item.get("data"), _parameters(item.get("parameters"), where)
            )
        )
    return out


def _outputs(value: Any, binary: bool) -> dict[str, bool] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 16:
        raise ProtocolError(400, "outputs: expected a list of at most 16 outputs", "wrong_type")
    out: dict[str, bool] = {}
    for i, item in enumerate(value):
        if not isinstance(item, dict) or type(item.get("name")) is not str:
            raise ProtocolError(400, f"outputs[{i}]: expected an object with a name", "wrong_type")
        wants = _parameters(item.get("parameters"), f"outputs[{i}].parameters").get(
            "binary_data", binary
        )
        if type(wants) is not bool:
            raise ProtocolError(400, f"outputs[{i}].parameters.binary_data: expected true or false")
        out[item["name"]] = wants
    return out


def _read_data(inputs: list[Tensor], rest: memoryview) -> list[tuple[Tensor, memoryview]]:
    """Each input's data from JSON, or its slice of ``rest`` (returned, to be decoded once the
    inputs are known to fit the model); every byte accounted for."""
    binary = []
    offset = 0
    for tensor in inputs:
        where = f"input {tensor.name!r}"
        count = prod(tensor.shape)
        size = tensor.parameters.get("binary_data_size")
        if size is None:
            if tensor.data is None:
                raise ProtocolError(400, f"{where}: data required", "missing_field")
            tensor.data = _json_elements(tensor, count, where)
            continue
        if tensor.data is not None:
            raise ProtocolError(400, f"{where}: both data and binary_data_size were sent")
        if type(size) is not int or size < 0:
            raise ProtocolError(400, f"{where}: binary_data_size must be a byte count")
        if size > len(rest) - offset:
            raise ProtocolError(
                400,
                f"{where}: binary_data_size is {size} bytes but only {len(rest) - offset} "
                "bytes of binary data remain",
            )
        binary.append((tensor, rest[offset : offset + size]))
        offset += size
    if offset != len(rest):
        raise ProtocolError(
            400,
            f"the body has {len(rest) - offset} bytes of binary data beyond what the inputs' "
            "binary_data_size declare",
        )
    return binary


def _json_elements(tensor: Tensor, count: int, where: str) -> list[Any]:
    data = tensor.data
    if not isinstance(data, list):
        raise ProtocolError(400, f"{where}: data must be a list", "wrong_type")
    if data and isinstance(data[0], list):
        # Nested row by row, as the protocol allows (shapes here have at most two dimensions).
        if not all(isinstance(row, list) for row in data):
            raise ProtocolError(400, f"{where}: data mixes lists and values", "wrong_type")
        # Every row its declared width: a short row beside a long one has the right total but
        # would shift values from one row into the next.
        width = tensor.shape[1] if len(tensor.shape) == 2 else 1
        if len(data) != tensor.shape[0]:
            raise ProtocolError(
                400, f"{where}: {len(data)} rows of data for shape {tensor.shape}", "wrong_type"
            )
        for i, row in enumerate(data):
            if len(row) != width:
                raise ProtocolError(
                    400,
                    f"{where}: row {i} has {len(row)} elements; shape {tensor.shape} takes {width}",
                    "wrong_type",
                )
        data = [v for row in data for v in row]
    if len(data) != count:
        raise ProtocolError(
            400, f"{where}: {len(data)} elements for shape {tensor.shape}", "wrong_type"
        )
    return data


def _binary_elements(tensor: Tensor, chunk: memoryview, count: int, where: str) -> Any:
    if tensor.datatype == "BYTES":
        return _bytes_elements(chunk, count, where)
    dtype = NUMERIC[tensor.datatype]
    if len(chunk) != count * dtype.itemsize:
        raise ProtocolError(
            400,
            f"{where}: binary_data_size is {len(chunk)} bytes; shape {tensor.shape} of "
            f"{tensor.datatype} takes {count * dtype.itemsize}",
        )
    return np.frombuffer(chunk, dtype=dtype)


def _bytes_elements(chunk: memoryview, count: int, where: str) -> list[str]:
    out, offset, end = [], 0, len(chunk)
    for _ in range(count):
        if end - offset < 4:
            raise ProtocolError(400, f"{where}: BYTES data ends inside an element's length")
        (length,) = _LENGTH.unpack_from(chunk, offset)
        offset += 4
        if length > end - offset:
            raise ProtocolError(400, f"{where}: a BYTES element runs past its binary_data_size")
        try:
            out.append(bytes(chunk[offset : offset + length]).decode())
        except UnicodeDecodeError:
            raise ProtocolError(
                400, f"{where}: a BYTES element is not UTF-8 text", "wrong_type"
            ) from None
        offset += length
    if offset != end:
        raise ProtocolError(400, f"{where}: binary_data_size is larger than its {count} elements")
    return out


@dataclass(frozen=True)
class Output:
    name: str
    datatype: str
    values: Any  # a numpy array (numbers) or a list of str (BYTES)
    parameters: dict[str, Any] = field(default_factory=dict)


def encode_answer(
    head: dict[str, Any], outputs: Sequence[Output], binary: dict[str, bool]
) -> tuple[bytes, int | None]:
    """The answer's body, and the JSON header's length when some output is binary (the
    value of Inference-Header-Content-Length; None: the body is all JSON)."""
    described, chunks = [], []
    for output in outputs:
        values = output.values
        shape = list(np.shape(values)) if isinstance(values, np.ndarray) else [len(values)]
        tensor: dict[str, Any] = {"name": output.name, "datatype": output.datatype, "shape": shape}
        parameters = dict(output.parameters)
        if binary.get(output.name):
            raw = _raw(output)
            chunks.append(raw)
            parameters["binary_data_size"] = len(raw)
        else:
            tensor["data"] = (
                values.reshape(-1).tolist() if isinstance(values, np.ndarray) else values
            )
        if parameters:
            tensor["parameters"] = parameters
        described.append(tensor)
    body = dumps_bytes({**head, "outputs": described})
    if not chunks:
        return body, None
    return b"".join([body, *chunks]), len(body)


def _raw(output: Output) -> bytes:
    if output.datatype == "BYTES":
        parts = []
        for text in output.values:
            data = str(text).encode()
            parts += [_LENGTH.pack(len(data)), data]
        return b"".join(parts)
    return np.ascontiguousarray(output.values, dtype=NUMERIC[output.datatype]).tobytes()
