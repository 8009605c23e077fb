"""Request ids (UUIDv7) and the prediction ids derived from them."""

from __future__ import annotations

import time
import uuid

import pytest

from vigil.log.prediction_ids import (
    MAX_REQUEST_ROWS,
    new_request_id,
    new_request_ids,
    prediction_id,
    prediction_ids,
    split_prediction_id,
)


def test_request_ids_are_unique_time_ordered_uuid7s():
    first = new_request_ids(1000)
    assert len(set(first)) == 1000
    assert all(len(i) == 32 and uuid.UUID(i).version == 7 for i in first[:20])
    time.sleep(0.002)
    assert max(first) < min(new_request_ids(10))  # later ids sort after earlier ones
    assert new_request_id(at=1_000.0) < new_request_id(at=1_000.002) < new_request_id()
    assert uuid.UUID(new_request_id(at=1_000.0)).int >> 80 == 1_000_000  # Unix milliseconds
    same_ms = [new_request_id(at=2_000.0) for _ in range(100)]
    assert same_ms == sorted(same_ms)  # in the order made, within a millisecond too
    assert all(uuid.UUID(i).version == 7 for i in same_ms)


def test_prediction_ids_are_the_request_id_and_a_fixed_width_position():
    rid = new_request_id()
    ids = prediction_ids(rid, 5000)  # past the preformatted suffixes, too
    assert ids[0] == rid + "0000" and ids[255] == rid + "00ff" and ids[4999] == rid + "1387"
    assert ids == sorted(ids) and len({len(i) for i in ids}) == 1
    assert all(split_prediction_id(i) == (rid, n) for n, i in enumerate(ids))
    assert prediction_id(rid, 0xFFFF) == rid + "ffff"
    with pytest.raises(ValueError):
        prediction_ids(rid, MAX_REQUEST_ROWS + 1)


@pytest.mark.parametrize(
    "value", ["", "abc", "x" * 36, "A" * 36, "0" * 35, "0" * 37, "0" * 35 + "\n", None, 12]
)
def test_anything_else_is_not_a_prediction_id(value):
    assert split_prediction_id(value) is None
