"""``mqttq.toml``: attrs classes structured by cattrs, with ``MQTTQ_<SECTION>_<KEY>`` overrides.

Found via ``--config``, then ``MQTTQ_CONFIG``, then ``./mqttq.toml``; with none of those the
defaults apply. Every problem is reported at once, each with its key path
(``worker.concurrency: must be >= 1``), and a value from the environment names its variable.

Every key is declared once, here, with its type, default and a one-line description
(:func:`key`); ``mqttq config init`` and the configuration reference are generated from these
classes (:func:`template`, :func:`iter_keys`).
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
import orjson
from attrs import validators as v

from mqttq.errors import ConfigError
from mqttq.models import Backoff

Mode = Literal["async", "sync", "mixed"]
PayloadKind = Literal["json", "text", "bytes"]
Retained = Literal["new", "always", "ignore"]

_positive: Any = v.gt(0)


def key(
    default: Any = attrs.NOTHING,
    doc: str = "",
    *,
    validator: Any = None,
    factory: Any = None,
    example: Any = None,
) -> Any:
    """A configuration key: its default, a one-line ``doc`` and, for keys without a default
    value, an ``example`` shown (commented out) by ``mqttq config init``."""
    meta = {"doc": doc, "example": example}
    if factory is not None:
        return attrs.field(factory=factory, validator=validator, metadata=meta)
    return attrs.field(default=default, validator=validator, metadata=meta)


@attrs.frozen(kw_only=True)
class MqttConfig:
    """The MQTT broker: how the listener (and the device client) connect."""

    url: str = key("mqtt://127.0.0.1:1883", "broker URL; mqtts:// for TLS; user:password@ allowed")
    client_id: str = key(
        "mqttq-listener",
        "stable client id: the broker keeps the session across restarts (distinct per listener)",
    )
    session_expiry: int = key(
        3600, "seconds the broker keeps the session while away (MQTT 5)", validator=v.ge(0)
    )
    share_group: str = key("", "non-empty: subscribe as $share/<group>/<topic> to split the load")
    max_payload: int = key(
        262144, "bytes; larger messages go to the failed registry", validator=_positive
    )
    username: str | None = key(None, "user name (overrides the URL's)", example="mqttq")
    password: str | None = key(None, "password (overrides the URL's)", example="secret")
    protocol: Literal["3.1.1", "5"] = key("5", "MQTT protocol version: 5 or 3.1.1")
    keepalive: int = key(60, "seconds between keep-alive pings", validator=_positive)
    ca_certs: str | None = key(
        None, "CA bundle that signed the broker's certificate", example="/etc/mqttq/ca.pem"
    )
    certfile: str | None = key(
        None, "client certificate, for brokers that require one", example="/etc/mqttq/client.crt"
    )
    keyfile: str | None = key(
        None, "private key of the client certificate", example="/etc/mqttq/client.key"
    )
    reconnect_min: float = key(1.0, "first reconnect delay, seconds", validator=_positive)
    reconnect_max: float = key(60.0, "longest reconnect delay, seconds", validator=_positive)
    inflight: int = key(
        1000, "messages received and not yet acked before reading pauses", validator=_positive
    )


@attrs.frozen(kw_only=True)
class QueueConfig:
    """The queue: where jobs wait."""

    url: str = key(
        "sqlite:///mqttq.db", "queue driver URL: sqlite:///path.db, redis://host:6379/0, memory://"
    )
    default: str = key("default", "queue name when none is given", validator=v.min_len(1))
    failed_ttl: float = key(
        7 * 86400, "seconds a failed job stays in the failed registry", validator=_positive
    )


@attrs.frozen(kw_only=True)
class WorkerConfig:
    """Workers: how jobs are claimed and run."""

    concurrency: int = key(8, "jobs run at once per worker process", validator=v.ge(1))
    count: int = key(
        1,
        "worker processes `mqttq worker` runs (push-only drivers: their workers)",
        validator=v.ge(1),
    )
    queues: list[str] = key(
        doc="queues to claim from, in priority order",
        factory=lambda: ["default"],
        validator=v.min_len(1),
    )
    lease: float = key(
        30.0, "seconds a claimed job stays reserved; heartbeats renew it", validator=_positive
    )
    shutdown_grace: float = key(
        30.0, "seconds running jobs get to finish after SIGTERM", validator=v.ge(0)
    )
    runner: str = key("asyncio", "job runner: asyncio (coroutines, threads) or process")
    prefetch: int = key(
        256,
        "most jobs claimed ahead of free slots (fewer for slow jobs; 0: never)",
        validator=v.ge(0),
    )
    batch: int | None = key(
        None,
        "most jobs per claim (default: concurrency + prefetch)",
        validator=v.optional(v.ge(1)),
        example=64,
    )
    timeout: float | None = key(
        None,
        "default job timeout, seconds (below lease), when neither job nor route sets one",
        validator=v.optional(_positive),
        example=20,
    )
    max_tries: int = key(3, "default tries of a job before it fails for good", validator=v.ge(1))


@attrs.frozen(kw_only=True)
class JobsConfig:
    """Which code may run: a queued job's name is only looked up among these."""

    register: list[str] = key(
        doc='"module:function" callables allowed to run',
        factory=list,
        example=["myapp.jobs:send_email"],
    )
    modules: list[str] = key(
        doc="modules whose @mqttq.job functions are registered",
        factory=list,
        example=["myapp.jobs"],
    )


