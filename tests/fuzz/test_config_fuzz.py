"""cloudbalance.yaml mangled every way a hand edit, an editor or a copy can mangle it.

Each variant is generated from the shipped example (what ``config init`` writes) and checked with
``cloudbalance config check``: it passes, or it is refused with exit 1 and ``file:line: key:
message`` lines, literally (no markup), every problem at once. Non-finite numbers, out-of-range
values, unknown clouds, providers and provider options are refused, never coerced.
"""

from __future__ import annotations

import io
import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from cloudbalance.config import example_config
from tests.fuzz.conftest import Cli

NAME = "cloudbalance.yaml"


@dataclass(frozen=True)
class Variant:
    """One mangled file and the key its refusal must name (None: the file as a whole)."""

    id: str
    data: bytes
    key: str | None = None


def _edit(path: tuple[str | int, ...], value: Any, *, delete: bool = False) -> bytes:
    """The example with the value at ``path`` replaced (or deleted)."""
    yaml = YAML(typ="rt")
    root = yaml.load(example_config())
    node = root
    for part in path[:-1]:
        node = node[part]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    out = io.StringIO()
    yaml.dump(root, out)
    return out.getvalue().encode()


NAN, INF = math.nan, math.inf

#: (path, value, key named in the refusal)
VALUES: list[tuple[tuple[str | int, ...], Any, str]] = [
    (("currency", "rates", "EUR"), NAN, "currency.rates.EUR"),
    (("currency", "rates", "EUR"), INF, "currency.rates.EUR"),
    (("currency", "rates", "EUR"), -1.08, "currency.rates.EUR"),
    (("currency", "rates", "EUR"), 0, "currency.rates.EUR"),
    (("currency", "rates", "EUR"), "1.08", "currency.rates.EUR"),
    (("currency", "rates", "eur"), 1.1, "currency.rates.eur"),
    (("currency", "report"), "usd", "currency.report"),
    (("store", "lock_timeout"), NAN, "store.lock_timeout"),
    (("store", "lock_timeout"), -1, "store.lock_timeout"),
    (("store", "lock_timeout"), -INF, "store.lock_timeout"),
    (("store", "lock_timeout"), 1e9, "store.lock_timeout"),
    (("store", "lock_timeout"), "soon", "store.lock_timeout"),
    (("store", "path"), "", "store.path"),
    (("workloads", "checkout", "move_cost"), -5, "workloads.checkout.move_cost"),
    (("workloads", "checkout", "move_cost"), NAN, "workloads.checkout.move_cost"),
    (("workloads", "checkout", "allowed"), ["mars:olympus-1"], "workloads.checkout.allowed[0]"),
    (("workloads", "checkout", "allowed"), ["aws"], "workloads.checkout.allowed[0]"),
    (("workloads", "checkout", "allowed"), [5], "workloads.checkout.allowed[0]"),
    (("workloads", "checkout", "allowed"), ["aws:us east"], "workloads.checkout.allowed[0]"),
    (("workloads", "checkout", "allowed"), "aws:us-east-1", "workloads.checkout.allowed"),
    (
        ("workloads", "checkout", "allowed"),
        ["aws:us-east-1", "aws:us-east-1"],
        "workloads.checkout.allowed",
    ),
    (("workloads", "checkout", "min_locations"), 0, "workloads.checkout.min_locations"),
    (("workloads", "checkout", "min_locations"), 10, "workloads.checkout.min_locations"),
    (("workloads", "checkout", "min_locations"), 1.5, "workloads.checkout.min_locations"),
    (("workloads", "checkout", "max_share"), 0, "workloads.checkout.max_share"),
    (("workloads", "checkout", "max_share"), 1.5, "workloads.checkout.max_share"),
    (("workloads", "checkout", "max_change"), -0.1, "workloads.checkout.max_change"),
    (("workloads", "checkout", "replica", "vcpus"), 0, "workloads.checkout.replica.vcpus"),
    (("workloads", "checkout", "replica", "vcpus"), 1e6, "workloads.checkout.replica.vcpus"),
    (
        ("workloads", "checkout", "replica", "memory_gib"),
        -1,
        "workloads.checkout.replica.memory_gib",
    ),
    (("workloads", "checkout", "demand_per_replica"), 0, "workloads.checkout.demand_per_replica"),
    (("workloads", "checkout", "spot"), "yes", "workloads.checkout.spot"),
    (("workloads", "checkout", "stack"), "noslash", "workloads.checkout.stack"),
    (("workloads", "checkout", "bogus"), 1, "workloads.checkout.bogus"),
    (("workloads", "checkout", "match", "tags"), "checkout", "workloads.checkout.match.tags"),
    (("workloads", "checkout"), [1, 2], "workloads.checkout"),
    (("workloads", "bad name!"), {}, "workloads.bad name!"),
    (("forecast", "horizon"), 1e9, "forecast.horizon"),
    (("forecast", "horizon"), 1_000_000_000, "forecast.horizon"),
    (("forecast", "horizon"), 0, "forecast.horizon"),
    (("forecast", "horizon"), -3, "forecast.horizon"),
    (("forecast", "horizon"), "14", "forecast.horizon"),
    (("forecast", "horizon"), True, "forecast.horizon"),
    (("forecast", "model"), "bogus", "forecast.model"),
    (("forecast", "interval"), 0, "forecast.interval"),
    (("forecast", "interval"), 1, "forecast.interval"),
    (("forecast", "interval"), NAN, "forecast.interval"),
    (("forecast", "freq"), "fortnight", "forecast.freq"),
    (("forecast", "country_holidays"), ["usa"], "forecast.country_holidays[0]"),
    (("forecast", "spike_threshold"), 0.5, "forecast.spike_threshold"),
    (("plan", "quantile"), 0, "plan.quantile"),
    (("plan", "quantile"), 2, "plan.quantile"),
    (("plan", "max_gap"), -0.1, "plan.max_gap"),
    (("plan", "quotas", 0, "location"), "mars:x", "plan.quotas[0].location"),
    (("plan", "quotas", 0, "vcpus"), -1, "plan.quotas[0].vcpus"),
    (("budgets", 0, "amount"), -5, "budgets[0].amount"),
    (("budgets", 0, "amount"), NAN, "budgets[0].amount"),
    (("budgets", 0, "cloud"), 5, "budgets[0].cloud"),
    (("plan", "budgets"), [{"cloud": "gcp", "amount": 1}], "plan.budgets"),
    (("sync", "deadline"), 0, "sync.deadline"),
    (("sync", "deadline"), INF, "sync.deadline"),
    (("sync", "lookback_days"), 0, "sync.lookback_days"),
    (("sync", "deadlines", "aws"), -1, "sync.deadlines.aws"),
    (("sync", "stale_after_days"), 1.5, "sync.stale_after_days"),
    (("guardrails", "min_confidence_commit"), 1.5, "guardrails.min_confidence_commit"),
    (("guardrails", "max_moves"), -1, "guardrails.max_moves"),
    (("guardrails", "max_moves"), 2.5, "guardrails.max_moves"),
    (("guardrails", "max_share_moved"), 7, "guardrails.max_share_moved"),
    (("guardrails", "min_saving"), -10, "guardrails.min_saving"),
    (("guardrails", "min_saving_pct"), 1, "guardrails.min_saving_pct"),
    (("guardrails", "freeze", 0, "end"), "2026-12-01", "guardrails.freeze[0]"),
    (("guardrails", "freeze", 0, "start"), "2026-13-45", "guardrails.freeze[0].start"),
    (("guardrails", "policies"), ["nope/"], "guardrails.policies[0]"),
    (("guardrails", "max_monthly_cost", "mars"), 5, "guardrails.max_monthly_cost.mars"),
    (("guardrails", "rollback_threshold"), -1, "guardrails.rollback_threshold"),
    (("git", "mode"), "yolo", "git.mode"),
    (("git", "github_repo"), "noslash", "git.github_repo"),
    (("git", "api_url"), "ftp://example.com", "git.api_url"),
    (("version",), 2, "version"),
    (("version",), "1", "version"),
    (("workload_tag",), "", "workload_tag"),
    (("storage",), {}, "storage"),
    (("providers", "mars"), {}, "providers.mars"),
    (("providers", "focus", "bogus"), 1, "providers.focus"),
    (("providers", "focus"), [1], "providers.focus"),
    (("providers", "aws"), {"bogus": 1}, "providers.aws.bogus"),
    (("providers", "gcp"), {"billing_export_table": "p.d.t"}, "providers.gcp.billing_export_table"),
    (("providers", "azure"), {"scope": 5}, "providers.azure.scope"),
]


