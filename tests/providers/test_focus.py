from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cloudbalance.attribution import Attribution
from cloudbalance.exceptions import ConfigError, ProviderError, SchemaError
from cloudbalance.providers.focus import FocusProvider, FocusReader, discover_files
from cloudbalance.store import Store
from cloudbalance.testing import ProviderContract
from tests.conftest import focus_rows

Writer = Callable[..., Path]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store(tmp_path / "s.duckdb") as opened:
        yield opened


def ingest(store: Store, *paths: str | Path, **kw: object) -> object:
    return FocusReader(store.con).ingest(store, list(paths), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["e.csv", "e.csv.gz", "e.parquet"])
def test_each_format_loads_the_same_rows(store: Store, write_focus: Writer, name: str) -> None:
    path = write_focus(focus_rows(3), name)
    result = ingest(store, path)
    costs = store.costs()
    assert result.rows == 3  # type: ignore[attr-defined]
    assert costs["EffectiveCost"].sum() == pytest.approx(3 * 2.304)
    assert costs["ChargePeriodStart"].iloc[0] == pd.Timestamp("2025-01-01")
    assert set(costs["x_Source"]) == {str(path)}
    assert set(costs["x_Cloud"]) == {"aws"}


def test_folders_and_globs_are_expanded(tmp_path: Path, write_focus: Writer) -> None:
    a = write_focus(focus_rows(1), "exports/2025-01/a.csv")
    b = write_focus(focus_rows(1), "exports/2025-02/b.parquet")
    (tmp_path / "exports" / "manifest.json").write_text("{}")
    assert set(discover_files([tmp_path / "exports"])) == {a, b}
    assert discover_files([str(tmp_path / "exports" / "**" / "*.csv")]) == [a]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("missing.csv", "no such file"),
        ("nothing/*.csv", "matches no file"),
        ("notes.txt", "not a FOCUS export"),
    ],
)
def test_bad_paths_are_config_errors(tmp_path: Path, path: str, message: str) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match=message):
        discover_files([str(tmp_path / path)])


def test_newer_files_win_when_they_restate_the_same_days(store: Store, write_focus: Writer) -> None:
    old = write_focus(focus_rows(3), "v1/export.csv")
    new = write_focus(focus_rows(3, BilledCost="5"), "v2/export.csv")
    os.utime(old, (1_000_000, 1_000_000))
    result = ingest(store, old.parent.parent)
    assert result.superseded == 3  # type: ignore[attr-defined]
    assert set(store.costs()["x_Source"]) == {str(new)}
    assert store.costs()["BilledCost"].sum() == pytest.approx(15.0)


def test_reingesting_an_export_never_double_counts(store: Store, write_focus: Writer) -> None:
    path = write_focus(focus_rows(4), "e.parquet")
    ingest(store, path)
    ingest(store, path)
    assert len(store.costs()) == 4


def test_missing_mandatory_columns_are_named_with_the_file(
    store: Store, write_focus: Writer
) -> None:
    path = write_focus(focus_rows(2).drop(columns=["BilledCost", "BillingCurrency"]), "bad.csv")
    with pytest.raises(SchemaError) as excinfo:
        ingest(store, path)
    found = {(i.file, i.column) for i in excinfo.value.issues}
    assert found == {(str(path), "BilledCost"), (str(path), "BillingCurrency")}
    assert store.costs().empty


@pytest.mark.parametrize("name", ["bad.csv", "bad.csv.gz"])
def test_unparseable_dates_and_numbers_name_file_row_and_column(
    store: Store, write_focus: Writer, name: str
) -> None:
    frame = focus_rows(4)
    frame.loc[2, "ChargePeriodStart"] = "yesterday"
    frame.loc[3, "EffectiveCost"] = "1.2.3"
    path = write_focus(frame, name)
    with pytest.raises(SchemaError) as excinfo:
        ingest(store, path)
    found = {(i.file, i.row, i.column, i.value) for i in excinfo.value.issues}
    assert (str(path), 3, "ChargePeriodStart", "yesterday") in found
    assert (str(path), 4, "EffectiveCost", "1.2.3") in found
    assert "row 3" in str(excinfo.value)
    assert store.costs().empty


