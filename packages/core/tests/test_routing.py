"""Route compilation, topic matching, payload decoding and poison detection."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from mqttq import App, ConfigError, Message
from mqttq.codec import decode_job, encode_job
from mqttq.config import RouteConfig, structure
from mqttq.interfaces import Delivery
from mqttq.routing import (
    MESSAGE_KEY,
    POISON_KEEP,
    PoisonError,
    Route,
    Router,
    compile_route,
    covers,
    message_id,
    poison_job,
    restore_kwargs,
    to_message,
)


def route(topic: str, **kw: Any) -> Route:
    return compile_route(RouteConfig(topic=topic, job="j", **kw), 0, job="j", queue="q")


@pytest.mark.parametrize(
    ("topic", "filter_"),
    [
        ("sensors/{device_id}/temperature", "sensors/+/temperature"),
        ("a/+/{x}/#", "a/+/+/#"),
        ("#", "#"),
        ("plain/topic", "plain/topic"),
    ],
)
def test_named_segments_become_plus(topic: str, filter_: str) -> None:
    assert route(topic).filter == filter_


def test_match_returns_named_segments() -> None:
    r = route("sensors/{device_id}/{kind}")
    assert r.match(["sensors", "d1", "temp"]) == {"device_id": "d1", "kind": "temp"}
    assert r.match(["sensors", "d1"]) is None
    assert r.match(["sensors", "d1", "temp", "x"]) is None
    assert r.match(["other", "d1", "temp"]) is None


@pytest.mark.parametrize(
    ("filter_", "topic", "matches"),
    [
        ("a/#", "a", True),  # '#' also matches the parent level
        ("a/#", "a/b/c", True),
        ("a/#", "b/c", False),
        ("a/+", "a/", True),  # an empty level is a level
        ("a/+", "a/b/c", False),
        ("+/b", "$SYS/b", False),  # wildcards at the first level skip $-topics
        ("#", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
    ],
)
def test_wildcards_follow_mqtt_rules(filter_: str, topic: str, matches: bool) -> None:
    assert (route(filter_).match(topic.split("/")) is not None) is matches


@pytest.mark.parametrize(
    "topic",
    ["a/#/b", "a/{x}/{x}", "a/{message}", "a/b+", "a/{x}y", "a/{1x}"],
)
def test_invalid_topics_are_config_errors(topic: str) -> None:
    with pytest.raises(ConfigError, match=r"routes\[0\]\.topic"):
        route(topic)


def test_router_subscribes_once_per_filter_at_highest_qos() -> None:
    app = App(
        structure(
            {
                "queue": {"url": "memory://"},
                "jobs": {"register": ["mqttq_testjobs:add"]},
                "routes": [
                    {"topic": "s/{a}/t", "job": "mqttq_testjobs:add", "qos": 0},
                    {"topic": "s/{b}/t", "job": "mqttq_testjobs:add", "qos": 2},
                    {"topic": "x/#", "job": "mqttq_testjobs:add", "queue": "xq"},
                ],
            }
        )
    )
    router = Router.from_app(app)
    subs = router.subscriptions("grp")
    assert [(s.filter, s.qos) for s in subs] == [("$share/grp/s/+/t", 2), ("$share/grp/x/#", 1)]
    assert [r.index for r, _ in router.match("s/1/t")] == [0, 1]
    assert [r.queue for r in router.routes] == ["default", "default", "xq"]


def test_unknown_job_name_is_a_config_error() -> None:
    app = App(structure({"queue": {"url": "memory://"}}))
    object.__setattr__(app.config, "routes", [RouteConfig(topic="a", job="nope")])
    with pytest.raises(ConfigError, match=r"routes\[0\]\.job"):
        Router.from_app(app)


def test_decoding_per_payload_kind() -> None:
    assert route("a", payload="json").decode(b'{"t": 21.5}') == {"t": 21.5}
    assert route("a", payload="text").decode("héllo".encode()) == "héllo"
    assert route("a", payload="bytes").decode(b"\xff\x00") == b"\xff\x00"


@pytest.mark.parametrize(
    ("kind", "payload", "reason"),
    [("json", b"{not json", "bad JSON"), ("text", b"\xff\xfe", "not UTF-8")],
)
def test_undecodable_payloads_are_poison(kind: str, payload: bytes, reason: str) -> None:
    with pytest.raises(PoisonError, match=reason):
        route("a", payload=kind).decode(payload)


def test_oversized_payload_is_poison() -> None:
    router = Router([], max_payload=10)
    router.check_size(b"x" * 10)
    with pytest.raises(PoisonError, match=r"11 bytes exceeds mqtt\.max_payload"):
        router.check_size(b"x" * 11)


def test_job_envelope_carries_kwargs_and_message_through_the_codec() -> None:
    r = compile_route(
        RouteConfig(topic="s/{device_id}/t", job="j", max_tries=4, timeout=5, delay=2),
        0,
        job="j",
        queue="telemetry",
    )
    d = Delivery(topic="s/d1/t", payload=b"\xff\x01", qos=1, mid=7, retain=True)
    job = r.make_job(to_message(d, d.payload), {"device_id": "d1"}, now=100.0)
    assert (job.queue, job.max_tries, job.timeout, job.available_at) == ("telemetry", 4, 5, 102.0)
    back = decode_job(encode_job(job))
    kwargs = restore_kwargs(back.kwargs)
    assert kwargs["device_id"] == "d1"
    msg = kwargs["message"]
    assert isinstance(msg, Message)
    assert (msg.topic, msg.payload, msg.qos, msg.retain) == ("s/d1/t", b"\xff\x01", 1, True)
    assert msg.message_id == message_id(d)


def test_restore_kwargs_leaves_other_dicts_alone() -> None:
    kwargs = {"message": {"topic": "t"}, "x": {MESSAGE_KEY: 1}}
    assert restore_kwargs(kwargs) is kwargs


def test_message_id_is_stable_and_prefers_publisher_id() -> None:
    a = Delivery(topic="t", payload=b"p", mid=3)
    assert message_id(a) == message_id(Delivery(topic="t", payload=b"p", mid=3, dup=True))
    assert message_id(a) != message_id(Delivery(topic="t", payload=b"p", mid=4))
    given = Delivery(topic="t", payload=b"p", properties={"user_property": [["message_id", "m1"]]})
    assert message_id(given) == "m1"


def test_poison_job_keeps_text_or_bytes_and_cuts_oversized() -> None:
    r = route("a/{x}", payload="json")
    text = poison_job(r, Delivery(topic="a/1", payload=b"{bad"), {"x": "1"})
    assert text.kwargs["message"][MESSAGE_KEY]["payload"] == "{bad"
    assert text.kwargs["x"] == "1"
    raw = poison_job(r, Delivery(topic="a/1", payload=b"\xff" * 10), {"x": "1"})
    assert raw.kwargs["message"][MESSAGE_KEY]["payload"] == b"\xff" * 10
    big = poison_job(r, Delivery(topic="a/1", payload=b"x" * 5000), {}, oversized=True)
    assert len(big.kwargs["message"][MESSAGE_KEY]["payload"]) == POISON_KEEP
    assert orjson.loads(encode_job(big))["name"] == "j"


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("a/#", "a/+/c", True),
        ("a/#", "a", True),
        ("#", "a/b", True),
        ("+/+", "a/b", True),
        ("a/+", "a/#", False),
        ("a/+/c", "a/b/+", False),
        ("a/b/+", "a/+/c", False),
        ("a/b", "a/b/c", False),
        ("#", "$SYS/x", False),
    ],
)
def test_filter_coverage(outer: str, inner: str, expected: bool) -> None:
    assert covers(outer.split("/"), inner.split("/")) is expected


def test_covered_filters_are_not_subscribed_twice_and_ids_pick_routes() -> None:
    routes = [
        compile_route(RouteConfig(topic=t, job="j", qos=q), i, job="j", queue="q")
        for i, (t, q) in enumerate(
            [("s/{d}/t", 2), ("s/#", 0), ("a/+/c", 1), ("a/b/+", 1), ("s/x/t", 1)]
        )
    ]
    router = Router(routes)
    subs = router.subscriptions()
    assert [(s.topic, s.qos, s.identifier) for s in subs] == [
        ("s/#", 2, 1),
        ("a/+/c", 1, 2),
        ("a/b/+", 1, 3),
    ]
    # without identifiers every matching route; with them, only the named subscription's routes
    assert [r.index for r, _ in router.match("a/b/c")] == [2, 3]
    assert [r.index for r, _ in router.match("a/b/c", [3])] == [3]
    assert [r.index for r, _ in router.match("s/x/t", [1])] == [0, 1, 4]
