"""FOCUS files mangled every way an export, a spreadsheet or a disk can mangle them.

Each variant is generated here from one valid export and given to ``cloudbalance ingest``: it is
loaded, or refused with exit 1 and one line naming the file (and the row and column when the
problem is in a cell); a refused file changes nothing in the store. Non-finite costs, impossible
dates and JSON tags that are not objects are refused, never coerced.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from cloudbalance.store import Store
from tests.conftest import focus_rows
from tests.fuzz.conftest import Cli

#: The row every cell mutation is written to (1 = first data row).
ROW = 3


@dataclass(frozen=True)
class Variant:
    """One mangled file: its name, bytes, and what must happen."""

    id: str
    name: str
    data: bytes
    expect: str  # "refuse", "accept" or "either"
    needles: tuple[str, ...] = ()


def _base() -> pd.DataFrame:
    return focus_rows(5)


def _csv(frame: pd.DataFrame, **kw: object) -> bytes:
    return frame.to_csv(index=False, **kw).encode()  # type: ignore[call-overload,no-any-return]


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _cell(column: str, value: str) -> pd.DataFrame:
    frame = _base()
    frame.loc[ROW - 1, column] = value
    return frame


COSTS = ("BilledCost", "EffectiveCost", "ListCost", "ConsumedQuantity", "PricingQuantity")
BAD_NUMBERS = (
    "inf", "-inf", "Infinity", "-Infinity", "+inf", "1e400", "-1e400", "INF",
    "abc", "1,5", "0x10", "1e", "--1", "1.2.3", "12 USD", "$3",
)  # fmt: skip
BAD_DATES = (
    "-2025-01-01", "0000-01-01", "2025-01-01T00:00:00+99:00", "2025-01-01T00:00:00+15:00",
    "2025-01-01T00:00:00-23:30", "2025-01-01T00:00:00+05:75", "2025-02-30", "2025-13-01",
    "9999-12-31", "1899-01-01", "2025-01-01T25:00:00Z", "yesterday", "2025/01/32", "1e9",
)  # fmt: skip
BAD_TAGS = ("[1,2]", "5", '"x"', "true", "{broken", "{'workload': 'x'}", "[]", "1.5")
REQUIRED_TEXT = ("ProviderName", "BillingAccountId", "ChargeCategory", "BillingCurrency")
REQUIRED = (
    "ChargePeriodStart", "ChargePeriodEnd", "ProviderName", "BillingAccountId", "ServiceName",
    "ChargeCategory", "BilledCost", "EffectiveCost", "BillingCurrency",
)  # fmt: skip


def _cell_variants() -> Iterator[Variant]:
    for column in COSTS:
        for value in BAD_NUMBERS:
            yield Variant(
                f"{column}={value}", "cell.csv", _csv(_cell(column, value)), "refuse",
                (f"row {ROW}", column),
            )  # fmt: skip
    for column in ("ChargePeriodStart", "ChargePeriodEnd"):
        for value in BAD_DATES:
            yield Variant(
                f"{column}={value}", "date.csv", _csv(_cell(column, value)), "refuse",
                (f"row {ROW}",),
            )  # fmt: skip
    for value in BAD_TAGS:
        yield Variant(
            f"Tags={value}",
            "tags.csv",
            _csv(_cell("Tags", value)),
            "refuse",
            (f"row {ROW}", "Tags"),
        )
    for column in REQUIRED_TEXT:
        yield Variant(
            f"{column}=empty",
            "empty.csv",
            _csv(_cell(column, "")),
            "refuse",
            (f"row {ROW}", column),
        )
    frame = _base()
    frame.loc[ROW - 1, "ChargePeriodEnd"] = frame.loc[ROW - 1, "ChargePeriodStart"]
    yield Variant("period-empty", "period.csv", _csv(frame), "refuse", (f"row {ROW}",))
    for column in COSTS:  # numbers as a spreadsheet in Europe writes them
        frame = _base()
        frame[column] = "2,304"
        yield Variant(f"decimal-comma-{column}", "comma.csv", _csv(frame), "refuse", (column,))


def _structure_variants() -> Iterator[Variant]:
    valid = _csv(_base())
    quoted = valid.index(b'"{')  # the Tags JSON is a quoted field
    for cut in (5, 40, quoted + 3, quoted + 10, len(valid) // 2, len(valid) - 3, len(valid) - 1):
        yield Variant(f"cut-at-{cut}", "cut.csv", valid[:cut], "either")
    yield Variant("cut-inside-last-quote", "cutq.csv", valid[: valid.rindex(b'"{') + 6], "either")
    yield Variant("cut-inside-first-quote", "cutq1.csv", valid[: quoted + 4], "either")
    yield Variant(
        "semicolon-decimal-comma", "semi.csv",
        _csv(_base().replace("2.304", "2,304"), sep=";"), "refuse",
    )  # fmt: skip
    yield Variant("semicolon", "semi2.csv", _csv(_base(), sep=";"), "either")
    yield Variant("tab", "tab.csv", _csv(_base(), sep="\t"), "either")
    yield Variant("pipe", "pipe.csv", _csv(_base(), sep="|"), "either")
    yield Variant("empty-file", "empty.csv", b"", "refuse")
    yield Variant("only-newline", "nl.csv", b"\n", "refuse")
    yield Variant("only-spaces", "sp.csv", b"   \n  \n", "refuse")
    yield Variant("header-only", "header.csv", valid.splitlines(keepends=True)[0], "either")
    rng = random.Random(11)
    for size in (1, 17, 512, 4096):
        junk = bytes(rng.randrange(256) for _ in range(size))
        yield Variant(f"junk-{size}.csv", "junk.csv", junk, "refuse")
        yield Variant(f"junk-{size}.parquet", "junk.parquet", junk, "refuse")
        yield Variant(f"junk-{size}.csv.gz", "junk.csv.gz", junk, "refuse")
    yield Variant("gzip-of-junk", "gj.csv.gz", gzip.compress(b"\x00\xff" * 100), "refuse")
    yield Variant("gzip-truncated", "gt.csv.gz", gzip.compress(valid)[:-20], "either")
    yield Variant("csv-named-parquet", "csv.parquet", valid, "refuse")
    yield Variant("parquet-named-csv", "pq.csv", _parquet(_base()), "refuse")
    yield Variant("parquet-truncated", "pt.parquet", _parquet(_base())[:-50], "refuse")
    yield Variant("parquet-half", "ph.parquet", _parquet(_base())[:300], "refuse")
    latin = _base()
    latin["ServiceName"] = "Überwachung für Maßnahmen"
    text = latin.to_csv(index=False)
    yield Variant("utf16-le-bom", "u16.csv", text.encode("utf-16"), "refuse")
    yield Variant("utf16-be", "u16be.csv", text.encode("utf-16-be"), "refuse")
    yield Variant("utf32", "u32.csv", text.encode("utf-32"), "refuse")
    yield Variant("latin-1", "latin.csv", text.encode("latin-1"), "either")
    yield Variant("cp1252", "cp.csv", text.encode("cp1252"), "either")
    yield Variant("utf8-bom", "bom.csv", b"\xef\xbb\xbf" + text.encode(), "accept")
    yield Variant("crlf", "crlf.csv", valid.replace(b"\n", b"\r\n"), "accept")
    yield Variant("nul-bytes", "nul.csv", valid.replace(b"Compute", b"Com\x00pute"), "either")
    lines = valid.splitlines(keepends=True)
    yield Variant(
        "extra-field",
        "extra.csv",
        b"".join([*lines[:3], lines[3][:-1] + b",x\n", *lines[4:]]),
        "either",
    )
    yield Variant(
        "missing-field",
        "few.csv",
        b"".join([*lines[:3], lines[3].rsplit(b",", 1)[0] + b"\n", *lines[4:]]),
        "either",
    )
    yield Variant("blank-lines", "blank.csv", valid.replace(b"\n", b"\n\n", 2), "either")
    yield Variant("unbalanced-quote", "uq.csv", valid.replace(b'"{', b"{", 1), "either")
    yield Variant("stray-quote", "sq.csv", valid.replace(b"Compute", b'Com"pute', 1), "either")
    for column in REQUIRED:
        yield Variant(
            f"no-{column}", "nocol.csv", _csv(_base().drop(columns=[column])), "refuse", (column,)
        )
    dup = _base()
    header = ",".join([*dup.columns, "BilledCost"])
    body = "\n".join(",".join([*map(_quote, row), "9"]) for row in dup.astype(str).to_numpy())
    yield Variant(
        "duplicated-column", "dup.csv", f"{header}\n{body}\n".encode(), "refuse", ("BilledCost",)
    )
    header = ",".join([*dup.columns, "billedcost"])
    yield Variant(
        "duplicated-column-case",
        "dupc.csv",
        f"{header}\n{body}\n".encode(),
        "refuse",
        ("BilledCost",),
    )
    yield Variant("header-twice", "h2.csv", valid + lines[0], "refuse")
    yield Variant(
        "lowercase-header", "lower.csv", valid.replace(lines[0], lines[0].lower(), 1), "accept"
    )
    yield Variant("huge-field", "huge.csv", valid.replace(b"Compute", b"C" * 200_000, 1), "either")


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _parquet_variants() -> Iterator[Variant]:
    for column in ("BilledCost", "EffectiveCost", "ListCost"):
        for value in (float("inf"), float("-inf"), float("nan")):
            frame = _base()
            frame[column] = frame[column].astype(float)
            frame.loc[ROW - 1, column] = value
            nullable = column == "ListCost" and value != value  # NaN is written as null
            yield Variant(
                f"parquet-{column}={value}", "typed.parquet", _parquet(frame),
                "either" if nullable else "refuse", (f"row {ROW}", column),
            )  # fmt: skip
    for stamp in ("1800-01-01", "2262-04-01", "1970-01-01"):
        frame = _base()
        frame["ChargePeriodStart"] = pd.to_datetime(frame["ChargePeriodStart"], utc=True)
        frame["ChargePeriodEnd"] = pd.to_datetime(frame["ChargePeriodEnd"], utc=True)
        frame["ChargePeriodStart"] = frame["ChargePeriodStart"].astype("datetime64[us, UTC]")
        frame.loc[ROW - 1, "ChargePeriodStart"] = pd.Timestamp(stamp, tz="UTC")
        yield Variant(
            f"parquet-start={stamp}", "ts.parquet", _parquet(frame), "refuse", (f"row {ROW}",)
        )
    frame = _base()
    frame["Tags"] = [[1, 2]] * len(frame)
    yield Variant("parquet-tags-list", "tl.parquet", _parquet(frame), "refuse", ("Tags",))
    frame = _base()
    frame["BilledCost"] = [True] * len(frame)
    yield Variant("parquet-bool-cost", "bc.parquet", _parquet(frame), "either")
    frame = _base()
    frame["ProviderName"] = None
    yield Variant(
        "parquet-null-provider", "np.parquet", _parquet(frame), "refuse", ("ProviderName",)
    )


def variants() -> list[Variant]:
    return [*_cell_variants(), *_structure_variants(), *_parquet_variants()]


VARIANTS = variants()


def test_the_corpus_is_large_enough() -> None:
    assert len(VARIANTS) >= 200
    assert len({v.id for v in VARIANTS}) == len(VARIANTS)


def _digest(path: Path) -> tuple[object, ...]:
    with duckdb.connect(str(path), read_only=True) as con:
        row = con.execute(
            "SELECT count(*), sum(EffectiveCost), min(ChargePeriodStart), max(x_Source) FROM costs"
        ).fetchone()
    assert row is not None
    return tuple(row)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[object, ...]]:
    """A store holding one valid export (other days than the variants, so nothing overlaps)."""
    folder = tmp_path_factory.mktemp("baseline")
    frame = focus_rows(3)
    frame["ChargePeriodStart"] = [
        "2024-06-01T00:00:00Z",
        "2024-06-02T00:00:00Z",
        "2024-06-03T00:00:00Z",
    ]
    frame["ChargePeriodEnd"] = [
        "2024-06-02T00:00:00Z",
        "2024-06-03T00:00:00Z",
        "2024-06-04T00:00:00Z",
    ]
    export = folder / "valid.csv"
    frame.to_csv(export, index=False)
    path = folder / "store.duckdb"
    with Store(path) as store:
        from cloudbalance.providers.focus import FocusReader

        FocusReader(store.con).ingest(store, [export])
    return path, _digest(path)


def test_the_valid_export_loads(cli: Cli, tmp_path: Path) -> None:
    export = tmp_path / "valid.csv"
    export.write_bytes(_csv(_base()))
    outcome = cli("ingest", export, "--store", tmp_path / "s.duckdb")
    assert outcome.code == 0, outcome.err


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.id for v in VARIANTS])
def test_a_mangled_export_is_loaded_or_refused_clearly(
    variant: Variant, cli: Cli, tmp_path: Path, baseline: tuple[Path, tuple[object, ...]]
) -> None:
    store = tmp_path / "store.duckdb"
    shutil.copy(baseline[0], store)
    folder = tmp_path / "exports"
    folder.mkdir()
    path = folder / variant.name
    path.write_bytes(variant.data)
    outcome = cli("ingest", path, "--store", store)
    outcome.assert_user_error_or_ok()
    if variant.expect == "accept":
        assert outcome.code == 0, outcome.err
    if variant.expect == "refuse":
        outcome.assert_refused(variant.name, *variant.needles)
    if outcome.code == 1:
        assert variant.name in outcome.err
        assert len(outcome.err.strip().splitlines()) == 1, outcome.err
        assert _digest(store) == baseline[1]


def test_tags_that_are_json_but_not_objects_are_named(cli: Cli, tmp_path: Path) -> None:
    frame = _base()
    frame["Tags"] = ["[1,2]", "5", '"x"', json.dumps({"a": 1}), ""]
    path = tmp_path / "tags.csv"
    path.write_bytes(_csv(frame))
    outcome = cli("ingest", path, "--store", tmp_path / "s.duckdb")
    outcome.assert_refused("row 1", "row 2", "row 3", "is not a JSON object")
    assert "row 4" not in outcome.err
    assert "row 5" not in outcome.err
