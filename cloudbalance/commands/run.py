"""``cloudbalance run`` (the scheduled job) and ``cloudbalance report`` (reports from the store)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloudbalance.commands._common import (
    ConfigOption,
    StoreOption,
    comma_choices,
    console,
    err_console,
    parse_day,
    progress,
    settings_for,
    working,
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
            metavar="STEP,...",
            callback=comma_choices("sync", "forecast", "plan", "apply", "verify", "report"),
            help="Skip steps (comma-separated or repeated): sync, forecast, plan, apply, "
            "verify, report.",
        ),
    ] = None,
    no_sync: Annotated[
        bool,
        typer.Option(
            "--no-sync",
            help="Skip the sync step: do not pull the providers, forecast and plan from the "
            "store as it is (same as --skip sync).",
        ),
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="DAY",
            help="Run as of this day (YYYY-MM-DD, UTC): the clock a scheduler runs the day for.",
        ),
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            "--report-dir",
            file_okay=False,
            help="Folder for the reports (default: reports/ next to the config).",
        ),
    ] = None,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Sync, forecast, plan, act, verify and report, once: the job to schedule.

    Exit codes: 0 every step ok or skipped, 3 some step failed (the others ran; see the
    report), 1 a user error stopped the run, 2 an internal error.
    """
    from rich.markup import escape

    from cloudbalance.run import run as run_loop

    settings = settings_for(config, required=True, store=store)
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


@working("writing reports")
def report(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", file_okay=False, help="Folder (default: reports/ next to the config)."
        ),
    ] = None,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Write HTML, Markdown and JSON reports from the latest forecast and plan in the store."""
    from cloudbalance import steps
    from cloudbalance.commands._common import open_store

    settings = settings_for(config, required=True)
    with open_store(settings, store, read_only=True) as opened:
        written = steps.report(steps.Context(settings, opened, steps.now()), folder=output)
    for kind, path in written.paths.items():
        console.print(f"{kind:<9} {path}", highlight=False)


schedule_app = typer.Typer(help="Run cloudbalance on a schedule.", no_args_is_help=True)


@schedule_app.command("init")
def schedule_init(
    folder: Annotated[
        Path | None,
        typer.Argument(
            help="Folder holding cloudbalance.yaml (default: the config's, else this one).",
            file_okay=False,
        ),
    ] = None,
    scheduler: Annotated[
        list[str] | None,
        typer.Option(
            "--for",
            metavar="SCHEDULER,...",
            callback=comma_choices("github", "kubernetes", "cron"),
            help="github, kubernetes or cron (default: all three).",
        ),
    ] = None,
    cron: Annotated[
        str, typer.Option(metavar="CRON", help="When, as a cron expression (UTC).")
    ] = "17 6 * * *",
    image: Annotated[
        str, typer.Option(help="Container image for the Kubernetes CronJob.")
    ] = "ghcr.io/your-org/cloudbalance:latest",
    config: ConfigOption = None,
) -> None:
    """Write a GitHub Actions workflow, a Kubernetes CronJob and a crontab for the daily run."""
    from cloudbalance.config import CONFIG_FILENAME, find_config
    from cloudbalance.exceptions import ConfigError
    from cloudbalance.schedule import write_schedules

    if config is not None and config.name != CONFIG_FILENAME:
        raise ConfigError(
            f"{config}: the schedules run `cloudbalance run` where {CONFIG_FILENAME} is; "
            f"name the file {CONFIG_FILENAME}"
        )
    if folder is not None and config is not None and folder.resolve() != config.parent.resolve():
        raise ConfigError(f"give the folder or --config, not both ({folder}, {config})")
    found = config if config is not None else (find_config() if folder is None else None)
    where = folder if folder is not None else (found.parent if found is not None else Path("."))
    for written in write_schedules(where, scheduler, cron=cron, image=image):
        console.print(f"{written.scheduler:<10} {written.path}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(run)
    app.command()(report)
    app.add_typer(schedule_app, name="schedule")
