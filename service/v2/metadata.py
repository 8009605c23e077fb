"""Server and model metadata as the protocol lists them (``GET /v2``, ``GET /v2/models/...``)."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from service.routing import MODEL_NAME

EXTENSIONS = ["binary_tensor_data"]


def server_metadata() -> dict[str, Any]:
    try:
        version = metadata.version("vigil")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        version = "unknown"
    return {"name": "vigil", "version": version, "extensions": EXTENSIONS}


def model_metadata(model: Any) -> dict[str, Any]:
    """Every feature as an input (FP64 for numbers, BYTES for categories; shape ``[-1]``, or
    ``[-1, 1]`` as well), in the order a 2-D tensor's columns follow; the task's outputs."""
    bundle = model.bundle
    inputs = [
        {
            "name": feature.name,
            "datatype": "FP64" if feature.kind == "numeric" else "BYTES",
            "shape": [-1],
        }
        for feature in bundle.schema.features
    ]
    empty = {"predictions": [], "probabilities": []}
    outputs = [
        {"name": name, "datatype": datatype, "shape": [-1, *np_shape(values)[1:]]}
        | ({"parameters": parameters} if parameters else {})
        for name, datatype, values, parameters in bundle.task.protocol_outputs(
            empty, model.inference.classes
        )
    ]
    outputs.append({"name": "prediction_id", "datatype": "BYTES", "shape": [-1]})
    return {
        "name": MODEL_NAME,
        "versions": [bundle.tag],
        "platform": f"vigil-{model.inference.runtime}",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {"content_type": "pd", "task": bundle.task.name},
    }


def np_shape(values: Any) -> tuple[int, ...]:
    return tuple(getattr(values, "shape", (len(values),)))
