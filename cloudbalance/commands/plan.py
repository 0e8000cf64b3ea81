"""``cloudbalance plan``: place every workload's replicas from files, write the plan as JSON.

Inputs are plain files so any step can be brought by the user: the demand forecast (CSV or
Parquet, forecast columns, ``unique_id`` = workload), prices (CSV or Parquet, prices columns),
the current placement (CSV ``workload, location, replicas`` with ``location`` = ``cloud:region``,
or ``workload, cloud, region, replicas``; or JSON, a list of placements) and the workloads, from
``cloudbalance.yaml`` or from a JSON/YAML file with ``workloads`` (mapping name -> spec, or list
of specs with ``name``) and optional ``quotas``, ``budgets`` and ``commitments``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cloudbalance.commands._common import ConfigOption, StoreOption, working
from cloudbalance.exceptions import ConfigError, Issue, SchemaError
from cloudbalance.models import Location, Placement, Workload

if TYPE_CHECKING:
    import pandas as pd

    from cloudbalance.models import Plan
    from cloudbalance.plan import Budget, Commitment, Quota

__all__ = ["read_current", "read_forecast", "read_frame", "read_workloads", "register"]

#: The unit of each forecast kind (the ``kind`` column written by ``cloudbalance forecast``).
_KIND_UNITS = {"demand": "replicas", "cost": "money", "cloud_cost": "money", "price": "unit prices"}

_WORKLOAD_KEYS = {
    "name",
    "vcpus",
    "memory_gib",
    "allowed",
    "min_locations",
    "max_share",
    "max_change",
    "move_cost",
    "spot",
    "demand_per_replica",
    "stack",
    "data_location",
    "data_gb",
    "preference",
}


def read_frame(path: Path, frame: str) -> pd.DataFrame:
    """Read a CSV (text columns, validated later) or Parquet file.

    Raises:
        SchemaError: Missing, unreadable or of an unknown type (naming the file).
    """
    import pandas as pd

    if not path.is_file():
        raise SchemaError(frame, [Issue("file not found", file=str(path))])
    name = path.name.lower()
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise SchemaError(frame, [Issue(f"cannot be read: {err}", file=str(path))]) from err
    raise SchemaError(frame, [Issue("unknown file type; use .csv or .parquet", file=str(path))])


def read_forecast(path: Path, kind: str, *, option: str) -> pd.DataFrame:
    """Read a forecast file and refuse one of another kind (money given as replicas).

    A file without a ``kind`` column (a forecast made elsewhere) is taken as given.

    Raises:
        SchemaError: The file cannot be read, or its ``kind`` is not ``kind`` (naming the row).
    """
    frame = read_frame(path, "forecast")
    if "kind" not in frame.columns:
        return frame
    given = frame["kind"].astype(str).str.strip().str.lower()
    wrong = given != kind
    if wrong.any():
        row = int(wrong.to_numpy().argmax())
        other = str(given.iat[row])
        unit = _KIND_UNITS.get(other, "an unknown unit")
        raise SchemaError(
            "forecast",
            [
                Issue(
                    f"{option} needs a {kind} forecast ({_KIND_UNITS[kind]}) but this is a "
                    f"{other} forecast ({unit}); make one with "
                    f"`cloudbalance forecast --kind {kind}`",
                    column="kind",
                    row=row + 1,
                    file=str(path),
                    value=other,
                )
            ],
        )
    return frame.drop(columns="kind")


def read_current(path: Path) -> list[Placement]:
    """Read the current placement (CSV/Parquet or JSON).

    Raises:
        SchemaError: Missing columns or bad values, naming the file and row.
    """
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
            return [Placement.from_dict(item) for item in data]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SchemaError(
                "placement", [Issue(f"not a JSON list of placements: {err}", file=str(path))]
            ) from err
    frame = read_frame(path, "placement")
    issues: list[Issue] = []
    has_location = "location" in frame.columns
    needed = ["workload", "replicas"] + (["location"] if has_location else ["cloud", "region"])
    for col in needed:
        if col not in frame.columns:
            issues.append(Issue("required column is missing", column=col, file=str(path)))
    if issues:
        raise SchemaError("placement", issues)
    out: list[Placement] = []
    for row_no, row in enumerate(frame.to_dict("records"), start=1):
        try:
            loc = (
                Location.parse(str(row["location"]))
                if has_location
                else Location(str(row["cloud"]).strip().lower(), str(row["region"]).strip())
            )
            replicas = int(float(row["replicas"]))
            if replicas < 0:
                raise ValueError("negative replicas")
        except ValueError as err:
            issues.append(Issue(str(err), row=row_no, file=str(path)))
            continue
        out.append(Placement(str(row["workload"]).strip(), loc, replicas))
    if issues:
        raise SchemaError("placement", issues)
    return out


def _workload(name: str, spec: Mapping[str, Any], file: str) -> Workload:
    unknown = sorted(set(spec) - _WORKLOAD_KEYS - {"replica", "match"})
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)}", file=file, key=f"workloads.{name}"
        )
    values = {k: v for k, v in spec.items() if k in _WORKLOAD_KEYS and k != "name"}
    replica = spec.get("replica") or {}
    values.setdefault("vcpus", replica.get("vcpus", 1.0))
    values.setdefault("memory_gib", replica.get("memory_gib", 2.0))
    try:
        values["allowed"] = tuple(Location.parse(str(s)) for s in values.get("allowed", ()))
        if values.get("data_location"):
            values["data_location"] = Location.parse(str(values["data_location"]))
        values["preference"] = tuple(
            (Location.parse(str(k)), float(v)) for k, v in (values.get("preference") or {}).items()
        )
        return Workload(name=name, **values)
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err), file=file, key=f"workloads.{name}") from err


def read_workloads(
    path: Path,
) -> tuple[list[Workload], list[Quota], list[Budget], list[Commitment]]:
    """Read workloads and constraints from a JSON or YAML file (see the module docstring).

    Raises:
        ConfigError: The file is missing, malformed, or a spec is wrong (naming the key).
    """
    from cloudbalance.plan import Budget, Commitment, Quota

    file = str(path)
    if not path.is_file():
        raise ConfigError("file not found", file=file)
    try:
        text = path.read_text()
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            from ruamel.yaml import YAML

            data = YAML(typ="safe").load(text)
    except Exception as err:  # ruamel raises many unrelated types for bad YAML
        raise ConfigError(f"cannot be read: {err}", file=file) from err
    if not isinstance(data, Mapping) or "workloads" not in data:
        raise ConfigError("expected a mapping with a 'workloads' key", file=file)
    raw = data["workloads"]
    workloads: list[Workload] = []
    if isinstance(raw, Mapping):
        workloads = [_workload(str(n), spec or {}, file) for n, spec in raw.items()]
    elif isinstance(raw, Sequence):
        for k, spec in enumerate(raw):
            if not isinstance(spec, Mapping) or "name" not in spec:
                raise ConfigError("each workload needs a name", file=file, key=f"workloads[{k}]")
            workloads.append(_workload(str(spec["name"]), spec, file))
    else:
        raise ConfigError("'workloads' must be a mapping or a list", file=file, key="workloads")
    try:
        quotas = [Quota.from_dict(q) for q in data.get("quotas") or ()]
        budgets = [Budget.from_dict(b) for b in data.get("budgets") or ()]
        commitments = [Commitment.from_dict(c) for c in data.get("commitments") or ()]
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"bad quota, budget or commitment: {err}", file=file) from err
    return workloads, quotas, budgets, commitments


def _print_plan(plan: Plan, out: Path | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
    if not console.is_terminal:  # piped or captured: do not wrap reasons at 80 columns
        console = Console(soft_wrap=True, width=200)
    table = Table(
        title=(
            f"plan {plan.plan_id} from {plan.period_start:%Y-%m-%d} "
            f"({plan.horizon} x {plan.period})"
        )
    )
    for name, justify in (
        ("workload", "left"),
        ("location", "left"),
        ("before", "right"),
        ("after", "right"),
        ("saving", "right"),
        ("confidence", "right"),
        ("reason", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for m in plan.moves:
        table.add_row(
            m.workload,
            m.location.key,
            str(m.before),
            str(m.after),
            f"{m.saving:,.2f}",
            f"{m.confidence:.0%}",
            m.reason,
        )
    console.print(table)
    console.print(
        f"cost with the plan {plan.expected_cost:,.2f} {plan.currency}, without "
        f"{plan.baseline_cost:,.2f}: saving {plan.saving:,.2f} {plan.currency}; "
        f"confidence {plan.confidence:.0%}",
        highlight=False,
    )
    for note in plan.notes:
        console.print(f"note: {note}", highlight=False)
    if out is not None:
        console.print(f"plan written to {out}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``plan`` to ``app``."""

    @app.command("plan")
    @working("planning")
    def plan_command(
        demand: Annotated[
            Path,
            typer.Option(
                "--demand",
                "-d",
                help="Demand forecast in replicas (CSV/Parquet): `forecast --kind demand`.",
            ),
        ],
        prices: Annotated[
            Path,
            typer.Option("--prices", "-p", help="Prices (CSV/Parquet): `cloudbalance prices -o`."),
        ],
        current: Annotated[
            Path | None,
            typer.Option("--current", help="Current placement (CSV/Parquet/JSON)."),
        ] = None,
        workloads: Annotated[
            Path | None,
            typer.Option(
                "--workloads",
                "-w",
                help="Workloads (+ quotas, budgets, commitments) as JSON/YAML; default: config.",
            ),
        ] = None,
        config: ConfigOption = None,
        store: StoreOption = None,
        accuracy: Annotated[
            Path | None, typer.Option("--accuracy", help="Backtest accuracy (CSV/Parquet).")
        ] = None,
        price_forecast: Annotated[
            Path | None, typer.Option("--price-forecast", help="Forecast of unit prices.")
        ] = None,
        quantile: Annotated[
            float | None,
            typer.Option("--quantile", "-q", min=0.0, max=1.0, help="Demand quantile to serve."),
        ] = None,
        horizon: Annotated[
            int | None, typer.Option("--horizon", min=1, help="Periods to plan (default: all).")
        ] = None,
        min_saving: Annotated[
            float | None, typer.Option("--min-saving", help="Minimum saving (currency).")
        ] = None,
        min_saving_pct: Annotated[
            float | None,
            typer.Option("--min-saving-pct", help="Minimum saving, fraction of cost (0.02 = 2%)."),
        ] = None,
        gap: Annotated[
            float | None, typer.Option("--gap", min=0.0, help="Optimality gap (0.005 = 0.5%).")
        ] = None,
        time_limit: Annotated[
            float, typer.Option("--time-limit", min=0.0, help="Solver time limit (s).")
        ] = 120.0,
        out: Annotated[
            Path | None,
            typer.Option(
                "--output",
                "-o",
                dir_okay=False,
                help="Plan JSON to write (default: plan-<id>.json).",
            ),
        ] = None,
        save: Annotated[
            bool, typer.Option("--save/--no-save", help="Also keep the plan in the store.")
        ] = False,
    ) -> None:
        """Plan replicas per workload, location and period; write the plan JSON."""
        from cloudbalance.commands._common import open_store, settings_for
        from cloudbalance.plan import Egress
        from cloudbalance.plan import plan as make_plan

        settings = settings_for(config)
        if workloads is not None:
            specs, quotas, budgets, commitments = read_workloads(workloads)
        else:
            specs = settings.workload_models()
            quotas = []
            budgets = []
            commitments = []
            from cloudbalance.budgets import planner_budgets

            quotas = list(settings.plan.quotas)
            budgets = planner_budgets(settings)
            if not specs:
                raise ConfigError(
                    "no workloads: give --workloads or configure them in cloudbalance.yaml"
                )
        demand_frame = read_forecast(demand, "demand", option="--demand")
        price_frame = (
            read_forecast(price_forecast, "price", option="--price-forecast")
            if price_forecast is not None
            else None
        )
        result = make_plan(
            demand_frame,
            read_frame(prices, "prices"),
            specs,
            read_current(current) if current is not None else [],
            quantile=quantile if quantile is not None else settings.plan.quantile,
            price_forecast=price_frame,
            accuracy=read_frame(accuracy, "accuracy") if accuracy is not None else None,
            quotas=quotas,
            budgets=budgets,
            commitments=commitments,
            horizon=horizon,
            min_saving=min_saving if min_saving is not None else settings.guardrails.min_saving,
            min_saving_pct=(
                min_saving_pct if min_saving_pct is not None else settings.guardrails.min_saving_pct
            ),
            hold=settings.plan.hold,
            hold_quantile=settings.plan.hold_quantile,
            egress=Egress.from_dict(settings.plan.egress),
            max_gap=gap if gap is not None else settings.plan.max_gap,
            time_limit=time_limit,
        )
        target = out if out is not None else Path(f"plan-{result.plan_id}.json")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(result.to_json() + "\n")
        if save:
            with open_store(settings, store) as opened:
                opened.save_plan(result)
        _print_plan(result, target)
