"""A soak of the daily loop: many simulated days of exports, faults and ``cloudbalance run``.

``cloudbalance`` runs unattended every day for months, and most of what breaks only breaks on the
second day or later. :class:`Soak` builds a real working folder (the same shape as
``cloudbalance demo``: ``cloudbalance.yaml``, ``exports/``, ``infra/`` with a local bare remote,
the store) and plays days one after the other. Each simulated day ``D``:

1. **The exports land**, in each cloud's own shape, holding the days up to ``D - 1``:
   AWS rewrites the month's Parquet file (Data Exports overwrite the billing period), Azure
   writes a new month-to-date CSV run folder, GCP writes a daily CSV.gz. Every file's
   modification time is its delivery time, so "the newest file wins" is well defined.
2. **Faults** from the schedule (:class:`Faults`, a fixed cycle of ten days):
   a cloud delivers a day late (nothing today, two days tomorrow); a cloud restates an
   earlier day (its cost lines change by a factor, delivered again in a newer file); a spot
   price spike at one location; a person edits a managed value of the infrastructure
   repository (in their own clone, pushed to the remote); ``cloudbalance run`` is killed
   (SIGTERM) in the middle of its apply, from a ``pre-push`` hook of the infra repository.
3. **Prices arrive** (the price feed: today's observations are loaded into the store).
4. ``cloudbalance run --as-of D`` runs (in this process, or as its own process while the kill
   is armed), with its reports in ``reports/D/``.

What was delivered is kept as a ledger (:meth:`Soak.expected_costs`, the newest version of every
cloud and day), so a check can compare the store with the exports without reading them back
through the code under test. Everything is generated from the seeded sample
(:mod:`cloudbalance.demo.sample`): no real data, no network.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

import pandas as pd
from ruamel.yaml import YAML

from cloudbalance.config import CONFIG_FILENAME
from cloudbalance.demo.sample import PUBLISHERS, generate_sample, write_focus_file
from cloudbalance.models import Location, Placement

__all__ = ["CLOUDS", "DayCheck", "DayResult", "Faults", "Soak"]

CLOUDS: tuple[str, ...] = ("aws", "azure", "gcp")
_CLOUD_OF = {publisher: cloud for cloud, publisher in PUBLISHERS.items()}
#: Minutes after 05:00 UTC at which each cloud delivers (they deliver at different hours).
_DELIVERY_MINUTE = {"aws": 0, "azure": 90, "gcp": 180}
#: The workloads the soak manages: one service, one spot-tolerant batch fleet.
WORKLOADS: tuple[str, ...] = ("checkout", "etl")
SPIKE_LOCATION = Location("gcp", "us-central1")


@dataclass(frozen=True)
class Faults:
    """Which fault happens on which day, as a cycle of ``period`` days (day index modulo).

    Attributes:
        late: Day in the cycle -> the cloud whose export comes a day late.
        restate: Days in the cycle on which every delivering cloud restates the day
            ``restate_back`` days before the run by ``restate_factor``.
        spike: Days in the cycle on which the spot price at :data:`SPIKE_LOCATION` is
            ``spike_factor`` times the sample's.
        person_edit: Days in the cycle on which a person changes a managed value (before the run).
        kill: Days in the cycle on which the run is armed to be killed during its push (the
            kill stays armed on the following days until a push happens).
    """

    period: int = 10
    late: dict[int, str] = field(default_factory=lambda: {1: "azure", 6: "gcp"})
    restate: tuple[int, ...] = (2, 4, 8)
    restate_back: int = 3
    restate_factor: float = 1.1
    spike: tuple[int, ...] = (2, 3)
    spike_factor: float = 4.0
    person_edit: tuple[int, ...] = (3,)
    kill: tuple[int, ...] = (2,)

    def of(self, index: int) -> list[str]:
        """The faults of day ``index`` (0-based), in words."""
        k = index % self.period
        out = []
        if k in self.late:
            out.append(f"late:{self.late[k]}")
        if k in self.restate:
            out.append("restate")
        if k in self.spike:
            out.append("spike")
        if k in self.person_edit:
            out.append("person-edit")
        if k in self.kill:
            out.append("kill-armed")
        return out


@dataclass(frozen=True)
class DayResult:
    """One simulated day.

    Attributes:
        day: The run's day (``--as-of``).
        exit_code: The run's exit code (negative: killed by that signal).
        faults: The faults injected that day.
        killed: Whether the armed kill fired during this run.
        seconds: Wall time of the day (delivery, prices and the run).
        output: The run's output (only for runs in their own process).
    """

    day: date
    exit_code: int
    faults: tuple[str, ...]
    killed: bool
    seconds: float
    output: str = ""


@dataclass(frozen=True)
class DayCheck:
    """What was wrong after a simulated day's run (every list empty: all good).

    Attributes:
        day: The run's day.
        infra: Why the infrastructure repository is not clean and pushed.
        store: Cloud days where the store differs from the newest exports.
        savings: Saving figures of commits, the store, the report and ``verify`` that differ.
    """

    day: date
    infra: tuple[str, ...]
    store: tuple[str, ...]
    savings: tuple[str, ...]


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    return done.stdout.strip()


_PERSON = {
    "GIT_AUTHOR_NAME": "A Person",
    "GIT_AUTHOR_EMAIL": "person@example.invalid",
    "GIT_COMMITTER_NAME": "A Person",
    "GIT_COMMITTER_EMAIL": "person@example.invalid",
}

_HOOK = """#!/bin/sh
# Soak fault: kill the cloudbalance run in the middle of its apply (after the commit, before
# the push), once, when the soak armed it by writing the run's pid.
marker="{marker}"
if [ -f "$marker" ]; then
    pid=$(cat "$marker")
    rm -f "$marker"
    echo "$pid" > "{fired}"
    kill -TERM "$pid"
    exit 1