def test_a_bad_file_among_good_ones_loads_nothing(store: Store, write_focus: Writer) -> None:
    write_focus(focus_rows(3), "all/good.csv")
    bad = focus_rows(3)
    bad.loc[0, "BillingCurrency"] = "NULL"
    path = write_focus(bad, "all/bad.csv")
    with pytest.raises(SchemaError) as excinfo:
        ingest(store, path.parent)
    assert excinfo.value.issues[0].file == str(path)
    assert excinfo.value.issues[0].column == "BillingCurrency"
    assert store.costs().empty


def test_periods_ending_before_they_start_are_rejected(store: Store, write_focus: Writer) -> None:
    frame = focus_rows(2)
    frame.loc[1, "ChargePeriodEnd"] = "2024-12-01T00:00:00Z"
    path = write_focus(frame, "e.csv")
    with pytest.raises(SchemaError, match="ends before it starts") as excinfo:
        ingest(store, path)
    assert excinfo.value.issues[0].row == 2


def test_null_strings_credits_and_zero_costs_are_data(store: Store, write_focus: Writer) -> None:
    frame = focus_rows(3)
    frame.loc[0, "RegionId"] = "NULL"
    frame.loc[1, "BilledCost"] = "-10"
    frame.loc[2, "EffectiveCost"] = "0"
    ingest(store, write_focus(frame, "e.csv"))
    costs = store.costs()
    assert costs["RegionId"].isna().sum() == 1
    assert costs["BilledCost"].min() == -10
    assert (costs["EffectiveCost"] == 0).sum() == 1


def test_malformed_json_tags_are_named(store: Store, write_focus: Writer) -> None:
    frame = focus_rows(2)
    frame.loc[1, "Tags"] = "{workload: web"
    path = write_focus(frame, "e.csv")
    with pytest.raises(SchemaError) as excinfo:
        ingest(store, path)
    assert [(i.row, i.column) for i in excinfo.value.issues] == [(2, "Tags")]


def test_parquet_map_tags_attribute_workloads(store: Store, tmp_path: Path) -> None:
    frame = focus_rows(2).drop(columns=["Tags"])
    table = pa.Table.from_pandas(frame, preserve_index=False).append_column(
        "Tags",
        pa.array([[("workload", "web")], None], type=pa.map_(pa.string(), pa.string())),
    )
    path = tmp_path / "aws.parquet"
    pq.write_table(table, path)
    ingest(store, path)
    costs = store.costs()
    assert json.loads(costs["Tags"].iloc[0]) == {"workload": "web"}
    assert costs["x_Workload"].tolist()[0] == "web"


def test_timestamps_with_offsets_and_typed_parquet_are_utc(
    store: Store, tmp_path: Path, write_focus: Writer
) -> None:
    frame = focus_rows(1)
    frame["ChargePeriodStart"] = "2025-01-01 02:00:00+02:00"
    frame["ChargePeriodEnd"] = "2025-01-02 02:00:00+02:00"
    write_focus(frame, "gcp.csv.gz")
    typed = focus_rows(1, BillingAccountId="typed")
    typed["ChargePeriodStart"] = pd.to_datetime(typed["ChargePeriodStart"], utc=True)
    typed["ChargePeriodEnd"] = pd.to_datetime(typed["ChargePeriodEnd"], utc=True)
    typed["BilledCost"] = 2.304
    write_focus(typed, "aws.parquet")
    ingest(store, tmp_path)
    assert set(store.costs()["ChargePeriodStart"]) == {pd.Timestamp("2025-01-01")}


