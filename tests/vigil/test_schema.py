"""Feature schema inference, round trip and model-input framing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from vigil.schema import FeatureSchema, to_frame


def sample() -> tuple[pd.DataFrame, pd.Series]:
    features = pd.DataFrame(
        {
            "x": [1.5, np.nan, 3.0, -2.0],
            "n": [1, 2, 3, 4],
            "colour": ["red", None, "blue", "red"],
            "flag": [True, False, True, True],
        }
    )
    return features, pd.Series([0, 1, 1, 0])


def test_infers_kinds_categories_ranges_and_classes():
    schema = FeatureSchema.infer(*sample(), target="y")
    assert schema.numeric == ["x", "n"] and schema.categorical == ["colour", "flag"]
    assert schema["x"].min == -2.0 and schema["x"].max == 3.0
    assert schema["colour"].categories == ("blue", "red")
    assert schema["flag"].categories == ("False", "True")
    assert schema.classes == (0, 1) and all(type(c) is int for c in schema.classes)


def test_round_trips_through_a_dict():
    schema = FeatureSchema.infer(*sample(), target="y")
    assert FeatureSchema.from_dict(schema.to_dict()) == schema
    assert "colour" in schema and "nope" not in schema


def test_string_classes_stay_text():
    features, _ = sample()
    schema = FeatureSchema.infer(features, pd.Series(["b", "a", "b", "c"]), target="y")
    assert schema.classes == ("a", "b", "c")


def test_to_frame_orders_types_and_marks_missing():
    schema = FeatureSchema.infer(*sample(), target="y")
    frame = to_frame(schema, [{"flag": True, "colour": None, "n": 2, "x": None}])
    assert list(frame.columns) == ["x", "n", "colour", "flag"]
    assert frame.dtypes["x"] == np.float64 and math.isnan(frame.loc[0, "x"])
    assert frame.loc[0, "flag"] == "True"
    assert pd.isna(frame.loc[0, "colour"])


def test_integral_floats_and_ints_are_one_category():
    features = pd.DataFrame({"grade": [1, 2, 3, 1]})
    schema = FeatureSchema(
        features=FeatureSchema.infer(features.astype(str), pd.Series([0, 1, 0, 1]), "y").features,
        target="y",
        classes=(0, 1),
    )
    frame = to_frame(schema, pd.DataFrame({"grade": [3.0, 3, "3"]}))
    assert frame["grade"].tolist() == ["3", "3", "3"]
