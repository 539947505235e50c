"""mqttq.toml: defaults, key paths in errors, environment overrides, file discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqttq import ConfigError
from mqttq.config import Config, load_config, structure, template


def problems(data: dict[str, object]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        structure(data)
    return info.value.problems


def test_defaults_match_the_documented_contract() -> None:
    config = structure({})
    assert config.queue.url == "sqlite:///mqttq.db"
    assert config.queue.default == "default"
    assert (config.worker.concurrency, config.worker.lease) == (8, 30)
    assert config.worker.queues == ["default"]
    assert config.mqtt.max_payload == 262144


def test_template_is_valid_and_equals_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "mqttq.toml"
    path.write_text(template())
    assert load_config(path, env={}) == Config()


@pytest.mark.parametrize(
    ("data", "path", "message"),
    [
        ({"worker": {"concurrency": 0}}, "worker.concurrency", "must be >= 1"),
        ({"worker": {"concurrency": "8"}}, "worker.concurrency", "expected int"),
        ({"worker": {"colour": "red"}}, "worker", "unknown key(s) (colour)"),
        ({"mqtt": {"url": 1883}}, "mqtt.url", "expected str"),
        ({"routes": [{"topic": "a", "job": "m:f", "qos": 3}]}, "routes[0].qos", "must be in"),
        ({"routes": [{"topic": "a", "job": "m:f", "mode": "x"}]}, "routes[0].mode", "must be one"),
        ({"routes": [{"topic": "a"}]}, "routes[0].job", "required key missing"),
        ({"worker": {"timeout": 30, "lease": 30}}, "worker.timeout", "below worker.lease"),
    ],
)
def test_every_problem_names_its_key_path(data: dict[str, object], path: str, message: str) -> None:
    found = problems(data)
    assert any(p == path and message in m for p, m in found), found


def test_several_problems_are_all_reported() -> None:
    found = problems({"routes": [{"topic": "a", "job": "m:f", "qos": 9}, {"topic": "b"}]})
    assert {p for p, _ in found} == {"routes[0].qos", "routes[1].job"}


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mqttq.toml"
    path.write_text('[queue]\nurl = "sqlite:///a.db"\n[worker]\nconcurrency = 2\n')
    env = {
        "MQTTQ_QUEUE_URL": "memory://",
        "MQTTQ_WORKER_QUEUES": "hi, lo",
        "MQTTQ_WORKER_LEASE": "9",
    }
    config = load_config(path, env=env)
    assert config.queue.url == "memory://"
    assert config.worker.queues == ["hi", "lo"]
    assert (config.worker.lease, config.worker.concurrency) == (9.0, 2)


def test_unknown_environment_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match="MQTTQ_WORKER_CONCURENCY"):
        load_config(None, env={"MQTTQ_WORKER_CONCURENCY": "3"})


def test_bad_environment_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"worker\.concurrency: expected int"):
        load_config(None, env={"MQTTQ_WORKER_CONCURRENCY": "many"})


def test_file_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mqttq.toml").write_text("[worker]\nconcurrency = 1\n")
    (tmp_path / "env.toml").write_text("[worker]\nconcurrency = 2\n")
    (tmp_path / "flag.toml").write_text("[worker]\nconcurrency = 3\n")
    monkeypatch.delenv("MQTTQ_CONFIG", raising=False)
    assert load_config().worker.concurrency == 1
    monkeypatch.setenv("MQTTQ_CONFIG", str(tmp_path / "env.toml"))
    assert load_config().worker.concurrency == 2
    assert load_config(tmp_path / "flag.toml").worker.concurrency == 3


def test_missing_and_malformed_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[worker\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, env={})


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        {
            "worker": {"concurrency": "x", "lease": -1, "bogus": 1},
            "mqtt": {"keepalive": "a", "nope": 2},
            "routes": [{"topic": "a", "job": "b", "qos": 5, "zz": 1}, {"topic": "b"}],
            "extra": {},
        }
    )
    assert {p for p, _ in found} == {
        "worker.concurrency",
        "worker.lease",
        "worker",
        "mqtt.keepalive",
        "mqtt",
        "routes[0].qos",
        "routes[0]",
        "routes[1].job",
        "(top level)",
    }


def test_a_bad_environment_value_is_blamed_on_its_variable(tmp_path: Path) -> None:
    path = tmp_path / "mqttq.toml"
    path.write_text("[worker]\nlease = 10\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"MQTTQ_WORKER_CONCURRENCY": "many"})
    message = str(info.value)
    assert "worker.concurrency: expected int" in message
    assert "(from MQTTQ_WORKER_CONCURRENCY)" in message
    assert str(path) not in message  # the file is fine


def test_the_template_holds_every_key() -> None:
    from mqttq.config import iter_keys

    text = template()
    for info in iter_keys():
        name = info.path.rsplit(".", 1)[1]
        assert f"\n{name} = " in text or f"\n# {name} = " in text, info.path
        assert info.doc, f"{info.path} has no description"


def test_a_command_age_of_none_or_0_means_commands_never_expire() -> None:
    """``max_queued_command_age``: None (from Python) and 0 (from TOML) both mean never."""
    from types import SimpleNamespace
    from typing import Any

    from mqttq.app import App
    from mqttq.devices import DeviceClient

    adapter: Any = SimpleNamespace(pacing=1.0, ack_timeout=5.0, in_flight=1)
    for age in (None, 0):
        config = structure({"devices": {"max_queued_command_age": age}})
        assert config.devices.max_queued_command_age == age
        assert DeviceClient(App(config))._limits(adapter).max_age is None
    default = DeviceClient(App(structure({})))._limits(adapter)
    assert default.max_age == 300.0