@attrs.frozen(kw_only=True)
class RouteConfig:
    """One route: the MQTT messages on its topic become jobs (one [[routes]] table each)."""

    topic: str = key(
        doc="topic filter; {name} segments become job arguments, + and # work as in MQTT",
        validator=v.min_len(1),
        example="sensors/{device_id}/temperature",
    )
    job: str = key(
        doc='job to run: "module:function" or a registered name',
        validator=v.min_len(1),
        example="myapp.jobs:record_temperature",
    )
    queue: str | None = key(
        None, "queue of the jobs (default: the job's, then queue.default)", example="telemetry"
    )
    qos: int = key(1, "subscription QoS: 0, 1 or 2", validator=v.in_((0, 1, 2)))
    mode: Mode = key("async", "async (queue), sync (run inline, then ack) or mixed (QoS 2 sync)")
    payload: PayloadKind = key("json", "how the payload is decoded: json, text or bytes")
    retained: Retained = key(
        "new", "retained messages: new (only on a new subscription), always or ignore"
    )
    max_tries: int | None = key(
        None, "tries before the job fails for good", validator=v.optional(v.ge(1)), example=5
    )
    timeout: float | None = key(
        None, "job timeout, seconds", validator=v.optional(_positive), example=60
    )
    delay: float | None = key(
        None, "seconds before the job may run", validator=v.optional(v.ge(0)), example=0
    )
    backoff: Backoff | None = key(
        None,
        "retry backoff: {base, factor, max, jitter}",
        example={"base": 1.0, "factor": 2.0, "max": 300.0, "jitter": 0.1},
    )


CatchUp = Literal["one", "none"]


@attrs.frozen(kw_only=True)
class ScheduleConfig:
    """One periodic schedule, fired once per slot across all workers ([[schedules]] tables).

    Its job is pushed once per slot, whichever worker gets there first."""

    job: str = key(
        doc='job to push: "module:function" or a registered name',
        validator=v.min_len(1),
        example="myapp.jobs:send_report",
    )
    cron: str | None = key(
        None, 'cron expression (5 fields; a 6th gives seconds): "*/5 * * * *"', example="0 6 * * *"
    )
    every: float | None = key(
        None,
        "or: seconds between slots (slots are multiples of it since the UNIX epoch)",
        validator=v.optional(_positive),
        example=30,
    )
    name: str = key("", "unique name of the schedule (default: from job and timing)")
    kwargs: dict[str, Any] = key(
        doc="keyword arguments of the job (a class job's data)", factory=dict, example={}
    )
    queue: str | None = key(
        None, "queue of the jobs (default: the job's, then queue.default)", example="reports"
    )
    timezone: str | None = key(
        None, "IANA time zone of a cron expression (default: UTC)", example="Europe/Paris"
    )
    catch_up: CatchUp = key(
        "one", "slots missed while no worker ran: one (fire the latest once) or none (skip)"
    )

    @property
    def id(self) -> str:
        """The schedule's name: ``name``, else made from its job, timing and arguments (so an
        edited schedule is a new one)."""
        if self.name:
            return self.name
        timing = f"cron {self.cron}" if self.cron is not None else f"every {self.every or 0:g}s"
        tz = f" {self.timezone}" if self.timezone else ""
        args = f" {orjson.dumps(self.kwargs, option=orjson.OPT_SORT_KEYS).decode()}"
        return f"{self.job} {timing}{tz}" + (args if self.kwargs else "")


