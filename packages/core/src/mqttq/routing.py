"""Routes: which MQTT messages become which jobs, and with which arguments.

A route topic may name segments: ``sensors/{device_id}/temperature`` subscribes to
``sensors/+/temperature`` and calls the job with ``device_id="d1"``. ``+`` and ``#`` work as in
MQTT. Every route job also gets ``message``: a :class:`mqttq.Message` with the payload decoded per
the route (json, text or bytes). In the queue it travels as ``{"$message": {...}}`` (plain JSON);
:func:`restore_kwargs` turns it back into a ``Message`` right before the job is called.

Input a route cannot decode (bad JSON on a json route, non-UTF-8 on a text route, a payload over
``mqtt.max_payload``) raises :class:`PoisonError`; the listener records it as a failed job.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import orjson

from mqttq.config import Mode, PayloadKind, Retained, RouteConfig
from mqttq.errors import ConfigError, PayloadError
from mqttq.interfaces import Delivery, Subscription
from mqttq.models import Backoff, Envelope, Message

if TYPE_CHECKING:
    from mqttq.app import App

#: tag of a route job's ``message`` kwarg while it sits in a queue
MESSAGE_KEY = "$message"
#: the kwarg every route job receives
MESSAGE_ARG = "message"
#: bytes of an oversized payload kept in the failed registry (the rest is dropped)
POISON_KEEP = 1024
#: in a poison job's message: the decoding that failed (``json``/``text``; ``bytes`` when only
#: the size was wrong), and whether the payload was cut to :data:`POISON_KEEP` bytes
UNDECODED = "undecoded"
TRUNCATED = "truncated"

_NAMED = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_MESSAGE_ID_PROPS = ("message_id", "message-id")


class PoisonError(PayloadError):
    """A message that no retry can fix; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode_payload(kind: PayloadKind, payload: bytes) -> Any:
    """``payload`` decoded as a route of ``kind`` asks; :class:`PoisonError` when it cannot be."""
    if kind == "json":
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise PoisonError(f"bad JSON on json route: {exc}") from None
    if kind == "text":
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PoisonError(f"payload is not UTF-8 on a text route: {exc}") from None
    return payload


@attrs.frozen(kw_only=True)
class Route:
    """A compiled route. ``levels`` holds each filter level; ``names`` maps level index -> kwarg."""

    index: int
    topic: str
    filter: str
    job: str
    queue: str
    qos: int
    mode: Mode
    payload: PayloadKind
    retained: Retained = "new"
    max_tries: int | None = None
    timeout: float | None = None
    delay: float | None = None
    backoff: Backoff | None = None
    levels: tuple[str, ...]
    names: tuple[tuple[int, str], ...] = ()

    def match(self, levels: Sequence[str]) -> dict[str, str] | None:
        """The named segments when ``levels`` (a split topic) matches this route, else None."""
        pattern = self.levels
        if pattern[0] in ("+", "#") and levels[0].startswith("$"):
            return None  # MQTT: wildcards at the first level never match $SYS-like topics
        n = len(pattern)
        if pattern[-1] == "#":
            if len(levels) < n - 1:
                return None
            n -= 1
        elif len(levels) != n:
            return None
        for i in range(n):
            p = pattern[i]
            if p != "+" and p != levels[i]:
                return None
        return {name: levels[i] for i, name in self.names}

    def inline(self, qos: int) -> bool:
        """Whether a message of ``qos`` runs inline (sync) rather than through the queue."""
        return self.mode == "sync" or (self.mode == "mixed" and qos == 2)

    def decode(self, payload: bytes) -> Any:
        """The payload as the job sees it; :class:`PoisonError` when it cannot be decoded."""
        return decode_payload(self.payload, payload)

    def make_job(
        self, message: Message, params: Mapping[str, str], *, now: float | None = None
    ) -> Envelope:
        """The job this route makes for ``message`` (payload already decoded)."""
        now = time.time() if now is None else now
        kwargs: dict[str, Any] = dict(params)
        kwargs[MESSAGE_ARG] = {MESSAGE_KEY: message.to_dict()}
        return Envelope(
            name=self.job,
            queue=self.queue,
            kwargs=kwargs,
            max_tries=self.max_tries,
            timeout=self.timeout,
            backoff=self.backoff,
            enqueued_at=now,
            available_at=now + self.delay if self.delay else now,
        )


