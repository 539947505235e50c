"""``mqttq.toml``: attrs classes structured by cattrs, with ``MQTTQ_<SECTION>_<KEY>`` overrides.

Found via ``--config``, then ``MQTTQ_CONFIG``, then ``./mqttq.toml``; with none of those the
defaults apply. Every problem is reported with its key path (``worker.concurrency: must be >= 1``).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from attrs import validators as v

from mqttq.errors import ConfigError
from mqttq.models import Backoff

Mode = Literal["async", "sync", "mixed"]
PayloadKind = Literal["json", "text", "bytes"]

_positive: Any = v.gt(0)


@attrs.frozen(kw_only=True)
class MqttConfig:
    url: str = "mqtt://127.0.0.1:1883"
    client_id: str = "mqttq-listener"
    session_expiry: int = attrs.field(default=3600, validator=v.ge(0))
    share_group: str = ""
    max_payload: int = attrs.field(default=262144, validator=_positive)
    username: str | None = None
    password: str | None = None
    protocol: Literal["3.1.1", "5"] = "5"
    keepalive: int = attrs.field(default=60, validator=_positive)
    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    reconnect_min: float = attrs.field(default=1.0, validator=_positive)
    reconnect_max: float = attrs.field(default=60.0, validator=_positive)
    inflight: int = attrs.field(default=1000, validator=_positive)


@attrs.frozen(kw_only=True)
class QueueConfig:
    url: str = "sqlite:///mqttq.db"
    default: str = attrs.field(default="default", validator=v.min_len(1))
    failed_ttl: float = attrs.field(default=7 * 86400, validator=_positive)


@attrs.frozen(kw_only=True)
class WorkerConfig:
    concurrency: int = attrs.field(default=8, validator=v.ge(1))
    queues: list[str] = attrs.field(factory=lambda: ["default"], validator=v.min_len(1))
    lease: float = attrs.field(default=30.0, validator=_positive)
    shutdown_grace: float = attrs.field(default=30.0, validator=v.ge(0))
    runner: str = "asyncio"
    #: jobs claimed per driver call (default: concurrency)
    batch: int | None = attrs.field(default=None, validator=v.optional(v.ge(1)))
    #: default job timeout in seconds when neither the job nor the route sets one
    timeout: float | None = attrs.field(default=None, validator=v.optional(_positive))
    max_tries: int = attrs.field(default=3, validator=v.ge(1))


@attrs.frozen(kw_only=True)
class JobsConfig:
    register: list[str] = attrs.field(factory=list)
    modules: list[str] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class RouteConfig:
    topic: str = attrs.field(validator=v.min_len(1))
    job: str = attrs.field(validator=v.min_len(1))
    queue: str | None = None
    qos: int = attrs.field(default=1, validator=v.in_((0, 1, 2)))
    mode: Mode = "async"
    payload: PayloadKind = "json"
    max_tries: int | None = attrs.field(default=None, validator=v.optional(v.ge(1)))
    timeout: float | None = attrs.field(default=None, validator=v.optional(_positive))
    delay: float | None = attrs.field(default=None, validator=v.optional(v.ge(0)))
    backoff: Backoff | None = None


@attrs.frozen(kw_only=True)
class Config:
    mqtt: MqttConfig = attrs.field(factory=MqttConfig)
    queue: QueueConfig = attrs.field(factory=QueueConfig)
    worker: WorkerConfig = attrs.field(factory=WorkerConfig)
    jobs: JobsConfig = attrs.field(factory=JobsConfig)
    routes: list[RouteConfig] = attrs.field(factory=list)
    #: the file this came from, if any (not a key)
    source: str | None = attrs.field(default=None, eq=False)


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
_SECTIONS = {"mqtt": MqttConfig, "queue": QueueConfig, "worker": WorkerConfig, "jobs": JobsConfig}


def _path(cattrs_path: str) -> str:
    # cattrs says "$.worker.concurrency" / "$.routes[0].qos"; users write worker.concurrency
    return cattrs_path.removeprefix("$").removeprefix(".") or "(top level)"


def structure(data: Mapping[str, Any], source: str | None = None) -> Config:
    """Build a :class:`Config` from plain data; :class:`ConfigError` lists every problem."""
    try:
        config = _converter.structure(dict(data), Config)
    except cattrs.BaseValidationError as exc:
        problems = []
        for line in cattrs.transform_error(exc, format_exception=_format_exception):
            message, _, where = line.rpartition(" @ ")
            field = re.match(r"(?:Length of )?'(\w+)' (.*)", message)
            if field:  # an attrs validator names its field in the message
                where, message = f"{where}.{field[1]}", field[2]
            problems.append((_path(where), _humanize(message)))
        where_from = f" in {source}" if source else ""
        summary = "; ".join(f"{k}: {m}" for k, m in problems)
        raise ConfigError(f"invalid configuration{where_from}: {summary}", problems) from None
    except ValueError as exc:  # a validator outside cattrs' tracking
        raise ConfigError(f"invalid configuration: {exc}", [("(top level)", str(exc))]) from None
    problems = _check(config)
    if problems:
        summary = "; ".join(f"{k}: {m}" for k, m in problems)
        raise ConfigError(f"invalid configuration: {summary}", problems)
    return attrs.evolve(config, source=source)


def _format_exception(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, KeyError):
        return "required key missing"
    if getattr(type_, "__origin__", None) is Literal:
        return f"must be one of {', '.join(map(str, type_.__args__))}"
    if isinstance(exc, TypeError | ValueError) and exc.args and isinstance(exc.args[0], str):
        text = exc.args[0]
        return text.split(": ")[0] if text.startswith("'") else text
    return cattrs.v.format_exception(exc, type_)


def _humanize(message: str) -> str:
    message = message.replace("extra fields found", "unknown key(s)")
    if message.startswith("invalid value for type, expected "):
        return "expected " + message.removeprefix("invalid value for type, expected ")
    return message


def _check(config: Config) -> list[tuple[str, str]]:
    """Cross-field rules the per-field validators cannot see."""
    problems = []
    if config.worker.timeout is not None and config.worker.timeout >= config.worker.lease:
        problems.append(("worker.timeout", "must be below worker.lease"))
    if config.mqtt.reconnect_min > config.mqtt.reconnect_max:
        problems.append(("mqtt.reconnect_min", "must not exceed mqtt.reconnect_max"))
    for i, route in enumerate(config.routes):
        if route.timeout is not None and route.timeout >= config.worker.lease:
            problems.append((f"routes[{i}].timeout", "must be below worker.lease"))
    return problems


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``MQTTQ_QUEUE_URL=...`` -> ``{"queue": {"url": "..."}}``; lists are comma-separated."""
    out: dict[str, dict[str, Any]] = {}
    for section, cls in _SECTIONS.items():
        prefix = f"MQTTQ_{section.upper()}_"
        fields = {f.name: f for f in attrs.fields(cls)}
        for name, value in env.items():
            if not name.startswith(prefix):
                continue
            key = name.removeprefix(prefix).lower()
            field = fields.get(key)
            if field is None:
                raise ConfigError(
                    f"environment variable {name} names no key: {section}.{key} does not exist",
                    [(f"{section}.{key}", f"unknown key (from {name})")],
                )
            out.setdefault(section, {})[key] = _from_env(str(field.type), value)
    return out