Overflow = Literal["drop_oldest", "drop_newest", "reject"]


@attrs.frozen(kw_only=True)
class DeviceConfig:
    """One device the device client sends commands to (one [[devices.items]] table each)."""

    adapter: str = key(doc="its device family (a registered adapter)", example="navien")
    id: str = key(doc="its id: no /, +, # or NUL, at most 64 bytes", example="04786332fca0")
    name: str = key("", "a name for people (shown by mqttq devices queue)", example="garage")
    options: dict[str, Any] = key(
        doc="options of the device for its adapter",
        factory=dict,
        example={"additional_value": "5322"},
    )


@attrs.frozen(kw_only=True)
class DevicesConfig:
    """The device client: how commands reach devices, in order, across outages."""

    enable_command_queue: bool = key(
        True, "queue commands while disconnected (off: sending then is an error)"
    )
    max_queued_commands: int = key(100, "commands waiting per device, at most", validator=v.ge(1))
    max_queued_command_age: float | None = key(
        300.0,
        "seconds a command may wait before it expires (0, or None from Python: never)",
        validator=v.optional(v.ge(0)),
    )
    overflow: Overflow = key(
        "drop_oldest", "when a device's queue is full: drop_oldest, drop_newest or reject"
    )
    store: str = key(
        "memory://", "where waiting commands are kept: memory:// or sqlite:///commands.db"
    )
    client_id: str = key(
        "",
        "MQTT client id of the device client (default: mqttq-devices-<random>; with a durable "
        "store, the same for that store on this host)",
    )
    pacing: float | None = key(
        None,
        "least seconds between two controls to one device (default: the adapter's; 0: none)",
        validator=v.optional(v.ge(0)),
        example=1.0,
    )
    ack_timeout: float | None = key(
        None,
        "seconds to wait for a device's acknowledgement before sending again (default: the "
        "adapter's)",
        validator=v.optional(_positive),
        example=10.0,
    )
    in_flight: int | None = key(
        None,
        "commands sent and not yet acknowledged per device (default: the adapter's)",
        validator=v.optional(v.ge(1)),
        example=1,
    )
    max_sends: int = key(
        5, "sends of one command without an acknowledgement before it expires", validator=v.ge(1)
    )
    coalesce: list[str] = key(
        doc="command kinds where a newer command replaces a waiting one (last write wins)",
        factory=list,
        example=["dhw-temperature"],
    )
    items: list[DeviceConfig] = key(doc="the devices", factory=list)


@attrs.frozen(kw_only=True)
class Config:
    mqtt: MqttConfig = attrs.field(factory=MqttConfig)
    queue: QueueConfig = attrs.field(factory=QueueConfig)
    worker: WorkerConfig = attrs.field(factory=WorkerConfig)
    jobs: JobsConfig = attrs.field(factory=JobsConfig)
    routes: list[RouteConfig] = attrs.field(factory=list)
    devices: DevicesConfig = attrs.field(factory=DevicesConfig)
    schedules: list[ScheduleConfig] = attrs.field(factory=list)
    #: the file this came from, if any (not a key)
    source: str | None = attrs.field(default=None, eq=False, metadata={"internal": True})


for _cls in (
    MqttConfig,
    QueueConfig,
    WorkerConfig,
    JobsConfig,
    RouteConfig,
    DeviceConfig,
    DevicesConfig,
    ScheduleConfig,
    Backoff,
    Config,
):
    attrs.resolve_types(_cls)