def compile_route(config: RouteConfig, index: int, *, job: str, queue: str) -> Route:
    """Check a route's topic and compile it; ``job`` is its registered name."""
    where = f"routes[{index}].topic"
    levels = config.topic.split("/")
    names: list[tuple[int, str]] = []
    out: list[str] = []
    for i, level in enumerate(levels):
        named = _NAMED.match(level)
        if named:
            name = named[1]
            if name == MESSAGE_ARG:
                raise ConfigError(f"{where}: {{message}} is reserved", [(where, "reserved name")])
            if any(name == n for _, n in names):
                raise ConfigError(f"{where}: {{{name}}} appears twice", [(where, "repeated name")])
            names.append((i, name))
            out.append("+")
        elif level == "#" and i != len(levels) - 1:
            raise ConfigError(f"{where}: '#' must be the last level", [(where, "misplaced #")])
        elif level not in ("+", "#") and any(c in level for c in "+#{}"):
            raise ConfigError(
                f"{where}: {level!r} is not a valid level (use +, # or a whole {{name}})",
                [(where, "invalid level")],
            )
        else:
            out.append(level)
    return Route(
        index=index,
        topic=config.topic,
        filter="/".join(out),
        job=job,
        queue=queue,
        qos=config.qos,
        mode=config.mode,
        payload=config.payload,
        retained=config.retained,
        max_tries=config.max_tries,
        timeout=config.timeout,
        delay=config.delay,
        backoff=config.backoff,
        levels=tuple(out),
        names=tuple(names),
    )


def covers(outer: Sequence[str], inner: Sequence[str]) -> bool:
    """Whether every topic that filter ``inner`` matches is matched by filter ``outer`` (levels)."""
    if outer[0] in ("+", "#") and inner[0].startswith("$"):
        return False
    for i, level in enumerate(outer):
        if level == "#":
            return True
        if i >= len(inner) or inner[i] == "#":
            return False
        if level != "+" and level != inner[i]:
            return False
    return len(outer) == len(inner)


#: MQTT 5 retain handling of each ``retained`` policy (0: always, 1: new subscriptions only,
#: 2: never)
RETAIN_HANDLING = {"always": 0, "new": 1, "ignore": 2}


