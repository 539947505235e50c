"""The job envelope: JSON only, bytes preserved, versions checked."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqttq import Backoff, Envelope, PayloadError
from mqttq.codec import decode_job, decode_value, dumps, encode_job

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(args=st.lists(json_values, max_size=3), kwargs=st.dictionaries(st.text(), json_values))
def test_any_json_and_bytes_arguments_round_trip_exactly(
    args: list[Any], kwargs: dict[str, Any]
) -> None:
    job = Envelope(name="m:f", args=args, kwargs=kwargs, backoff=Backoff(base=2))
    assert decode_job(encode_job(job)) == job


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (float("nan"), "nan is not JSON data"),
        ([1.5, float("inf")], "inf is not JSON data"),
        ({"deep": {1, 2}}, "a set is not JSON data"),
        (frozenset({"x"}), "a frozenset is not JSON data"),
        (object(), "not JSON serializable: object"),
    ],
)
def test_arguments_json_cannot_hold_are_refused_not_changed(value: Any, named: str) -> None:
    """orjson would write NaN as null and a set as a list: the job would get other data."""
    for job in (Envelope(name="m:f", kwargs={"v": value}), Envelope(name="m:f", args=[value])):
        with pytest.raises(PayloadError, match=f"cannot queue m:f: .*{named}.*nothing was queued"):
            encode_job(job)


def test_envelope_is_plain_versioned_json() -> None:
    data = orjson.loads(encode_job(Envelope(name="m:f", kwargs={"raw": b"\xff"})))
    assert data["v"] == 1
    assert data["name"] == "m:f"
    assert data["kwargs"] == {"raw": {"$bytes": "/w=="}}


def test_newer_envelope_version_is_refused() -> None:
    data = orjson.loads(encode_job(Envelope(name="m:f")))
    data["v"] = 99
    with pytest.raises(PayloadError, match="version 99"):
        decode_job(orjson.dumps(data))


@pytest.mark.parametrize("bad", [b"not json", b"[]", b'{"name": 3}', b"{}"])
def test_garbage_is_a_payload_error(bad: bytes) -> None:
    with pytest.raises(PayloadError):
        decode_job(bad)


def test_values_round_trip() -> None:
    value = {"a": [1, b"\x00\x01"], "b": "text"}
    assert decode_value(dumps(value)) == value
