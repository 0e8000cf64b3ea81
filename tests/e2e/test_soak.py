"""The daily loop over several simulated days, in a real working folder (the soak).

Each day new FOCUS exports land from the three clouds (AWS Parquet, Azure CSV, GCP CSV.gz) with
restatements, a cloud a day late, a spot price spike, a person's edit of a managed value and a
run killed in the middle of its apply; ``cloudbalance run --as-of DAY`` runs every day (see
:mod:`cloudbalance.demo.soak`). ``benchmarks/soak.py`` plays 60 days of the same.

A person's edit of a managed value is held (left as they set it, with a note) while the other
workloads' changes go ahead, so every run exits 0 but the killed one, and the next day heals it.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import subprocess
from collections.abc import Iterator
from datetime import timedelta

import pandas as pd
import pytest

from cloudbalance.demo.soak import CLOUDS, Soak

pytestmark = pytest.mark.slow

DAYS = 5

#: A person's edit of a value the last plan wrote makes every later apply refuse (exit 3).


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Soak]:
    folder = tmp_path_factory.mktemp("soak")
    home = folder / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Operator\n\temail = ops@example.com\n[init]\n\tdefaultBranch = main\n"
        "[commit]\n\tgpgsign = false\n",
        encoding="utf-8",
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HOME", str(home))
        env.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
        env.setenv("GIT_CONFIG_NOSYSTEM", "1")
        played = Soak(folder / "work", days=DAYS)
        played.run()
        yield played


def test_the_days_carry_every_fault_in_each_cloud_s_format(soak: Soak) -> None:
    """The harness itself: what landed is what the scenario promises."""
    faults = [f for day in soak.results for f in day.faults]
    assert "late:azure" in faults
    assert faults.count("restate") == 2
    assert {"spike", "person-edit", "kill-armed"} <= set(faults)
    exports = soak.exports
    assert list(exports.glob("aws/BILLING_PERIOD=*/focus-00001.parquet"))
    assert list(exports.glob("azure/*/run-*/part.csv"))
    assert list(exports.glob("gcp/daily/focus-*.csv.gz"))
    # a restated day comes again in a newer file than the one that first delivered it
    restated = [r.day for r in soak.results if "restate" in r.faults]
    again = restated[0] - timedelta(days=soak.faults.restate_back)
    daily = pd.read_csv(exports / "gcp" / "daily" / f"focus-{restated[0]:%Y%m%d}.csv.gz")
    assert again.isoformat() in set(daily["ChargePeriodStart"].str[:10])
    assert set(soak.expected_costs()["x_Cloud"]) == set(CLOUDS)
    # the person's edit is on the remote, by the person, without a plan trailer
    authors = subprocess.run(
        ["git", "-C", str(soak.remote), "log", "--format=%an|%s", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "A Person|Raise checkout by one replica by hand" in authors


def test_every_run_exits_0_but_the_killed_one_which_recovers_the_next_day(soak: Soak) -> None:
    killed = [r for r in soak.results if r.killed]
    assert len(killed) == 1, "the armed kill fired in no run (no apply pushed anything)"
    assert killed[0].exit_code in (-int(signal.SIGTERM), 128 + int(signal.SIGTERM), 3)
    codes = {str(r.day): r.exit_code for r in soak.results if not r.killed}
    assert codes == dict.fromkeys(codes, 0)


def test_the_store_equals_the_exports_newest_file_wins_every_day(soak: Soak) -> None:
    assert {str(c.day): list(c.store) for c in soak.checks} == {str(c.day): [] for c in soak.checks}


def test_the_infra_repo_is_clean_and_pushed_after_every_run_but_the_killed_one(
    soak: Soak,
) -> None:
    killed = {r.day for r in soak.results if r.killed}
    problems = {str(c.day): list(c.infra) for c in soak.checks if c.day not in killed}
    assert problems == {day: [] for day in problems}


def test_commits_reports_and_verify_show_the_same_saving(soak: Soak) -> None:
    from cloudbalance.cli import main

    assert soak.plan_commits(), "no plan was committed in the soak"
    assert {str(c.day): list(c.savings) for c in soak.checks} == {
        str(c.day): [] for c in soak.checks
    }
    # `cloudbalance verify` as of the last day says what the last run's verify step recorded
    last = soak.results[-1].day
    recorded = _latest_verifications(soak)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.chdir(soak.folder):
        code = main(["verify", "--json", "--as-of", last.isoformat(), "-c", str(soak.config)])
    assert code == 0
    again = {
        v["plan_id"]: (v["status"], v["periods"], v["saving"], v["expected"])
        for v in json.loads(buffer.getvalue())["verifications"]
    }
    assert again == recorded


def _latest_verifications(soak: Soak) -> dict[str, tuple[str, int, float, float]]:
    from cloudbalance.config import load_config
    from cloudbalance.store import Store
    from cloudbalance.verify import realised_savings

    with Store.from_settings(load_config(soak.config)) as store:
        store.con.execute("SELECT 1").fetchall()
        found = realised_savings(store)
    return {
        v.plan_id: (v.status, v.periods, round(v.saving, 2), round(v.expected, 2)) for v in found
    }


def test_no_verification_claims_a_period_without_cost_data(soak: Soak) -> None:
    claims = [problem for c in soak.checks for problem in c.savings if "judged periods" in problem]
    assert claims == []


def test_every_run_that_was_not_killed_wrote_its_reports(soak: Soak) -> None:
    written = {p.parent.name for p in (soak.folder / "reports").glob("*/report.json")}
    assert {str(r.day) for r in soak.results if not r.killed} <= written
