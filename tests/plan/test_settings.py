"""The planner's keys in cloudbalance.yaml reach the planner's models."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudbalance.config import load_config
from cloudbalance.exceptions import ConfigError, PlanError
from cloudbalance.models import Location
from cloudbalance.plan import Egress

TEXT = """\
plan:
  hold: workload
  egress:
    internet: {aws: 0.05}
workloads:
  api:
    data_location: aws:us-east-1
    data_gb: 250
    preference: {gcp:us-central1: 0.4}
"""


def test_gravity_preference_hold_and_egress_are_read(tmp_path: Path) -> None:
    path = tmp_path / "cloudbalance.yaml"
    path.write_text(TEXT)
    settings = load_config(path)
    (api,) = settings.workload_models()
    assert api.data_location == Location("aws", "us-east-1")
    assert api.data_gb == 250.0
    assert api.preference == ((Location("gcp", "us-central1"), 0.4),)
    assert settings.plan.hold == "workload"
    egress = Egress.from_dict(settings.plan.egress)
    assert egress.rate(Location("aws", "us-east-1"), Location("gcp", "x")) == 0.05
    assert egress.rate(Location("gcp", "x"), Location("aws", "y")) == 0.12  # default kept
    assert egress.rate(Location("aws", "a"), Location("aws", "b")) == 0.02
    assert egress.rate(Location("aws", "a"), Location("aws", "a")) == 0.0


def test_a_bad_preference_location_names_its_key(tmp_path: Path) -> None:
    path = tmp_path / "cloudbalance.yaml"
    path.write_text(TEXT.replace("gcp:us-central1: 0.4", "nowhere: 0.4"))
    with pytest.raises(ConfigError, match=r"workloads\.api\.preference"):
        load_config(path)


def test_bad_egress_tables_are_plan_errors() -> None:
    with pytest.raises(PlanError, match="unknown key"):
        Egress.from_dict({"aws": {"internet": 1}})
    with pytest.raises(PlanError, match=">= 0"):
        Egress.from_dict({"internet": {"aws": -1}})
    with pytest.raises(PlanError, match="no internet egress rate"):
        Egress(internet={}).rate(Location("aws", "a"), Location("gcp", "b"))
