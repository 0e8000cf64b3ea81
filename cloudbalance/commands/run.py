"""``cloudbalance run`` (the scheduled job) and ``cloudbalance report`` (reports from the store)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from cloudbalance.commands._common import (
    ConfigOption,
    console,
    err_console,
    progress,
    settings_for,
)


def run(
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Compute and report everything; change nothing in Git."),
    ] = False,
    skip: Annotated[
        list[str] | None,
        typer.Option("--skip", help="Skip a step: sync, forecast, plan, apply, verify, report."),
    ] = None,
    no_sync: Annotated[
        bool, typer.Option("--no-sync", help="Use the store as it is; do not pull providers.")
    ] = False,
    report_dir: Annotated[
        Path | None, typer.Option(help="Where reports go (default: reports/ next to the config).")
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Run as of this day (YYYY-MM-DD, UTC midnight) instead of now: a scheduler "
            "catching up, or a replay.",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Sync, forecast, plan, act and report, once: the job to schedule.

    Exit codes: 0 every step ok or skipped, 3 some step failed (the others ran; see the
    report), 1 a user error stopped the run, 2 an internal error.
    """
    from cloudbalance.commands.policy import _day
    from cloudbalance.run import run as run_loop

    day = _day(as_of, option="--as-of")
    settings = settings_for(config, required=True)
    with progress() as bar:
        task = bar.add_task("starting", total=None)
        result = run_loop(
            settings,
            dry_run=dry_run,
            skip=skip or (),
            sync_providers=not no_sync,
            report_dir=report_dir,
            now=datetime(day.year, day.month, day.day) if day is not None else None,
            progress=lambda m: bar.update(task, description=m),
            on_wait=lambda p: err_console.print(f"waiting for another run to release {p} ..."),
        )
    for step in result.steps:
        colour = {"ok": "green", "failed": "red", "skipped": "yellow"}[step.status]
        console.print(
            f"[{colour}]{step.status:<7}[/] {step.step:<9} {step.detail}", highlight=False
        )
    if result.reports:
        console.print(f"report: {result.reports['html']}")
    raise typer.Exit(result.exit_code)


def report(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder (default: reports/).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Write HTML, Markdown and JSON reports from the latest forecast and plan in the store."""
    import pandas as pd

    from cloudbalance.commands._common import open_store
    from cloudbalance.report import ChartGroup, ReportData, write_reports
    from cloudbalance.run import strip_prefix
    from cloudbalance.series import cost_series

    settings = settings_for(config, required=True)
    with open_store(settings) as store:
        costs = store.costs()
        forecast, accuracy, spikes = store.latest_forecast()
        plans = store.plans()
        plan = store.load_plan(str(plans.iloc[0]["plan_id"])) if not plans.empty else None
    groups = []
    for prefix, title, by in (
        ("cost:", "Cost per workload", "workload"),
        ("cloud:", "Cost per cloud", "cloud"),
    ):
        history = (
            cost_series(costs, by=by)
            if not costs.empty
            else pd.DataFrame(columns=["unique_id", "ds", "y"])
        )
        groups.append(ChartGroup(title, "USD/day", history, strip_prefix(forecast, prefix)))
    now = datetime.now(UTC).replace(tzinfo=None)
    if not spikes.empty:
        spikes = spikes.assign(
            unique_id=spikes["unique_id"].astype(str).str.split(":", n=1).str[-1]
        )
    data = ReportData(
        title=f"cloudbalance forecast {now:%Y-%m-%d}",
        generated_at=now,
        groups=groups,
        accuracy=accuracy,
        spikes=spikes,
        plan=plan,
    )
    paths = write_reports(data, output or settings.resolve("reports"))
    for kind, path in paths.items():
        console.print(f"{kind:<9} {path}")


schedule_app = typer.Typer(help="Run cloudbalance on a schedule.", no_args_is_help=True)


@schedule_app.command("init")
def schedule_init(
    folder: Annotated[Path, typer.Argument(help="Folder holding cloudbalance.yaml.")] = Path("."),
    scheduler: Annotated[
        list[str] | None,
        typer.Option("--for", help="github, kubernetes or cron (default: all three)."),
    ] = None,
    cron: Annotated[str, typer.Option(help="When, as a cron expression (UTC).")] = "17 6 * * *",
    image: Annotated[
        str, typer.Option(help="Container image for the Kubernetes CronJob.")
    ] = "ghcr.io/your-org/cloudbalance:latest",
) -> None:
    """Write a GitHub Actions workflow, a Kubernetes CronJob and a crontab for the daily run."""
    from cloudbalance.schedule import write_schedules

    for written in write_schedules(folder, scheduler, cron=cron, image=image):
        console.print(f"{written.scheduler:<10} {written.path}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(run)
    app.command()(report)
    app.add_typer(schedule_app, name="schedule")
