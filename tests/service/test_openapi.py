"""The OpenAPI document the service publishes: BentoML's, corrected to what the API does."""

from __future__ import annotations

import jsonschema
import pytest

from service.openapi import ERROR_SCHEMA, FLOAT32_MAX, instance_schema, published
from vigil.tasks import CLASSIFIER, REGRESSOR


def bentoml_like_spec() -> dict:
    """The parts of BentoML 1.4's generated document that ``published`` corrects."""

    def api(name: str, field: str) -> dict:
        return {
            "post": {
                "x-bentoml-name": name,
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": [field],
                                "properties": {
                                    field: {"type": "array", "items": {"type": "object"}}
                                },
                            }
                        }
                    }
                },
                # ints, as BentoML builds them (HTTPStatus values)
                "responses": {200: {"description": "ok"}, 400: {}, 404: {}, 500: {}},
            }
        }

    return {
        "openapi": "3.0.2",
        "info": {"title": "vigil", "description": "This is a Machine Learning Service"},
        "components": {
            "schemas": {
                "InvalidArgument": {"properties": {"detail": {"type": "string"}}},
                "NotFound": {},
                "InternalServerError": {},
                "predict__Input": {},
            }
        },
        "paths": {
            "/predict": api("predict", "instances"),
            "/feedback": api("feedback", "labels"),
            "/readyz": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/metrics": {"get": {"responses": {"200": {"description": "ok"}}}},
        },
    }


def instance() -> dict:
    return instance_schema(
        ["age"], {"plan": frozenset({"basic", "pro"})}, max_category_chars=5, strict=False
    )


@pytest.mark.parametrize("keyed", [True, False])
def test_api_operations_document_what_the_service_answers(keyed):
    doc = published(
        bentoml_like_spec(),
        model_version="vigil-model:abc",
        instance=instance(),
        classes=["no", "yes"],
        max_rows=7,
        keyed=keyed,
        task=CLASSIFIER,
    )
    for path in ("/predict", "/feedback"):
        operation = doc["paths"][path]["post"]
        expected = {"200", "400", "413", "503"} | ({"401"} if keyed else set())
        assert set(operation["responses"]) == expected, path
        assert "Retry-After" in operation["responses"]["503"]["headers"]
        assert operation["requestBody"]["required"] is True
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body["additionalProperties"] is False
        field = body["required"][0]
        assert body["properties"][field]["minItems"] == 1
        assert body["properties"][field]["maxItems"] == 7
        assert ("security" in operation) is keyed
    assert ("securitySchemes" in doc["components"]) is keyed
    schemas = doc["components"]["schemas"]
    assert not {"InvalidArgument", "NotFound", "InternalServerError"} & set(schemas)
    assert schemas["Error"] == ERROR_SCHEMA
    assert (
        schemas["predict__Input"]
        == (
            doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        )
    )
    assert doc["info"]["version"] == "vigil-model:abc"
    assert "/model" in doc["paths"] and "503" in doc["paths"]["/readyz"]["get"]["responses"]
    labels = doc["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]
    label = labels["schema"]["properties"]["labels"]["items"]["properties"]["label"]
    assert label["enum"] == ["no", "yes"]
    answer = doc["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]
    jsonschema.validate(
        {
            "model_version": "vigil-model:abc",
            "request_id": "r",
            "predictions": ["yes"],
            "probabilities": [{"no": 0.2, "yes": 0.8}],
            "prediction_ids": ["r-0"],
        },
        answer["schema"],
    )


def test_a_regressors_answer_and_labels_are_numbers():
    doc = published(
        bentoml_like_spec(),
        model_version="vigil-model:abc",
        instance=instance(),
        classes=[],
        max_rows=7,
        keyed=False,
        task=REGRESSOR,
    )
    labels = doc["paths"]["/feedback"]["post"]["requestBody"]["content"]["application/json"]
    label = labels["schema"]["properties"]["labels"]["items"]["properties"]["label"]
    assert label["type"] == "number"
    answer = doc["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]
    good = {
        "model_version": "m",
        "request_id": "r",
        "predictions": [151.3],
        "prediction_ids": ["r"],
    }
    jsonschema.validate(good, answer["schema"])
    with pytest.raises(jsonschema.ValidationError):  # no probabilities for a regressor
        jsonschema.validate({**good, "probabilities": [{}]}, answer["schema"])


def test_the_error_schema_is_the_contracts_error_object():
    jsonschema.validate(
        {
            "error": "instances[0].age: bad",
            "detail": [{"loc": ["instances", 0, "age"], "msg": "x"}],
        },
        ERROR_SCHEMA,
    )
    for wrong in ({"error": "x"}, {"error": "x", "detail": "text"}, {"error": "x", "detail": [{}]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, ERROR_SCHEMA)


def test_an_instance_is_every_feature_null_or_in_range():
    schema = instance()
    jsonschema.validate({"age": 3.5, "plan": "other"}, schema)  # an unseen category is accepted
    jsonschema.validate({"age": None, "plan": None}, _nullable_as_json_schema(schema))
    for wrong in (
        {"age": 1.0},  # a feature absent
        {"age": 1.0, "plan": "pro", "colour": "red"},  # an unknown one
        {"age": FLOAT32_MAX * 2, "plan": "pro"},  # beyond float32
        {"age": 1.0, "plan": "toolong"},  # past max_category_chars
        {"age": "1", "plan": "pro"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, schema)
    strict = instance_schema([], {"plan": frozenset({"pro"})}, max_category_chars=5, strict=True)
    assert strict["properties"]["plan"]["enum"] == ["pro", None]


def test_published_without_a_model_documents_any_objects():
    doc = published(
        bentoml_like_spec(),
        model_version=None,
        instance=None,
        classes=None,
        max_rows=3,
        keyed=False,
    )
    items = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert items["schema"]["properties"]["instances"]["items"] == {"type": "object"}
    assert doc["info"]["version"] == "not ready"


def _nullable_as_json_schema(schema: dict) -> dict:
    """OpenAPI 3.0's ``nullable`` as plain JSON Schema's ``type: [..., "null"]``."""
    props = {
        name: {**{k: v for k, v in p.items() if k != "nullable"}, "type": [p["type"], "null"]}
        for name, p in schema["properties"].items()
    }
    return {**schema, "properties": props}
