from __future__ import annotations

import multiprocessing
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from cloudbalance.attribution import Attribution
from cloudbalance.exceptions import SchemaError, StoreError, StoreLockedError
from cloudbalance.models import Location, Move, Placement, Plan, Workload, WorkloadMatch
from cloudbalance.store import Store
from tests.conftest import focus_rows


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "store.duckdb") as opened:
        yield opened


def total(store: Store) -> float:
    row = store.con.execute("SELECT sum(BilledCost) FROM costs").fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0


def test_reingest_of_same_frame_adds_nothing(store: Store) -> None:
    frame = focus_rows(5)
    first = store.ingest_costs(frame, source="a.csv")
    second = store.ingest_costs(frame, source="a.csv")
    assert first.rows == second.rows == 5
    assert second.replaced == 5
    assert total(store) == pytest.approx(5 * 2.304)


def test_overlapping_loads_take_the_overlap_from_the_latest(store: Store) -> None:
    store.ingest_costs(focus_rows(5), source="jan-a.csv")  # days 1..5
    later = focus_rows(7).iloc[2:].copy()  # days 3..7, restated at 3.0
    later["BilledCost"] = "3.0"
    store.ingest_costs(later, source="jan-b.csv")
    daily = store.summary(["day"], measure="BilledCost")
    assert list(daily["amount"].round(3)) == [2.304, 2.304, 3.0, 3.0, 3.0, 3.0, 3.0]


def test_other_accounts_and_providers_are_never_replaced(store: Store) -> None:
    store.ingest_costs(focus_rows(3), source="a")
    store.ingest_costs(focus_rows(3, BillingAccountId="999"), source="b")
    store.ingest_costs(focus_rows(3, ProviderName="Microsoft"), source="c")
    assert len(store.costs()) == 9


def test_failed_ingest_leaves_the_store_as_it_was(store: Store) -> None:
    store.ingest_costs(focus_rows(3), source="good")
    before = store.costs()
    with pytest.raises(SchemaError):
        store.load_relation(
            "SELECT * REPLACE (CAST(NULL AS VARCHAR) AS BillingCurrency) FROM costs",
        )
    pd.testing.assert_frame_equal(store.costs(), before)


