"""The one JSON codec: attrs models <-> bytes, through cattrs and orjson. Never pickle.

Job arguments may hold ``bytes``: they are written as ``{"$bytes": "<base64>"}`` and come back as
``bytes`` exactly, so binary MQTT payloads survive a round trip through any driver.
"""

from __future__ import annotations

import base64
from typing import Any, TypeVar

import cattrs
import orjson
from cattrs.preconf.orjson import make_converter

from mqttq.errors import PayloadError
from mqttq.models import ENVELOPE_VERSION, Envelope

T = TypeVar("T")

#: how errors name what could not be decoded
_NAMES: dict[type, str] = {Envelope: "job envelope"}

_BYTES_TAG = "$bytes"
_BYTES_MARKER = b'"$bytes"'


def _tag_bytes(value: bytes) -> dict[str, str]:
    return {_BYTES_TAG: base64.b64encode(value).decode("ascii")}


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _bytes(value: Any, _: type) -> bytes:
    if not isinstance(value, bytes):  # a tagged value is untagged before structuring
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return value


def _finite(value: float) -> float:
    # orjson writes NaN and infinity as null: refuse them rather than change the data
    if value - value != 0.0:
        raise TypeError(f"{value} is not JSON data (JSON has no NaN or infinity)")
    return value


def _no_set(value: set[Any] | frozenset[Any]) -> None:
    raise TypeError(f"a {type(value).__name__} is not JSON data (pass a list)")


converter = make_converter()
converter.register_unstructure_hook(bytes, _tag_bytes)
converter.register_unstructure_hook(float, _finite)
converter.register_unstructure_hook_func(
    lambda t: isinstance(t, type) and issubclass(t, set | frozenset), _no_set
)
converter.register_structure_hook(str, _strict_str)
converter.register_structure_hook(bytes, _bytes)


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and _BYTES_TAG in value:
            return base64.b64decode(value[_BYTES_TAG])
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def dumps(obj: object) -> bytes:
    """Encode an attrs model (or plain data) as JSON bytes."""
    try:
        return orjson.dumps(converter.unstructure(obj))
    except TypeError as exc:
        raise PayloadError(f"cannot encode {type(obj).__name__} as JSON: {exc}") from exc


def loads(data: bytes | str, cls: type[T]) -> T:
    """Decode JSON made by :func:`dumps` into ``cls``; raises :class:`PayloadError`."""
    try:
        raw = orjson.loads(data)
        if (_BYTES_MARKER in data) if isinstance(data, bytes) else (_BYTES_TAG in data):
            raw = _untag(raw)
        return converter.structure(raw, cls)
    except (
        orjson.JSONDecodeError,
        cattrs.BaseValidationError,
        TypeError,
        ValueError,
        RecursionError,  # nested deeper than Python will walk
    ) as exc:
        raise PayloadError(f"cannot decode {_NAMES.get(cls, cls.__name__)}: {exc}") from exc


def decode_value(data: bytes) -> Any:
    """Plain JSON made by :func:`dumps` back into Python values, ``bytes`` restored."""
    try:
        raw = orjson.loads(data)
        return _untag(raw) if _BYTES_MARKER in data else raw
    except (orjson.JSONDecodeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"invalid JSON: {exc}") from exc


def encode_job(job: Envelope) -> bytes:
    """The job envelope: versioned JSON. Arguments JSON cannot hold exactly (an object, a set,
    NaN) are a :class:`PayloadError` naming the job, never changed on the way."""
    try:
        return orjson.dumps(converter.unstructure(job))
    except TypeError as exc:
        raise PayloadError(
            f"cannot queue {job.name}: {exc} (job arguments are str, int, float, bool, None, "
            "bytes, lists and dicts with str keys); nothing was queued"
        ) from exc


def decode_job(data: bytes | str) -> Envelope:
    """Read a job envelope; refuses envelopes from a newer, unknown format version."""
    job = loads(data, Envelope)
    if job.v > ENVELOPE_VERSION:
        raise PayloadError(f"job envelope version {job.v} is newer than this mqttq understands")
    return job
