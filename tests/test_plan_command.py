from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from cloudbalance.cli import main
from cloudbalance.commands.plan import read_current, read_workloads
from cloudbalance.exceptions import ConfigError, SchemaError
from cloudbalance.models import Location, Plan

START = datetime(2026, 11, 23)


def write_inputs(folder: Path, *, quota: float | None = None) -> dict[str, Path]:
    rows = []
    for cloud, region, daily in (("aws", "us-east-1", 10.0), ("Google Cloud", "us-central1", 8.0)):
        for t in range(3):
            rows.append(
                {
                    "ProviderName": cloud,
                    "RegionId": region,
                    "SkuId": "std-2",
                    "vcpus": 2,
                    "memory_gib": 8,
                    "unit_price": daily / 24,
                    "price_kind": "on_demand",
                    "PricingUnit": "Hours",
                    "BillingCurrency": "USD",
                    "observed_at": (START + timedelta(days=t)).isoformat(),
                }
            )
    prices = folder / "prices.csv"
    pd.DataFrame(rows).to_csv(prices, index=False)
    demand = folder / "demand.csv"
    pd.DataFrame(
        {
            "unique_id": ["api"] * 3,
            "ds": [(START + timedelta(days=t)).isoformat() for t in range(3)],
            "yhat": [4.0, 4.0, 4.0],
            "yhat_lower": [3.8, 3.8, 3.8],
            "yhat_upper": [4.2, 4.2, 4.2],
            "model": ["prophet"] * 3,
            "interval": [0.8] * 3,
        }
    ).to_csv(demand, index=False)
    current = folder / "current.csv"
    current.write_text("workload,location,replicas\napi,aws:us-east-1,5\n")
    spec: dict[str, object] = {
        "workloads": {"api": {"replica": {"vcpus": 2, "memory_gib": 8}, "move_cost": 0.5}}
    }
    if quota is not None:
        spec["quotas"] = [{"location": "gcp:us-central1", "vcpus": quota}]
    workloads = folder / "workloads.json"
    workloads.write_text(json.dumps(spec))
    return {"prices": prices, "demand": demand, "current": current, "workloads": workloads}


def test_plan_command_writes_the_plan_json_and_prints_the_moves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_inputs(tmp_path)
    out = tmp_path / "plans" / "plan.json"
    code = main(
        [
            "plan",
            "--demand", str(files["demand"]),
            "--prices", str(files["prices"]),
            "--current", str(files["current"]),
            "--workloads", str(files["workloads"]),
            "--quantile", "0.9",
            "--output", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    stored = Plan.from_json(out.read_text())
    assert {(p.location.key, p.replicas) for p in stored.first_period} == {("gcp:us-central1", 5)}
    assert stored.inputs["quantile"] == 0.9
    printed = capsys.readouterr().out
    assert stored.plan_id in printed
    assert "gcp:us-central1" in printed
    assert "saving" in printed


def test_plan_command_explains_an_infeasible_plan_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_inputs(tmp_path, quota=4.0)
    spec = json.loads(files["workloads"].read_text())
    spec["workloads"]["api"]["allowed"] = ["gcp:us-central1"]
    files["workloads"].write_text(json.dumps(spec))
    code = main(
        [
            "plan",
            "--demand", str(files["demand"]),
            "--prices", str(files["prices"]),
            "--workloads", str(files["workloads"]),
            "--quantile", "0.5",
            "--output", str(tmp_path / "plan.json"),
        ]
    )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "no plan satisfies every constraint" in err
    assert "raise a vCPU quota" in err
    assert "Traceback" not in err
    assert not (tmp_path / "plan.json").exists()


def test_current_placement_accepts_cloud_and_region_columns(tmp_path: Path) -> None:
    path = tmp_path / "current.csv"
    path.write_text("workload,cloud,region,replicas\napi,AWS,us-east-1,3\n")
    (placement,) = read_current(path)
    assert placement.location == Location("aws", "us-east-1")
    assert placement.replicas == 3


def test_bad_current_placement_names_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "current.csv"
    path.write_text("workload,location,replicas\napi,aws:us-east-1,3\nweb,nowhere,2\n")
    with pytest.raises(SchemaError, match=r"current.csv, row 2"):
        read_current(path)


def test_workloads_file_with_a_list_and_constraints(tmp_path: Path) -> None:
    path = tmp_path / "workloads.yaml"
    path.write_text(
        "workloads:\n"
        "  - {name: api, vcpus: 2, memory_gib: 8, allowed: ['aws:us-east-1'], max_change: 0.2}\n"
        "quotas:\n  - {location: 'aws:us-east-1', vcpus: 64}\n"
        "budgets:\n  - {cloud: aws, amount: 1000}\n"
        "commitments:\n  - {cloud: aws, region: us-east-1, vcpus: 16, name: ri}\n"
    )
    workloads, quotas, budgets, commitments = read_workloads(path)
    assert workloads[0].allowed == (Location("aws", "us-east-1"),)
    assert workloads[0].max_change == 0.2
    assert quotas[0].vcpus == 64
    assert budgets[0].amount == 1000
    assert commitments[0].vcpus == 16


def test_workloads_file_with_an_unknown_key_names_it(tmp_path: Path) -> None:
    path = tmp_path / "workloads.json"
    path.write_text(json.dumps({"workloads": {"api": {"replicas_max": 3}}}))
    with pytest.raises(ConfigError) as info:
        read_workloads(path)
    assert info.value.key == "workloads.api"
    assert "replicas_max" in str(info.value)