def test_interrupted_ingest_is_rolled_back(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.ingest_costs(focus_rows(3), source="good")

    def interrupt(*_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(Store, "_replace_keys", interrupt)
    changed = focus_rows(3, BilledCost="100")
    with pytest.raises(KeyboardInterrupt):
        store.ingest_costs(changed, source="interrupted")
    assert total(store) == pytest.approx(3 * 2.304)
    assert set(store.costs()["x_Source"]) == {"good"}


def test_workloads_are_attributed_from_tags_and_rules(store: Store) -> None:
    frame = focus_rows(3)
    frame["Tags"] = ['{"workload": "checkout"}', '{"app": "x"}', '{"workload": "other"}']
    frame["ResourceId"] = ["i-1", "arn:aws:ecs:svc/search-1", "i-3"]
    rules = Attribution(
        "workload",
        [
            Workload("shop", match=WorkloadMatch(tag_values=("checkout",))),
            Workload("search", match=WorkloadMatch(resource_patterns=("arn:aws:ecs:*search*",))),
        ],
    )
    store.ingest_costs(frame, source="x", attribution=rules)
    assert list(store.costs()["x_Workload"]) == ["shop", "search", "other"]
    changed = Attribution(
        "workload",
        [Workload("everything", match=WorkloadMatch(services=("Amazon Elastic Compute Cloud",)))],
    )
    assert store.reattribute(changed) == 3
    assert set(store.costs()["x_Workload"]) == {"everything"}


def test_provider_names_map_to_cloud_ids_and_are_kept(store: Store) -> None:
    frame = pd.concat(
        [
            focus_rows(1, ProviderName=p)
            for p in ("Amazon Web Services", "Microsoft", "Google Cloud", "Oracle", "Acme Cloud")
        ]
    )
    store.ingest_costs(frame, source="x")
    costs = store.costs().sort_values("ProviderName")
    assert list(costs["ProviderName"]) == sorted(
        ["Amazon Web Services", "Microsoft", "Google Cloud", "Oracle", "Acme Cloud"]
    )
    assert dict(zip(costs["ProviderName"], costs["x_Cloud"].fillna("?"), strict=True)) == {
        "Amazon Web Services": "aws",
        "Microsoft": "azure",
        "Google Cloud": "gcp",
        "Oracle": "oci",
        "Acme Cloud": "?",
    }


def test_totals_are_per_currency_unless_converted(store: Store) -> None:
    store.ingest_costs(focus_rows(2), source="usd")
    store.ingest_costs(focus_rows(2, BillingCurrency="EUR", BillingAccountId="eu"), source="eur")
    per_currency = store.summary(["provider"])
    assert sorted(per_currency["currency"]) == ["EUR", "USD"]
    converted = store.summary(["provider"], report_currency="USD", rates={"EUR": 2.0})
    assert converted["amount"].tolist() == pytest.approx([3 * 2 * 2.304])
    with pytest.raises(Exception, match="no rate to convert EUR"):
        store.summary(["provider"], report_currency="USD")


def test_prices_are_upserted_by_observation(store: Store) -> None:
    prices = pd.DataFrame(
        {
            "ProviderName": ["aws"],
            "RegionId": ["us-east-1"],
            "SkuId": ["m6i.large"],
            "vcpus": [2],
            "memory_gib": [8],
            "unit_price": [0.04],
            "price_kind": ["spot"],
            "PricingUnit": ["Hours"],
            "BillingCurrency": ["USD"],
            "observed_at": ["2025-01-01"],
        }
    )
    store.ingest_prices(prices, source="a")
    store.ingest_prices(prices.assign(unit_price=0.05), source="a")
    assert store.prices()["unit_price"].tolist() == [0.05]


def plan(plan_id: str = "abc123") -> Plan:
    here, there = Location("aws", "us-east-1"), Location("gcp", "us-central1")
    return Plan(
        plan_id=plan_id,
        created_at=datetime(2025, 1, 1),
        period_start=datetime(2025, 1, 2),
        period="1D",
        horizon=2,
        current=(Placement("web", here, 4),),
        schedule=((Placement("web", here, 2), Placement("web", there, 2)),) * 2,
        moves=(Move("web", there, 0, 2, saving=12.5, confidence=0.9, reason="cheaper"),),
        expected_cost=80.0,
        baseline_cost=92.5,
        confidence=0.9,
        inputs={"quantile": 0.8},
    )


def test_plans_round_trip_through_the_store(store: Store) -> None:
    store.save_plan(plan())
    store.save_plan(plan())  # idempotent
    loaded = store.load_plan("abc123")
    assert loaded == plan()
    assert loaded.saving == pytest.approx(12.5)
    assert len(store.plans()) == 1
    with pytest.raises(StoreError, match=r"no plan .zzz.*latest: abc123"):
        store.load_plan("zzz")


def test_audit_log_records_ok_and_failed_steps(store: Store) -> None:
    with store.step("run1", "ingest", {"files": 2}) as outputs:
        outputs["rows"] = 10
    with pytest.raises(ValueError, match="boom"), store.step("run1", "forecast"):
        raise ValueError("boom")
    runs = store.runs().sort_values("started_at")
    assert list(runs["status"]) == ["ok", "failed"]
    assert '"rows": 10' in runs.iloc[0]["outputs"]
    assert runs.iloc[1]["error"] == "boom"


def test_sync_state_is_remembered(store: Store) -> None:
    assert store.sync_state("aws") is None
    store.set_sync_state("aws", datetime(2025, 1, 5))
    store.set_sync_state("aws", datetime(2025, 1, 6))
    assert store.sync_state("aws") == datetime(2025, 1, 6)


def _hold(path: str, ready: multiprocessing.synchronize.Event, seconds: float) -> None:
    with Store(path):
        ready.set()
        time.sleep(seconds)


def test_a_second_process_waits_then_gets_a_clear_error(tmp_path: Path) -> None:
    path = str(tmp_path / "locked.duckdb")
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold, args=(path, ready, 3.0))
    holder.start()
    try:
        assert ready.wait(60)
        waited: list[Path] = []
        with pytest.raises(StoreLockedError, match="another cloudbalance run is using the store"):
            Store(path, lock_timeout=0.5, on_wait=waited.append)
        assert waited == [Path(path)]
    finally:
        holder.join(30)
    with Store(path) as store:  # released when the holder finished
        assert store.runs().empty


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.duckdb"
    bogus.write_text("hello")
    with pytest.raises(StoreError, match=r"cannot open the store .*not a valid DuckDB"):
        Store(bogus)


def test_the_store_file_persists_between_opens(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "store.duckdb"
    with Store(path) as store:
        store.ingest_costs(focus_rows(2), source="x")
    with Store(path) as store:
        assert len(store.costs()) == 2


def test_one_cloud_under_two_publisher_names_is_one_provider(store: Store) -> None:
    """AWS's FOCUS files say "AWS", Cost Explorer rows "Amazon Web Services": same days."""
    store.ingest_costs(focus_rows(3, ProviderName="AWS"), source="focus-file")
    store.ingest_costs(focus_rows(3, ProviderName="Amazon Web Services"), source="aws:api")
    assert len(store.costs()) == 3
    assert set(store.costs()["x_Source"]) == {"aws:api"}