_converter = cattrs.Converter(forbid_extra_keys=True)


def _strict(kind: type, *accepted: type) -> None:
    def hook(value: Any, _: type) -> Any:
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, accepted):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
        return kind(value)

    _converter.register_structure_hook(kind, hook)


_strict(str, str)
_strict(int, int)
_strict(float, int, float)
_strict(bool, bool)

Problems = list[tuple[str, str]]


# -- the keys, as data -------------------------------------------------------------------------


def sections() -> dict[str, Any]:
    """Top-level keys of ``mqttq.toml`` and their types (a list of tables for ``routes``)."""
    return {f.name: f.type for f in attrs.fields(Config) if not f.metadata.get("internal")}


def _attrs_class(tp: Any) -> tuple[type | None, bool]:
    """(the attrs class inside ``tp``, whether ``tp`` is a list of it)."""
    if attrs.has(tp):
        return tp, False
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin is list and args and attrs.has(args[0]):
        return args[0], True
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if attrs.has(arg):
                return arg, False
    return None, False


def type_name(tp: Any) -> str:
    """A key's type as the reference shows it: ``int``, ``str | None``, ``"a" | "b"``."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(f'"{a}"' for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list[{type_name(typing.get_args(tp)[0])}]"
    if tp is type(None):
        return "None"
    if attrs.has(tp):
        return "table"
    return getattr(tp, "__name__", str(tp))


@attrs.frozen(kw_only=True)
class KeyInfo:
    """One configuration key, for the reference and the template."""

    path: str  #: ``worker.concurrency``, ``routes[].topic``
    type: str
    default: Any  #: attrs.NOTHING when required
    doc: str
    env: str | None  #: its ``MQTTQ_*`` variable (keys of a list of tables have none)
    example: Any = None


def _default(field: attrs.Attribute[Any]) -> Any:
    if isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
        return field.default.factory()  # type: ignore[union-attr]
    return field.default


def _tables() -> Iterator[tuple[str, type, bool]]:
    """Every table of ``mqttq.toml``: (dotted name, class, whether it is a list of tables),
    a list of tables nested in a section (``devices.items``) right after its section."""
    for section, tp in sections().items():
        cls, many = _attrs_class(tp)
        assert cls is not None
        yield section, cls, many
        for field in attrs.fields(cls):
            inner, inner_many = _attrs_class(field.type)
            if inner is not None and inner_many:
                yield f"{section}.{field.name}", inner, True


def _nested_list(field: attrs.Attribute[Any]) -> bool:
    inner, many = _attrs_class(field.type)
    return inner is not None and many


def iter_keys() -> Iterator[KeyInfo]:
    """Every key of ``mqttq.toml``, table by table, in declaration order."""
    for table, cls, many in _tables():
        prefix = f"{table}[]" if many else table
        for field in attrs.fields(cls):
            if _nested_list(field):
                continue  # its keys follow as a table of their own
            in_env = not many and "." not in table
            yield KeyInfo(
                path=f"{prefix}.{field.name}",
                type=type_name(field.type),
                default=_default(field),
                doc=field.metadata.get("doc", ""),
                env=f"MQTTQ_{table.upper()}_{field.name.upper()}" if in_env else None,
                example=field.metadata.get("example"),
            )


# -- validation: every problem at once --------------------------------------------------------


def _humanize(exc: BaseException, tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return f"must be one of {', '.join(map(str, typing.get_args(tp)))}"
    if isinstance(exc, cattrs.BaseValidationError):
        inner = exc.exceptions[0] if exc.exceptions else exc
        return _humanize(inner, None)
    text = str(exc)
    # attrs validators say "'concurrency' must be >= 1: 0"; cattrs "expected int, got ..."
    match = re.match(r"(?:Length of )?'\w+' (must .*?)(?:: (.*))?$", text)
    if match:
        return f"{match[1]} (got {match[2]})" if match[2] else match[1]
    return text.removeprefix("invalid value for type, ")


def _check_table(cls: type, data: Any, where: str) -> Problems:
    """Problems of one table against its attrs class, without stopping at the first."""
    if not isinstance(data, dict):
        return [(where or "(top level)", f"expected a table, got {type(data).__name__}")]
    fields = {f.name: f for f in attrs.fields(cls) if not f.metadata.get("internal")}
    problems: Problems = []
    unknown = sorted(set(data) - set(fields))
    if unknown:
        problems.append((where or "(top level)", f"unknown key(s) ({', '.join(unknown)})"))
    for name, field in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in data:
            if field.default is attrs.NOTHING:
                problems.append((path, "required key missing"))
            continue
        value = data[name]
        nested, many = _attrs_class(field.type)
        if nested is not None and (value is not None or many):
            if many:
                if not isinstance(value, list):
                    problems.append((path, "expected a list of tables ([[...]])"))
                    continue
                for i, item in enumerate(value):
                    problems += _check_table(nested, item, f"{path}[{i}]")
            else:
                problems += _check_table(nested, value, path)
            continue
        try:
            converted = _converter.structure(value, field.type)
        except Exception as exc:
            problems.append((path, _humanize(exc, field.type)))
            continue
        if field.validator is not None:
            try:
                field.validator(None, field, converted)
            except (TypeError, ValueError) as exc:
                problems.append((path, _humanize(exc, field.type)))
    return problems


def _cross_checks(config: Config) -> Problems:
    """Rules between keys that no single key can check."""
    problems = []
    if config.worker.timeout is not None and config.worker.timeout >= config.worker.lease:
        problems.append(("worker.timeout", "must be below worker.lease"))
    if config.mqtt.reconnect_min > config.mqtt.reconnect_max:
        problems.append(("mqtt.reconnect_min", "must not exceed mqtt.reconnect_max"))
    for i, route in enumerate(config.routes):
        if route.timeout is not None and route.timeout >= config.worker.lease:
            problems.append((f"routes[{i}].timeout", "must be below worker.lease"))
    return problems + _schedule_checks(config.schedules)


def _schedule_checks(schedules: list[ScheduleConfig]) -> Problems:
    """What a schedule table must say (without importing croniter: cron syntax and the job are
    checked by ``mqttq config check`` and at worker start-up)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    problems: Problems = []
    seen: dict[str, int] = {}
    for i, schedule in enumerate(schedules):
        where = f"schedules[{i}]"
        if (schedule.cron is None) == (schedule.every is None):
            problems.append((where, "give exactly one of cron and every"))
        if schedule.timezone is not None:
            if schedule.cron is None:
                problems.append((f"{where}.timezone", "applies to cron schedules only"))
            try:
                ZoneInfo(schedule.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                problems.append((f"{where}.timezone", f"unknown time zone {schedule.timezone!r}"))
        if schedule.id in seen:
            problems.append((f"{where}.name", f"same schedule as schedules[{seen[schedule.id]}]"))
        seen.setdefault(schedule.id, i)
    return problems


def structure(
    data: Mapping[str, Any],
    source: str | None = None,
    *,
    from_env: Mapping[str, str] | None = None,
) -> Config:
    """Build a :class:`Config` from plain data; :class:`ConfigError` lists every problem.

    ``from_env`` maps key paths to the environment variables that set them, so a bad value
    is blamed on its variable, not on the file.
    """
    problems = _check_table(Config, dict(data), "")
    partial = None
    if problems:
        # The sections without a problem, the others at their defaults: what `config check`
        # goes on checking, so one typo does not hide the rest.
        broken = {section_of(key) for key, _ in problems}
        sound = {k: v for k, v in data.items() if k in sections() and k not in broken}
        if not _check_table(Config, sound, ""):
            partial = attrs.evolve(_converter.structure(sound, Config), source=source)
            problems += [p for p in _cross_checks(partial) if section_of(p[0]) not in broken]
    else:
        partial = attrs.evolve(_converter.structure(dict(data), Config), source=source)
        problems = _cross_checks(partial)
    if problems:
        env = from_env or {}
        problems = [(k, f"{m} (from {env[k]})" if k in env else m) for k, m in problems]
        where = f" in {source}" if source and any(k not in env for k, _ in problems) else ""
        summary = "; ".join(f"{k}: {m}" for k, m in problems)
        raise ConfigError(f"invalid configuration{where}: {summary}", problems, partial)
    assert partial is not None
    return partial


def section_of(key: str) -> str:
    """The top-level section of a problem's key path: ``routes[0].qos`` -> ``routes``."""
    return re.split(r"[.\[]", key, maxsplit=1)[0]


# -- files and the environment ----------------------------------------------------------------


def _env_overrides(env: Mapping[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """``MQTTQ_QUEUE_URL=...`` -> ``{"queue": {"url": "..."}}`` (lists are comma-separated),
    and which variable set each key path."""
    out: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for section, tp in sections().items():
        cls, many = _attrs_class(tp)
        if cls is None or many:
            continue
        prefix = f"MQTTQ_{section.upper()}_"
        fields = {f.name: f for f in attrs.fields(cls)}
        for name, value in env.items():
            if not name.startswith(prefix):
                continue
            field_name = name.removeprefix(prefix).lower()
            field = fields.get(field_name)
            path = f"{section}.{field_name}"
            if field is None:
                raise ConfigError(
                    f"environment variable {name} names no key: {path} does not exist",
                    [(path, f"unknown key (from {name})")],
                )
            out.setdefault(section, {})[field_name] = _from_env(field.type, value)
            sources[path] = name
    return out, sources


def _from_env(tp: Any, value: str) -> Any:
    """An environment string as the key's type; left as text when it does not parse (the
    check then names the variable)."""
    kinds = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else ()
    kinds = kinds or (tp,)
    if any(typing.get_origin(k) is list for k in kinds):
        return [item.strip() for item in value.split(",") if item.strip()]
    for kind in (int, float):
        if kind in kinds:
            try:
                return kind(value)
            except ValueError:
                pass
    if bool in kinds:
        return {"1": True, "true": True, "0": False, "false": False}.get(value.lower(), value)
    return value


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """``--config``, then ``MQTTQ_CONFIG``, then ``./mqttq.toml``; ``None`` when there is none."""
    if explicit:
        return Path(explicit)
    if os.environ.get("MQTTQ_CONFIG"):
        return Path(os.environ["MQTTQ_CONFIG"])
    local = Path("mqttq.toml")
    return local if local.exists() else None


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read the configuration file (if any) and apply environment overrides."""
    file = find_config_file(path)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {file} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {file}: {exc.strerror}") from None
    overrides, sources = _env_overrides(os.environ if env is None else env)
    for section, values in overrides.items():
        current = data.get(section)
        data[section] = {**(current if isinstance(current, dict) else {}), **values}
    return structure(data, str(file) if file else None, from_env=sources)


# -- the template of `mqttq config init` ------------------------------------------------------


def toml_value(value: Any) -> str:
    """``value`` written as TOML (strings, numbers, booleans, lists and inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in value.items()) + " }"
    if attrs.has(type(value)):
        return toml_value(attrs.asdict(value))
    raise TypeError(f"cannot write {value!r} as TOML")


def _lines(name: str, value: Any, doc: str, commented: bool) -> list[str]:
    return [f"# {doc}"] * bool(doc) + [f"{'# ' if commented else ''}{name} = {toml_value(value)}"]


def template() -> str:
    """A commented ``mqttq.toml`` with every key: its default, or a commented-out example."""
    out = ["# mqttq configuration. Every key is optional; the values shown are the defaults."]
    for table, cls, many in _tables():
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        out += ["", f"# === {doc}", f"# [[{table}]]" if many else f"[{table}]"]
        for field in attrs.fields(cls):
            if _nested_list(field):
                continue
            default = _default(field)
            example = field.metadata.get("example")
            missing = default is attrs.NOTHING or default is None
            value = example if missing or many else default
            if value is None or value is attrs.NOTHING:
                value = default
            out += _lines(field.name, value, field.metadata.get("doc", ""), missing or many)
    return "\n".join(out) + "\n"