def _structure() -> Iterator[Variant]:
    text = example_config()
    rng = random.Random(7)
    for size in (1, 64, 4096):
        yield Variant(f"junk-{size}", bytes(rng.randrange(256) for _ in range(size)))
    yield Variant("utf16", text.encode("utf-16"))
    yield Variant("utf16-be", text.encode("utf-16-be"))
    yield Variant("utf32", text.encode("utf-32"))
    yield Variant("latin-1", (text + "# caf\xe9\n").encode("latin-1"))
    yield Variant("empty", b"")
    yield Variant("spaces", b"  \n\n ")
    yield Variant("comments-only", b"# nothing here\n# at all\n")
    yield Variant("nested-5000-flow", b"version: 1\nx: " + b"[" * 5000 + b"]" * 5000 + b"\n")
    yield Variant("nested-5000-map", b"version: 1\nx: " + b"{a: " * 5000 + b"1" + b"}" * 5000)
    block = "".join("  " * i + "a:\n" for i in range(300)) + "  " * 300 + "b: 1\n"
    yield Variant("nested-300-block", block.encode())
    yield Variant("int-5000-digits", text.replace("horizon: 14", "horizon: " + "9" * 5000).encode())
    yield Variant("root-list", b"- version: 1\n")
    yield Variant("root-scalar", b"just text\n")
    yield Variant("tabs", text.replace("  path:", "\tpath:", 1).encode())
    yield Variant("duplicate-key", (text + "version: 1\n").encode())
    yield Variant("unclosed-quote", text.replace("base: main", 'base: "main').encode())
    unclosed = text.replace("country_holidays: [US]", "country_holidays: [US")
    yield Variant("unclosed-bracket", unclosed.encode())
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    bomb = "version: 1\nx:\n" + "".join("  " + ln + "\n" for ln in laughs.splitlines())
    yield Variant("alias-bomb", bomb.encode())
    yield Variant("nul-byte", text.replace("version: 1", "version: 1\x00").encode())
    yield Variant("bom-utf8-ok", b"\xef\xbb\xbf" + text.encode())


