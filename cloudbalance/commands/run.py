"""``cloudbalance run`` (the scheduled job) and ``cloudbalance report`` (reports from the store)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cloudbalance.commands._common import (
    ConfigOption,
    StoreOption,
    console,
    err_console,
    parse_day,
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
        typer.Option(
            "--skip",
            help="Skip steps (comma-separated or repeated): sync, forecast, plan, apply, "
            "verify, report.",
        ),
    ] = None,
    no_sync: Annotated[
        bool,
        typer.Option(
            "--no-sync", help="Do not pull providers: forecast and plan from the store as it is."
        ),
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Run as of this day (YYYY-MM-DD, UTC): the clock a scheduler runs the day for.",
        ),
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", "--report-dir", help="Folder for the reports (default: reports/)."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Sync, forecast, plan, act, verify and report, once: the job to schedule.

    Exit codes: 0 every step ok or skipped, 3 some step failed (the others ran; see the
    report), 1 a user error stopped the run, 2 an internal error.
    """
    from cloudbalance.run import run as run_loop

    settings = settings_for(config, required=True)
    when = parse_day(as_of, "--as-of")
    with progress() as bar:
        task = bar.add_task("starting", total=None)
        result = run_loop(
            settings,
            dry_run=dry_run,
            skip=[name.strip() for item in skip or () for name in item.split(",") if name.strip()],
            sync_providers=not no_sync,
            report_dir=report_dir,
            now=when,
            progress=lambda m: bar.update(task, description=m),
            on_wait=lambda p: err_console.print(f"waiting for another run to release {p} ..."),
        )
    for step in result.steps:
        colour = {"ok": "green", "failed": "red", "skipped": "yellow"}[step.status]
        console.print(
            f"[{colour}]{step.status:<7}[/] {step.step:<9} {escape(step.detail)}", highlight=False
        )
    for warning in result.warnings:
        console.print(f"[yellow]warning[/] {escape(warning)}", highlight=False)
    if result.reports:
        console.print(f"report: {result.reports['html']}", highlight=False)
    raise typer.Exit(result.exit_code)


def report(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder (default: reports/).")
    ] = None,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Write HTML, Markdown and JSON reports from the latest forecast and plan in the store."""
    from cloudbalance import steps
    from cloudbalance.commands._common import open_store

    settings = settings_for(config, required=True)
    with open_store(settings, store) as opened:
        written = steps.report(steps.Context(settings, opened, steps.now()), folder=output)
    for kind, path in written.paths.items():
        console.print(f"{kind:<9} {path}", highlight=False)


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