def _from_env(type_name: str, value: str) -> Any:
    """Turn an environment string into the field's type; left as text when it does not parse."""
    if type_name.startswith("list"):
        return [item.strip() for item in value.split(",") if item.strip()]
    for kind in (int, float):
        if kind.__name__ in type_name:
            try:
                return kind(value)
            except ValueError:
                pass
    if type_name.startswith("bool"):
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
    for section, values in _env_overrides(os.environ if env is None else env).items():
        current = data.get(section)
        data[section] = {**(current if isinstance(current, dict) else {}), **values}
    return structure(data, str(file) if file else None)


TEMPLATE = """\
# mqttq configuration. Every key is optional; these are the defaults.
[mqtt]
url = "mqtt://127.0.0.1:1883"      # mqtts:// for TLS; user:password@ allowed
client_id = "mqttq-listener"       # stable: the broker keeps the session across restarts
session_expiry = 3600              # seconds the broker keeps the session
share_group = ""                   # non-empty: subscribe as $share/<group>/<topic>
max_payload = 262144               # bytes; larger messages go to the failed registry

[queue]
url = "sqlite:///mqttq.db"         # redis://host:6379/0, rq+redis://host:6379/0, memory://
default = "default"                # queue name when none is given

[worker]
concurrency = 8
queues = ["default"]               # claimed in this order
lease = 30                         # seconds; heartbeats renew it
shutdown_grace = 30
runner = "asyncio"                 # or "process"

[jobs]
register = []                      # "module:function" callables allowed to run
modules = []                       # modules whose @mqttq.job functions are registered

# [[routes]]
# topic = "sensors/{device_id}/temperature"
# job = "myapp.jobs:record_temperature"
# queue = "telemetry"
# qos = 1
# mode = "async"                   # async | sync | mixed
# payload = "json"                 # json | text | bytes
"""
