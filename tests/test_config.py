from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from cloudbalance.config import Settings, example_config, find_config, load_config
from cloudbalance.exceptions import ConfigError
from cloudbalance.models import Location


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cloudbalance.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_example_is_valid(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, example_config()))
    assert settings.providers["focus"] == {"paths": ["exports/"]}
    checkout = settings.workloads["checkout"]
    assert checkout.allowed[0] == Location("aws", "us-east-1")
    assert checkout.match.tag_values == ("checkout", "checkout-api")
    assert settings.guardrails.freeze[0].start == date(2026, 12, 20)
    assert settings.plan.quotas[0].vcpus == 512.0
    assert isinstance(settings.plan.quotas[0].location, Location)  # the planner's Quota, no twin


def test_an_empty_file_is_refused_and_a_version_alone_gives_the_defaults(tmp_path: Path) -> None:
    for empty in ("", "\n  \n", "# only a comment\n"):
        with pytest.raises(ConfigError, match="is empty"):
            load_config(write(tmp_path, empty))
    settings = load_config(write(tmp_path, "version: 1\n"))
    assert settings.git.mode == "dry-run"
    assert settings.store_path == tmp_path.resolve() / ".cloudbalance" / "store.duckdb"


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    sub = tmp_path / "ops"
    sub.mkdir()
    settings = load_config(write(sub, "store: {path: data/cb.duckdb}\n"))
    assert settings.store_path == sub.resolve() / "data" / "cb.duckdb"


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        ("version: 1\nstorage: {}\n", 2, "storage", "unknown key"),
        (
            "workloads:\n  web:\n    replica: {vcpu: 2}\n",
            3,
            "workloads.web.replica.vcpu",
            "unknown key",
        ),
        ("forecast:\n  horizon: soon\n", 2, "forecast.horizon", "expected a whole number"),
        ("plan:\n  quantile: high\n", 2, "plan.quantile", "expected a number"),
        ("git:\n  mode: yolo\n", 2, "git.mode", "expected one of"),
        (
            "workloads:\n  web:\n    spot: 'yes'\n",
            3,
            "workloads.web.spot",
            "expected true or false",
        ),
        (
            "workloads:\n  web:\n    allowed: [us-east-1]\n",
            3,
            "workloads.web.allowed[0]",
            "cloud:region",
        ),
        ("workloads:\n  web:\n    max_share: 1.5\n", 3, "workloads.web.max_share", "(0, 1]"),
        (
            "guardrails:\n  freeze:\n    - {start: 2026-12-20, end: someday}\n",
            3,
            "guardrails.freeze[0].end",
            "expected a date",
        ),
        ("providers: [aws]\n", 1, "providers", "expected a mapping"),
        ("forecast:\n  interval: 1.2\n", 2, "forecast.interval", "(0, 1)"),
        ("plan:\n  hold_quantile: 0.3\n", 2, "plan.hold_quantile", "[0.5, 1)"),
    ],
)
def test_errors_name_file_line_and_key(
    tmp_path: Path, text: str, line: int, key: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    err = excinfo.value
    assert err.line == line, str(err)
    assert err.key == key
    assert message in str(err)
    assert str(err).startswith(f"{path.resolve()}:{line}: ")


def test_yaml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nworkloads:\n  web: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as excinfo:
        load_config(path)
    assert excinfo.value.line is not None


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_no_config_anywhere_says_how_to_create_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config() is None
    with pytest.raises(ConfigError, match="cloudbalance config init"):
        load_config()


def test_config_is_found_in_a_parent_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "workload_tag: app\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert load_config().workload_tag == "app"


def test_provider_options_are_plain_values(tmp_path: Path) -> None:
    settings = load_config(write(tmp_path, "providers:\n  aws: {profile: x, tags: [a, b]}\n"))
    assert settings.providers == {"aws": {"profile": "x", "tags": ["a", "b"]}}
    assert type(settings.providers["aws"]["tags"]) is list


def test_settings_built_in_code_need_no_file() -> None:
    settings = Settings()
    assert settings.path is None
    assert settings.workload_models() == []


def test_data_gravity_keys_become_workload_fields_and_bad_locations_are_refused(
    tmp_path: Path,
) -> None:
    settings = load_config(
        write(
            tmp_path,
            "workloads:\n  web:\n    data_location: aws:us-east-1\n    data_gb: 5\n"
            "    preference: {gcp:us-central1: 0.5}\n",
        )
    )
    web = settings.workloads["web"]
    assert web.data_location == Location("aws", "us-east-1")
    assert web.preference == ((Location("gcp", "us-central1"), 0.5),)
    with pytest.raises(ConfigError) as caught:
        load_config(
            write(
                tmp_path,
                "workloads:\n  web:\n    data_location: mars:x\n    data_gb: -1\n"
                "    preference: {venus:y: .nan}\n",
            )
        )
    keys = [p.key for p in caught.value.problems]
    assert keys == [
        "workloads.web.data_location",
        "workloads.web.data_gb",
        "workloads.web.preference.venus:y",
    ]
