"""Tensors to instances: both input forms, the vectorised check of an all-numeric model's
numbers agreeing with ``InstanceValidator``'s, missing values, and errors that name the input,
the row and the column's feature, never a value."""

from __future__ import annotations

import numpy as np
import pytest

from service.errors import ApiError
from service.v2.inputs import check_form, instances, numeric_instances, problem_of
from service.v2.tensors import ProtocolError, Tensor
from service.validation import InstanceValidator
from vigil.schema import Feature, FeatureSchema

NAMES = ["a", "b"]
SCHEMA = FeatureSchema(
    features=(Feature("a", "numeric"), Feature("b", "numeric")), target="y", classes=(0, 1)
)
MIXED = FeatureSchema(
    features=(Feature("a", "numeric"), Feature("c", "categorical", ("x", "y"))),
    target="y",
    classes=(0, 1),
)


def validator(schema=SCHEMA) -> InstanceValidator:
    return InstanceValidator(schema, max_rows=100)


def matrix(data, datatype="FP64") -> list[Tensor]:
    array = np.asarray(data, dtype="<f8" if datatype == "FP64" else "<f4")
    return [Tensor("input-0", datatype, list(array.shape), array.reshape(-1))]


def test_both_forms_give_what_the_validator_gives():
    v = validator()
    by_feature = [
        Tensor("a", "FP64", [3], [1.0, 2.0, None]),
        Tensor("b", "INT64", [3, 1], [4, 5, 6]),
    ]
    slow = v.validate(instances(by_feature, NAMES, NAMES), "inputs")
    fast = numeric_instances(by_feature, NAMES, NAMES)
    assert fast is None  # JSON null: the row-by-row check
    binary = [
        Tensor("a", "FP64", [3], np.array([1.0, 2.0, np.nan])),
        Tensor("b", "INT64", [3, 1], np.array([4, 5, 6])),
    ]
    fast = numeric_instances(binary, NAMES, NAMES)
    assert fast is not None and len(fast.records) == 3
    assert fast.columns == slow.columns == {"a": [1.0, 2.0, None], "b": [4, 5, 6]}
    np.testing.assert_array_equal(fast.numbers, slow.numbers)
    assert list(fast.records) == slow.records
    two_d = numeric_instances(matrix([[1.0, 4.0], [2.0, 5.0], [np.nan, 6.0]]), NAMES, NAMES)
    assert two_d.columns == fast.columns
    np.testing.assert_array_equal(two_d.numbers, slow.numbers)


@pytest.mark.parametrize(
    "tensor",
    [
        Tensor("input-0", "FP64", [1, 2], np.array([np.inf, 1.0])),  # not finite
        Tensor("input-0", "FP64", [1, 2], np.array([1e39, 1.0])),  # beyond float32
        Tensor("input-0", "BOOL", [1, 2], np.array([True, False])),  # booleans
        Tensor("input-0", "FP64", [1, 2], [float("nan"), 1.0]),  # NaN parsed from JSON
        Tensor("input-0", "FP64", [1, 2], ["1", 1.0]),  # text
    ],
)
def test_anything_unusual_goes_to_the_validator_which_names_it(tensor):
    assert numeric_instances([tensor], NAMES, NAMES) is None
    with pytest.raises(ApiError) as caught:
        validator().validate(instances([tensor], NAMES, NAMES), "inputs")
    error = problem_of(caught.value, [tensor], NAMES)
    assert error.status == 400
    assert error.error.startswith("input 'input-0' row 0 column 0 ('a'): ")


def test_per_feature_errors_name_the_input_and_row_and_never_the_value():
    v = validator(MIXED)
    inputs = [
        Tensor("a", "FP64", [2], [1.0, "secret-17"]),
        Tensor("c", "BYTES", [2], ["x", "y"]),
    ]
    with pytest.raises(ApiError) as caught:
        v.validate(instances(inputs, ["a", "c"], ["a"]), "inputs")
    error = problem_of(caught.value, inputs, ["a", "c"])
    assert error.error == "input 'a' row 1: expected a number, got a string"
    assert "secret" not in error.error


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ([Tensor("a", "FP64", [1], [1.0])], "input 'b' required"),
        ([Tensor("a", "FP64", [1], [1.0]), Tensor("b", "FP64", [2], [1.0, 2.0])], "2 rows"),
        ([Tensor("a", "FP64", [1, 2], [1.0, 2.0]), Tensor("b", "FP64", [1], [1.0])], "[rows, 1]"),
        ([Tensor("zz", "FP64", [1], [1.0]), Tensor("a", "FP64", [1], [1.0])], "not a feature"),
        (matrix([[1.0, 2.0, 3.0]]), "3 columns; the model takes 2"),
    ],
)
def test_inputs_that_fit_neither_form_are_refused(inputs, fragment):
    with pytest.raises(ProtocolError) as caught:
        instances(inputs, NAMES, NAMES)
    assert fragment in caught.value.error and caught.value.status == 400


@pytest.mark.parametrize(
    ("inputs", "fragment"),
    [
        ([Tensor("x", "BYTES", [1000, 540], None, {"binary_data_size": 4_000})], "540 columns"),
        ([Tensor("x", "BYTES", [3, 2], None, {"binary_data_size": 24})], "numeric datatype"),
        (
            [
                Tensor("a", "BYTES", [2], None, {"binary_data_size": 8}),
                Tensor("b", "FP64", [2], None, {"binary_data_size": 16}),
            ],
            "input 'a': expected a numeric datatype",
        ),
        ([Tensor("a", "FP64", [1], None, {"binary_data_size": 8})], "input 'b' required"),
    ],
)
def test_the_form_is_checked_from_names_shapes_and_datatypes_alone(inputs, fragment):
    """Before any data is decoded: these tensors have none."""
    with pytest.raises(ProtocolError) as caught:
        check_form(inputs, NAMES, NAMES)
    assert fragment in caught.value.error and caught.value.status == 400


def test_binary_text_for_a_category_passes_the_form_check():
    inputs = [
        Tensor("a", "FP64", [2], None, {"binary_data_size": 16}),
        Tensor("c", "BYTES", [2], None, {"binary_data_size": 10}),
    ]
    assert check_form(inputs, ["a", "c"], ["a"]) is True


def test_a_2d_tensor_needs_an_all_numeric_model():
    with pytest.raises(ProtocolError, match="categorical features"):
        instances(matrix([[1.0, 2.0]]), ["a", "c"], ["a"])