def _covering(filters: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The fewest of ``filters`` that cover them all (of two equal ones, the first)."""
    return [
        f
        for i, f in enumerate(filters)
        if not any(
            covers(g, f) and not (covers(f, g) and i < j) for j, g in enumerate(filters) if g != f
        )
    ]


class Router:
    """All routes of an app: subscriptions to make, and the routes a topic matches.

    Brokers send one copy of a message per matching subscription, so the router subscribes to as
    few filters as cover every route (``sensors/#`` makes ``sensors/+/t`` redundant) and gives
    each an MQTT 5 subscription identifier: a copy is then routed only to the routes of the
    subscriptions it names. (Over MQTT 3.1.1 partly overlapping filters such as ``a/+/c`` and
    ``a/b/+`` still bring two copies, hence two jobs per route.)
    """

    def __init__(self, routes: Sequence[Route], *, max_payload: int = 262144) -> None:
        self.routes = list(routes)
        self.max_payload = max_payload
        #: covering filters and their MQTT 5 retain handling; identifier = position + 1
        self._kept: list[tuple[str, int]] = []
        #: subscription identifier of each route, by route index
        self.route_subscription: dict[int, int] = {}
        ids: dict[str, int] = {}
        # routes with different retained policies need subscriptions of their own
        for policy in dict.fromkeys(r.retained for r in self.routes):
            group = [r for r in self.routes if r.retained == policy]
            handling = RETAIN_HANDLING[policy]
            own = _covering(list(dict.fromkeys(r.levels for r in group)))
            for levels in own:
                text = "/".join(levels)
                if text in ids:  # one filter, one subscription: the most permissive handling
                    n = ids[text]
                    self._kept[n - 1] = (text, min(self._kept[n - 1][1], handling))
                else:
                    self._kept.append((text, handling))
                    ids[text] = len(self._kept)
            for route in group:
                levels = next(f for f in own if covers(f, route.levels))
                self.route_subscription[route.index] = ids["/".join(levels)]

    @classmethod
    def from_app(cls, app: App) -> Router:
        """Compile ``[[routes]]``; every route's job must be registered (ConfigError if not)."""
        routes = []
        for i, rc in enumerate(app.config.routes):
            if rc.job not in app.jobs:
                raise ConfigError(
                    f"routes[{i}].job: unknown job {rc.job!r} (use 'module:function' or a "
                    "registered name)",
                    [(f"routes[{i}].job", "unknown job")],
                )
            spec = app.jobs.get(rc.job)
            queue = rc.queue or spec.queue or app.config.queue.default
            routes.append(compile_route(rc, i, job=spec.name, queue=queue))
        return cls(routes, max_payload=app.config.mqtt.max_payload)

    def subscriptions(self, share_group: str = "") -> list[Subscription]:
        """The covering filters, each at the highest QoS of the routes it serves."""
        qos = [0] * len(self._kept)
        for route in self.routes:
            n = self.route_subscription[route.index]
            qos[n - 1] = max(qos[n - 1], route.qos)
        return [
            Subscription(
                topic=topic, qos=q, share_group=share_group, identifier=n, retain_handling=handling
            )
            for n, ((topic, handling), q) in enumerate(zip(self._kept, qos, strict=True), 1)
        ]

    def match(
        self, topic: str, subscriptions: Sequence[int] | None = None
    ) -> list[tuple[Route, dict[str, str]]]:
        """Every route ``topic`` matches, in configuration order, with its named segments.

        ``subscriptions``: the delivery's subscription identifiers, when the broker sent them;
        only routes served by those subscriptions are considered.
        """
        levels = topic.split("/")
        found = []
        for route in self.routes:
            if subscriptions and self.route_subscription[route.index] not in subscriptions:
                continue
            params = route.match(levels)
            if params is not None:
                found.append((route, params))
        return found

    def check_size(self, payload: bytes) -> None:
        if len(payload) > self.max_payload:
            raise PoisonError(
                f"payload of {len(payload)} bytes exceeds mqtt.max_payload ({self.max_payload})"
            )


def message_id(delivery: Delivery) -> str:
    """A stable id for a message: the publisher's ``message_id`` user property when present,
    else a digest of topic, packet id and payload (identical on a redelivery of the message; a
    retained message is the same message whatever packet id brings it: topic and payload)."""
    for key, value in delivery.properties.get("user_property", ()):
        if key in _MESSAGE_ID_PROPS:
            return str(value)
    digest = hashlib.blake2b(digest_size=12)
    digest.update(delivery.topic.encode())
    digest.update(b"retained" if delivery.retain else delivery.mid.to_bytes(2, "big"))
    digest.update(delivery.payload)
    return digest.hexdigest()


def to_message(delivery: Delivery, payload: Any) -> Message:
    return Message(
        topic=delivery.topic,
        payload=payload,
        qos=delivery.qos,
        retain=delivery.retain,
        message_id=message_id(delivery),
        properties=delivery.properties,
    )


def poison_error(reason: str, topic: str) -> str:
    """The failed-registry error of poison input."""
    return f"poison: {reason} (topic {topic})"


def poison_job(
    route: Route, delivery: Delivery, params: Mapping[str, str], *, oversized: bool = False
) -> Envelope:
    """The job envelope recorded in the failed registry for undecodable input: the raw payload
    (text when it is UTF-8, else bytes; only the first :data:`POISON_KEEP` bytes when oversized),
    marked so that nothing ever runs it as if it were decoded (see :func:`redecode`).

    A retained message always makes the same poison job id, so receiving it again replaces its
    failed entry instead of adding one."""
    raw = delivery.payload[:POISON_KEEP] if oversized else delivery.payload
    payload: str | bytes
    try:
        payload = raw.decode("utf-8")
    except UnicodeDecodeError:
        payload = raw
    job = route.make_job(to_message(delivery, payload), params)
    job.kwargs[MESSAGE_ARG][MESSAGE_KEY].update({UNDECODED: route.payload, TRUNCATED: oversized})
    if delivery.retain:
        job = attrs.evolve(job, id=retained_identity(route, delivery).hex())
    return job


def retained_identity(route: Route, delivery: Delivery) -> bytes:
    """The same for every delivery of one retained message to one route (topic and payload)."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (str(route.index).encode(), delivery.topic.encode(), delivery.payload):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


def poison_message(job: Envelope) -> dict[str, Any] | None:
    """The tagged message of a poison job (its payload never decoded), else ``None``."""
    value = job.kwargs.get(MESSAGE_ARG)
    if isinstance(value, dict) and len(value) == 1:
        message = value.get(MESSAGE_KEY)
        if isinstance(message, dict) and UNDECODED in message:
            return message
    return None


def redecode(job: Envelope) -> Envelope:
    """A poison job with its payload decoded again as its route asked; :class:`PoisonError`
    when that still fails, or when the payload was cut short (it can never be decoded)."""
    message = poison_message(job)
    if message is None:
        return job
    kind = message[UNDECODED]
    if message.get(TRUNCATED):
        raise PoisonError(
            f"the payload was over mqtt.max_payload and only its first {POISON_KEEP} bytes were "
            "kept: it cannot be run"
        )
    payload = message["payload"]
    raw = payload.encode("utf-8") if isinstance(payload, str) else payload
    decoded = decode_payload(kind, raw)
    fresh = {k: v for k, v in message.items() if k not in (UNDECODED, TRUNCATED)}
    fresh["payload"] = decoded
    return attrs.evolve(job, kwargs={**job.kwargs, MESSAGE_ARG: {MESSAGE_KEY: fresh}})


def restore_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Job kwargs as the function receives them: a tagged ``message`` becomes a ``Message``.

    Returns ``kwargs`` itself when there is nothing to restore.
    """
    value = kwargs.get(MESSAGE_ARG)
    if isinstance(value, dict) and len(value) == 1 and MESSAGE_KEY in value:
        return {**kwargs, MESSAGE_ARG: Message.from_dict(value[MESSAGE_KEY])}
    return kwargs
