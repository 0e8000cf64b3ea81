from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cloudbalance.exceptions import ForecastError, SchemaError
from cloudbalance.forecast import infer_step
from cloudbalance.forecast.prepare import prepare_series, step_label


def _one(frame: pd.DataFrame, **kwargs):
    (prep,) = list(prepare_series(frame, **kwargs))
    return prep


@pytest.mark.parametrize(
    ("freq", "label"),
    [("min", "1min"), ("5min", "5min"), ("15min", "15min"), ("h", "h"), ("D", "D"), ("7D", "7D")],
)
def test_regular_frequencies_from_minutes_to_weeks_are_inferred(freq, label) -> None:
    ds = pd.date_range("2024-01-01", periods=50, freq=freq).to_numpy(dtype="datetime64[ns]")
    assert step_label(infer_step(ds)) == label


def test_the_most_common_spacing_wins_over_gaps() -> None:
    ds = pd.date_range("2024-01-01", periods=100, freq="h").delete([10, 11, 12, 50])
    assert step_label(infer_step(ds.to_numpy(dtype="datetime64[ns]"))) == "h"


def test_duplicated_timestamps_are_summed_and_reported() -> None:
    frame = pd.DataFrame(
        {
            "unique_id": ["a"] * 4,
            "ds": ["2024-01-01", "2024-01-02", "2024-01-02", "2024-01-03"],
            "y": [1.0, 2.0, 3.0, 4.0],
        }
    )
    prep = _one(frame)
    np.testing.assert_array_equal(prep.y, [1.0, 5.0, 4.0])
    assert prep.notes == ("1 duplicated timestamps were combined with sum",)
    np.testing.assert_array_equal(_one(frame, aggregate="mean").y, [1.0, 2.5, 4.0])


def test_irregular_timestamps_are_snapped_and_missing_periods_become_gaps() -> None:
    frame = pd.DataFrame(
        {
            "unique_id": "a",
            "ds": [
                "2024-01-01 00:00",
                "2024-01-01 01:00:07",
                "2024-01-01 02:00",
                "2024-01-01 05:00",
            ],
            "y": [1.0, 2.0, 3.0, 6.0],
        }
    )
    prep = _one(frame)
    assert prep.step_ns == 3600 * 10**9
    assert np.isnan(prep.y[3])
    assert np.isnan(prep.y[4])
    assert prep.y[5] == 6.0
    assert any("snapped" in n for n in prep.notes)
    assert any("2 missing h periods" in n for n in prep.notes)


def test_tz_aware_timestamps_are_converted_to_naive_utc() -> None:
    ds = pd.date_range("2024-01-01", periods=5, freq="D", tz="Europe/Paris")
    prep = _one(pd.DataFrame({"unique_id": "a", "ds": ds, "y": 1.0}))
    assert str(prep.ds[0]) == "2023-12-31T23:00:00.000000000"


def test_forced_frequency_must_be_a_fixed_step() -> None:
    frame = pd.DataFrame({"unique_id": "a", "ds": ["2024-01-01", "2024-02-01"], "y": [1, 2]})
    with pytest.raises(ForecastError, match="not a fixed step"):
        _one(frame, freq="MS")


def test_unparseable_value_names_file_row_and_column() -> None:
    frame = pd.DataFrame(
        {"unique_id": ["a", "a"], "ds": ["2024-01-01", "2024-01-02"], "y": ["1", "lots"]}
    )
    with pytest.raises(SchemaError) as info:
        _one(frame, file="costs.csv")
    issue = info.value.issues[0]
    assert (issue.file, issue.row, issue.column) == ("costs.csv", 2, "y")


def test_unknown_aggregate_is_refused() -> None:
    frame = pd.DataFrame({"unique_id": "a", "ds": ["2024-01-01"], "y": [1.0]})
    with pytest.raises(ForecastError, match="aggregate"):
        _one(frame, aggregate="median")