fi
exit 0
"""


class Soak:
    """A working folder and the simulated days played in it.

    Args:
        folder: The working folder (created).
        start: The first simulated day (the run of that day sees data up to the day before).
        days: Number of simulated days.
        history_days: Days of exports already delivered before the first day (within the
            90 days a provider's first sync pulls).
        mode: ``commit`` (plans committed and pushed to the local bare remote).
        faults: The fault schedule.
        horizon: Forecast and plan horizon (periods of one day).
        model: Forecast model (``seasonal_naive`` keeps a simulated day light).
        seed: The sample's seed.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        start: date = date(2026, 10, 1),
        days: int = 5,
        history_days: int = 80,
        mode: Literal["commit"] = "commit",
        faults: Faults | None = None,
        horizon: int = 7,
        model: str = "seasonal_naive",
        seed: int = 7,
    ) -> None:
        self.folder = Path(folder).resolve()
        self.start = start
        self.days = days
        self.history_days = history_days
        self.mode = mode
        self.faults = faults or Faults()
        self.horizon = horizon
        self.model = model
        last = start + timedelta(days=days - 1)
        self.sample = generate_sample(end=last, days=history_days + days, seed=seed)
        costs = self.sample.costs.copy()
        costs["x_Cloud"] = costs["ProviderName"].map(_CLOUD_OF)
        costs["day"] = costs["ChargePeriodStart"].dt.normalize()
        self._truth = costs  # the newest version of every line (restatements applied)
        self._delivered: dict[str, date] = {}  # per cloud: last day delivered (inclusive)
        self._late: set[str] = set()
        self.results: list[DayResult] = []
        self.checks: list[DayCheck] = []
        self.exports = self.folder / "exports"
        self.infra = self.folder / "infra"
        self.remote = self.folder / "infra-remote.git"
        self.config = self.folder / CONFIG_FILENAME
        self._marker = self.folder / "kill.pid"
        self._fired = self.folder / "kill.fired"
        self._kill_armed = False

    # -- set-up --------------------------------------------------------------------------

    @property
    def day_list(self) -> list[date]:
        """The simulated days, in order."""
        return [self.start + timedelta(days=i) for i in range(self.days)]

    def prepare(self) -> None:
        """Write the config, the history of exports and prices, and the infrastructure repo."""
        from cloudbalance.config import load_config
        from cloudbalance.demo.run import _workload_config, init_infra_repo
        from cloudbalance.series import current_placement

        self.folder.mkdir(parents=True, exist_ok=True)
        workloads = [w for w in self.sample.workloads if w.name in WORKLOADS]
        config = {
            "version": 1,
            "store": {"path": ".cloudbalance/store.duckdb"},
            "providers": {"focus": {"paths": ["exports/"]}},
            "workload_tag": "workload",
            "workloads": {w.name: _workload_config(w) for w in workloads},
            "forecast": {"horizon": self.horizon, "interval": 0.8, "model": self.model},
            "plan": {"quantile": 0.8},
            "guardrails": {"min_confidence_commit": 0.5, "min_saving": 1.0},
            "git": {"repo": "infra", "mode": self.mode},
        }
        yaml = YAML()
        yaml.default_flow_style = False
        with self.config.open("w", encoding="utf-8") as fh:
            fh.write("# The soak's working folder: the focus provider reads exports/.\n")
            yaml.dump(config, fh)
        before = pd.Timestamp(self.start)
        history = self._truth[self._truth["day"] < before]
        for cloud in CLOUDS:
            mine = history[history["x_Cloud"] == cloud]
            for month, part in mine.groupby(mine["day"].dt.strftime("%Y-%m")):
                path = self._monthly_path(cloud, str(month))
                self._write(part, path, self.start - timedelta(days=1), cloud)
            self._delivered[cloud] = self.start - timedelta(days=1)
        settings = load_config(self.config)
        tagged = history.assign(
            x_Workload=history["Tags"].map(
                lambda t: json.loads(t).get("workload") if isinstance(t, str) else None
            )
        )
        placement: list[Placement] = list(
            current_placement(tagged, settings.workload_models(), freq="D")
        )
        init_infra_repo(self.infra, settings.workload_models(), placement)
        _git(self.folder, "init", "-q", "--bare", "--initial-branch=main", str(self.remote))
        _git(self.infra, "remote", "add", "origin", str(self.remote))
        _git(self.infra, "push", "-q", "-u", "origin", "main")
        hook = self.infra / ".git" / "hooks" / "pre-push"
        hook.write_text(_HOOK.format(marker=self._marker, fired=self._fired), encoding="utf-8")
        hook.chmod(0o755)
        self._feed_prices(self.start, first=True)

    def _monthly_path(self, cloud: str, month: str) -> Path:
        if cloud == "aws":
            return self.exports / "aws" / f"BILLING_PERIOD={month}" / "focus-00001.parquet"
        if cloud == "azure":
            return self.exports / "azure" / month / "part_0_0001.csv"
        return self.exports / "gcp" / f"focus-{month}.csv.gz"

    def _write(self, part: pd.DataFrame, path: Path, delivered: date, cloud: str) -> None:
        write_focus_file(part.drop(columns=["day"]), path)
        at = datetime(delivered.year, delivered.month, delivered.day, 5) + timedelta(
            minutes=_DELIVERY_MINUTE[cloud]
        )
        os.utime(path, (at.timestamp(), at.timestamp()))

    # -- one day -------------------------------------------------------------------------

    def _restate(self, day: date) -> list[tuple[str, date]]:
        """Change the lines of ``day - restate_back`` for every cloud delivering today."""
        target = day - timedelta(days=self.faults.restate_back)
        hit = self._truth["day"] == pd.Timestamp(target)
        changed = []
        for cloud in CLOUDS:
            if cloud in self._late or self._delivered.get(cloud, target) < target:
                continue
            rows = hit & (self._truth["x_Cloud"] == cloud)
            for column in ("EffectiveCost", "BilledCost"):
                self._truth.loc[rows, column] = (
                    self._truth.loc[rows, column] * self.faults.restate_factor
                ).round(6)
            changed.append((cloud, target))
        return changed

    def deliver(self, day: date, faults: Sequence[str]) -> None:
        """Write the exports that land on ``day`` (data up to the day before)."""
        self._late = {f.split(":", 1)[1] for f in faults if f.startswith("late:")}
        restated = self._restate(day) if "restate" in faults else []
        through = day - timedelta(days=1)
        for cloud in CLOUDS:
            if cloud in self._late:
                continue
            first = self._delivered[cloud] + timedelta(days=1)
            again = [d for c, d in restated if c == cloud]
            if first > through and not again:
                continue
            mine = self._truth[self._truth["x_Cloud"] == cloud]
            new_days = pd.date_range(first, through, freq="D")
            if cloud == "gcp":
                # a daily file: the new days, and a restated day delivered again
                wanted = set(new_days) | {pd.Timestamp(d) for d in again}
                part = mine[mine["day"].isin(wanted)]
                path = self.exports / "gcp" / "daily" / f"focus-{day:%Y%m%d}.csv.gz"
                self._write(part, path, day, cloud)
            else:
                months = {d.strftime("%Y-%m") for d in new_days} | {
                    d.strftime("%Y-%m") for d in again
                }
                for month in sorted(months):
                    part = mine[
                        (mine["day"].dt.strftime("%Y-%m") == month)
                        & (mine["day"] <= pd.Timestamp(through))
                    ]
                    if cloud == "aws":  # Data Exports rewrite the billing period's file
                        path = self._monthly_path("aws", month)
                    else:  # a new month-to-date run of the FocusCost export
                        path = self.exports / "azure" / month / f"run-{day:%Y%m%d}" / "part.csv"
                    self._write(part, path, day, cloud)
            self._delivered[cloud] = max(self._delivered[cloud], through)

    def _feed_prices(self, day: date, *, first: bool = False) -> None:
        """Load the price observations up to ``day`` (exclusive) that the store lacks."""
        from cloudbalance.config import load_config
        from cloudbalance.store import Store

        prices = self.sample.prices
        end = pd.Timestamp(day)
        start = end - pd.Timedelta(days=1)
        at = pd.to_datetime(prices["observed_at"])
        places = {
            (loc.cloud, loc.region)
            for w in self.sample.workloads
            if w.name in WORKLOADS
            for loc in w.allowed
        }
        managed = [
            (cloud, region) in places
            for cloud, region in zip(prices["ProviderName"], prices["RegionId"], strict=True)
        ]
        window = (at < end) if first else ((at >= start) & (at < end))
        chunk = prices[window & pd.Series(managed, index=prices.index)].copy()
        k = (day - self.start).days
        if not first and (k % self.faults.period) in self.faults.spike:
            spot = (
                (chunk["ProviderName"] == SPIKE_LOCATION.cloud)
                & (chunk["RegionId"] == SPIKE_LOCATION.region)
                & (chunk["price_kind"] == "spot")
            )
            chunk.loc[spot, "unit_price"] = chunk.loc[spot, "unit_price"] * self.faults.spike_factor
        if chunk.empty:
            return
        with Store.from_settings(load_config(self.config)) as store:
            # the feed stands in for a system outside cloudbalance: it reads any result a
            # store left open to the end first, so it never depends on that store bug
            store.con.execute("SELECT 1").fetchall()
            store.ingest_prices(chunk, source="price-feed")

    def _person_edit(self) -> None:
        """A person raises one managed replica count in their own clone and pushes it."""
        clone = self.folder / "person-clone"
        if clone.exists():
            shutil.rmtree(clone)
        _git(self.folder, "clone", "-q", str(self.remote), str(clone))
        path = clone / "service" / "Pulumi.prod.yaml"
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for i, line in enumerate(lines):
            if "replicas:" in line:
                head, _, tail = line.partition("replicas:")
                number = "".join(ch for ch in tail if ch.isdigit())
                rest = tail[tail.index(number) + len(number) :]
                lines[i] = f"{head}replicas: {int(number) + 1}{rest}"
                break
        path.write_text("".join(lines), encoding="utf-8")
        _git(clone, "commit", "-q", "-am", "Raise checkout by one replica by hand", env=_PERSON)
        _git(clone, "push", "-q", "origin", "HEAD:main")

    def run_day(self, index: int, *, tell: Callable[[str], None] | None = None) -> DayResult:
        """Play day ``index`` (0-based): exports, faults, prices, then ``cloudbalance run``."""
        began = time.perf_counter()
        day = self.start + timedelta(days=index)
        faults = self.faults.of(index)
        self.deliver(day, faults)
        self._feed_prices(day)
        if "person-edit" in faults:
            self._person_edit()
        if "kill-armed" in faults:
            self._kill_armed = True
        reports = self.folder / "reports" / day.isoformat()
        argv = ["run", "--as-of", day.isoformat(), "-c", str(self.config), "-o", str(reports)]
        killed = False
        output = ""
        if self._kill_armed:
            code, output, killed = self._run_process(argv)
            if killed:
                self._kill_armed = False
        else:
            from cloudbalance.cli import main

            with contextlib.chdir(self.folder):  # a scheduler runs the job in its folder
                code = main(argv)
        result = DayResult(
            day, code, tuple(faults), killed, time.perf_counter() - began, output=output
        )
        self.results.append(result)
        self.checks.append(self.check(day))
        if tell is not None:
            tell(f"{day}: exit {code} {' '.join(faults)} {result.seconds:.1f} s")
        return result

    def _run_process(self, argv: list[str]) -> tuple[int, str, bool]:
        """Run ``cloudbalance`` in its own process group with the kill armed on its pid.

        Its output goes to a file (a killed run's worker processes may keep a pipe open), and
        whatever the run started and left behind when killed is ended with its group.
        """
        self._fired.unlink(missing_ok=True)
        code = "import sys; from cloudbalance.cli import main; sys.exit(main(sys.argv[1:]))"
        log = self.folder / "run-process.log"
        with log.open("w", encoding="utf-8") as out:
            process = subprocess.Popen(
                [sys.executable, "-c", code, *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
                start_new_session=True,
            )
            self._marker.write_text(str(process.pid), encoding="utf-8")
            try:
                returncode = process.wait(timeout=900)
            finally:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
        fired = self._fired.exists()
        if not fired:
            self._marker.unlink(missing_ok=True)
        return returncode, log.read_text(encoding="utf-8"), fired

    def run(self, *, tell: Callable[[str], None] | None = None) -> list[DayResult]:
        """Prepare the folder and play every day."""
        self.prepare()
        for index in range(self.days):
            self.run_day(index, tell=tell)
        return self.results

    # -- what the checks read ------------------------------------------------------------

    def expected_costs(self) -> pd.DataFrame:
        """Per cloud and day delivered: rows and cost of the newest version of the exports."""
        parts = []
        for cloud in CLOUDS:
            mine = self._truth[
                (self._truth["x_Cloud"] == cloud)
                & (self._truth["day"] <= pd.Timestamp(self._delivered[cloud]))
            ]
            parts.append(mine)
        return _daily(pd.concat(parts, ignore_index=True))

    def stored_costs(self) -> pd.DataFrame:
        """Per cloud and day: rows and cost held in the store."""
        from cloudbalance.config import load_config
        from cloudbalance.store import Store

        with Store.from_settings(load_config(self.config)) as store:
            costs = store.costs()
        costs["x_Cloud"] = costs["x_Cloud"].fillna(costs["ProviderName"].map(_CLOUD_OF))
        costs["day"] = pd.to_datetime(costs["ChargePeriodStart"]).dt.normalize()
        return _daily(costs)

    def infra_problems(self) -> list[str]:
        """Why the infrastructure repository is not clean (empty: clean and fully pushed)."""
        problems = []
        status = _git(self.infra, "status", "--porcelain", "--untracked-files=no")
        if status:
            problems.append(f"uncommitted changes: {status}")
        head = _git(self.infra, "rev-parse", "HEAD")
        found = subprocess.run(
            ["git", "-C", str(self.remote), "merge-base", "--is-ancestor", head, "main"],
            capture_output=True,
            check=False,
        )
        if found.returncode != 0:
            problems.append(f"HEAD {head[:12]} is not pushed to the remote's main")
        for name in ("MERGE_HEAD", "REBASE_HEAD", "CHERRY_PICK_HEAD", "index.lock"):
            if (self.infra / ".git" / name).exists():
                problems.append(f".git/{name} left behind")
        return problems

    def plan_commits(self) -> dict[str, str]:
        """``Cloudbalance-Plan`` -> ``Cloudbalance-Saving`` of every plan commit on the remote."""
        from cloudbalance.gitops import parse_trailers

        out: dict[str, str] = {}
        log = _git(self.remote, "log", "--format=%H", "main").split()
        for sha in log:
            trailers = parse_trailers(_git(self.remote, "log", "-1", "--format=%B", sha))
            if "Cloudbalance-Plan" in trailers and "Cloudbalance-Saving" in trailers:
                out.setdefault(trailers["Cloudbalance-Plan"], trailers["Cloudbalance-Saving"])
        return out

    def report_plans(self) -> dict[str, tuple[float, str]]:
        """Plan id -> (expected saving, currency) as each day's JSON report shows it."""
        out: dict[str, tuple[float, str]] = {}
        for path in sorted((self.folder / "reports").glob("*/report.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            plan = data.get("plan")
            if plan:
                out[plan["plan_id"]] = (float(plan["saving"]), str(plan["currency"]))
        return out

    def store_mismatches(self) -> list[str]:
        """Cloud days where the store differs from the newest version of the exports."""
        merged = self.expected_costs().merge(
            self.stored_costs(), on=["x_Cloud", "day"], how="outer", suffixes=("_exports", "")
        )
        bad = merged[
            (merged["rows_exports"] != merged["rows"])
            | ((merged["cost_exports"] - merged["cost"]).abs() > 1e-3)
        ]
        return [
            f"{r.x_Cloud} {r.day:%Y-%m-%d}: exports {r.rows_exports} rows {r.cost_exports}, "
            f"store {r.rows} rows {r.cost}"
            for r in bad.itertuples()
        ]

    def saving_mismatches(self, day: date) -> list[str]:
        """Where the saving figures of the commits, store, report and ``verify`` disagree.

        Every plan committed shows one expected saving: its ``Cloudbalance-Saving`` trailer,
        the stored plan, the day's report and ``verify``'s record must say the same cents.
        """
        from cloudbalance.config import load_config
        from cloudbalance.exceptions import StoreError
        from cloudbalance.saving import money
        from cloudbalance.store import Store
        from cloudbalance.verify import realised_savings

        problems = []
        commits = self.plan_commits()
        report = self.folder / "reports" / day.isoformat() / "report.json"
        shown = None
        if report.exists():
            shown = json.loads(report.read_text(encoding="utf-8")).get("plan")
        with Store.from_settings(load_config(self.config)) as store:
            for plan_id, trailer in commits.items():
                try:
                    plan = store.load_plan(plan_id)
                except StoreError:
                    problems.append(f"plan {plan_id} committed but not in the store")
                    continue
                if money(plan.saving, plan.currency) != trailer:
                    problems.append(
                        f"{plan_id}: commit says {trailer}, the store's plan "
                        f"{money(plan.saving, plan.currency)}"
                    )
            if shown:
                try:
                    plan = store.load_plan(shown["plan_id"])
                    expected = money(plan.saving, plan.currency)
                except StoreError:
                    expected = commits.get(shown["plan_id"], "")
                reported = money(float(shown["saving"]), str(shown["currency"]))
                if reported != expected:
                    problems.append(f"{shown['plan_id']}: report says {reported}, plan {expected}")
            for checked in realised_savings(store):
                committed = commits.get(checked.plan_id)
                verified = money(checked.plan_saving, checked.currency)
                if committed is not None and verified != committed:
                    problems.append(
                        f"{checked.plan_id}: commit says {committed}, verify {verified}"
                    )
                if checked.periods and checked.end > datetime(day.year, day.month, day.day):
                    problems.append(f"{checked.plan_id}: verify judged periods after {day}")
        return problems

    def check(self, day: date) -> DayCheck:
        """The checks after ``day``'s run."""
        return DayCheck(
            day,
            tuple(self.infra_problems()),
            tuple(self.store_mismatches()),
            tuple(self.saving_mismatches(day)),
        )


def _daily(costs: pd.DataFrame) -> pd.DataFrame:
    frame = costs.assign(EffectiveCost=costs["EffectiveCost"].astype("float64"))
    grouped = frame.groupby(["x_Cloud", "day"], sort=True).agg(
        rows=("EffectiveCost", "size"), cost=("EffectiveCost", "sum")
    )
    grouped["cost"] = grouped["cost"].round(4)
    return grouped.reset_index()


def kill_signal_code() -> int:
    """The exit code of a run killed by the soak (SIGTERM)."""
    return -int(signal.SIGTERM)