def variants() -> list[Variant]:
    out = [
        Variant(f"{'.'.join(map(str, path))}={value!r}", _edit(path, value), key)
        for path, value, key in VALUES
    ]
    return out + list(_structure())


VARIANTS = variants()


def test_the_corpus_is_large_enough() -> None:
    assert len(VARIANTS) >= 80
    assert len({v.id for v in VARIANTS}) == len(VARIANTS)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """What ``config init`` leaves: the example's exports folder exists."""
    (tmp_path / "exports").mkdir()
    return tmp_path


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.id for v in VARIANTS])
def test_config_check_refuses_a_mangled_file_clearly(
    variant: Variant, cli: Cli, folder: Path
) -> None:
    path = folder / NAME
    path.write_bytes(variant.data)
    outcome = cli("config", "check", path)
    outcome.assert_user_error_or_ok()
    if variant.id == "bom-utf8-ok":
        assert outcome.code == 0, outcome.err
        return
    outcome.assert_refused(NAME)
    lines = outcome.err.strip().splitlines()
    assert all(line.startswith(str(path.resolve())) for line in lines), outcome.err
    if variant.key is not None:
        assert re.search(rf"{re.escape(NAME)}:\d+: {re.escape(variant.key)}:", outcome.err), (
            outcome.err
        )


def test_config_init_passes_config_check_and_providers_check_as_is(
    cli: Cli, tmp_path: Path
) -> None:
    assert cli("config", "init", tmp_path / "ops").code == 0
    checked = cli("config", "check", tmp_path / "ops" / NAME)
    assert checked.code == 0, checked.err
    providers = cli("providers", "check", "--config", tmp_path / "ops" / NAME)
    assert providers.code == 0, providers.out + providers.err


def test_every_problem_is_reported_at_once_in_file_order(cli: Cli, folder: Path) -> None:
    path = folder / NAME
    path.write_text(
        "version: 1\nstore:\n  lock_timeout: .nan\nworkloads:\n  web:\n    move_cost: -5\n"
        "    allowed: ['mars:x']\nguardrails:\n  max_share_moved: 7\n  min_saving: -10\n",
        encoding="utf-8",
    )
    outcome = cli("config", "check", path)
    outcome.assert_refused()
    lines = outcome.err.strip().splitlines()
    assert [line.split(": ")[0].rsplit(":", 1)[1] for line in lines] == ["3", "6", "7", "9", "10"]
    assert "store.lock_timeout" in lines[0]
    assert "guardrails.min_saving" in lines[-1]


def test_a_line_number_is_printed_literally(cli: Cli, folder: Path) -> None:
    path = folder / NAME
    path.write_text("version: 1\n" + "# padding\n" * 98 + "bogus: 1\n", encoding="utf-8")
    outcome = cli("config", "check", path)
    outcome.assert_refused(f"{NAME}:100: bogus: unknown key")
    outcome = cli("costs", "--config", path)  # every command prints errors as given
    outcome.assert_refused(f"{NAME}:100: bogus: unknown key")


def test_other_commands_name_the_first_problem_and_count_the_rest(cli: Cli, folder: Path) -> None:
    path = folder / NAME
    path.write_text("version: 1\nforecast: {horizon: 0, interval: 2}\n", encoding="utf-8")
    outcome = cli("costs", "--config", path)
    outcome.assert_refused(f"{NAME}:2: forecast.horizon", "and 1 more problem")
    assert len(outcome.err.strip().splitlines()) == 1