def test_older_and_lowercase_column_names_are_accepted(store: Store, write_focus: Writer) -> None:
    frame = focus_rows(2).rename(
        columns={
            "ChargeCategory": "ChargeType",
            "RegionId": "Region",
            "ProviderName": "serviceprovidername",
            "BilledCost": "billedcost",
        }
    )
    ingest(store, write_focus(frame, "old.csv"))
    costs = store.costs()
    assert set(costs["RegionId"]) == {"us-east-1"}
    assert set(costs["ChargeCategory"]) == {"Usage"}
    assert set(costs["ProviderName"]) == {"AWS"}


def test_several_currencies_are_kept_apart(store: Store, write_focus: Writer) -> None:
    frame = pd.concat([focus_rows(2), focus_rows(2, BillingCurrency="EUR", BillingAccountId="e")])
    ingest(store, write_focus(frame, "mixed.csv"))
    totals = store.summary([])
    assert sorted(totals["currency"]) == ["EUR", "USD"]


def test_unknown_publishers_are_kept_as_given(store: Store, write_focus: Writer) -> None:
    ingest(store, write_focus(focus_rows(1, ProviderName="Oracle"), "oci.csv"))
    row = store.costs().iloc[0]
    assert (row["ProviderName"], row["x_Cloud"]) == ("Oracle", "oci")


def test_configured_rules_attribute_workloads(store: Store, write_focus: Writer) -> None:
    from cloudbalance.models import Workload, WorkloadMatch

    frame = focus_rows(2)
    frame["Tags"] = ['{"app": "shop"}', "NULL"]
    rules = Attribution("app", [Workload("web", match=WorkloadMatch(tag_values=("shop",)))])
    ingest(store, write_focus(frame, "e.csv"), attribution=rules)
    assert store.costs()["x_Workload"].tolist()[0] == "web"


def test_unreadable_files_are_schema_errors(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(SchemaError, match="cannot be read"):
        ingest(store, path)


def test_corrupt_gzip_is_a_schema_error(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(gzip.compress(b"ChargePeriodStart\n")[:10])
    with pytest.raises(SchemaError):
        ingest(store, path)


def test_read_returns_a_window_as_a_costs_frame(write_focus: Writer) -> None:
    path = write_focus(focus_rows(5), "e.parquet")
    frame = FocusReader().read([path], start=datetime(2025, 1, 2), end=datetime(2025, 1, 4))
    assert len(frame) == 2
    assert frame["x_Cloud"].tolist() == ["aws", "aws"]


def test_provider_needs_paths() -> None:
    with pytest.raises(ConfigError, match="give the FOCUS files"):
        FocusProvider([])


def test_provider_reports_missing_files(tmp_path: Path) -> None:
    provider = FocusProvider(str(tmp_path / "none"))
    assert provider.check().ok is False
    with pytest.raises(ProviderError):
        provider.costs(datetime(2025, 1, 1), datetime(2025, 1, 2))


class TestFocusProviderContract(ProviderContract):
    name = "focus"
    start = datetime(2025, 1, 1)
    end = datetime(2025, 1, 4)
    has_prices = False

    @pytest.fixture
    def provider(self, tmp_path: Path) -> FocusProvider:
        frame = focus_rows(3)
        (tmp_path / "x").mkdir()
        frame.to_csv(tmp_path / "x" / "a.csv", index=False)
        return FocusProvider([str(tmp_path / "x")])


class TestDemoProviderContract(ProviderContract):
    name = "demo"
    start = datetime(2026, 10, 1)
    end = datetime(2026, 10, 8)

    @pytest.fixture
    def provider(self) -> object:
        from cloudbalance.providers.demo import DemoProvider

        return DemoProvider(days=60)


def test_aws_user_prefixed_tags_attribute_workloads(store: Store, write_focus: Writer) -> None:
    frame = focus_rows(1)
    frame["Tags"] = '{"user:workload": "checkout"}'
    ingest(store, write_focus(frame, "aws.csv"))
    assert store.costs()["x_Workload"].tolist() == ["checkout"]
