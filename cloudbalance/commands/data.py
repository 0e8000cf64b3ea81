"""Data commands: ingest, costs, sync, config check|init, providers list|check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cloudbalance.attribution import Attribution
from cloudbalance.commands._common import (
    ConfigOption,
    FormatOption,
    StoreOption,
    console,
    emit_frame,
    open_store,
    parse_day,
    progress,
    settings_for,
)
from cloudbalance.config import CONFIG_FILENAME, example_config, load_config
from cloudbalance.exceptions import CloudBalanceError, ConfigError

config_app = typer.Typer(help="Check or create cloudbalance.yaml.", no_args_is_help=True)
providers_app = typer.Typer(
    help="Installed cost providers and their credentials.", no_args_is_help=True
)


def ingest(
    paths: Annotated[
        list[str],
        typer.Argument(help="FOCUS files (.parquet, .csv, .csv.gz), globs or folders."),
    ],
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Load FOCUS exports from any cloud into the store (idempotent: re-loads replace days)."""
    from cloudbalance.providers.focus import FocusReader

    settings = settings_for(config)
    attribution = Attribution(settings.workload_tag, settings.workload_models())
    with open_store(settings, store) as opened, progress() as bar:
        task = bar.add_task("reading", total=None)
        reader = FocusReader(opened.con, progress=lambda m: bar.update(task, description=m))
        result = reader.ingest(opened, paths, attribution=attribution)
    console.print(
        f"loaded [bold]{result.rows:,}[/] rows from {len(result.sources)} file(s) "
        f"covering {result.days:,} provider-account-days in {result.seconds:.1f}s"
        + (f"; replaced {result.replaced:,} rows of earlier loads" if result.replaced else "")
        + (f"; {result.superseded:,} rows superseded by newer files" if result.superseded else "")
        + f" -> {opened.path}"
    )


def costs(
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="Comma-separated: provider, cloud, account, region, service, "
            "workload, day, month (or any costs column).",
        ),
    ] = "cloud,workload",
    since: Annotated[str | None, typer.Option(help="First day (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option(help="Day after the last (YYYY-MM-DD).")] = None,
    measure: Annotated[
        str, typer.Option(help="EffectiveCost (amortised), BilledCost or ListCost.")
    ] = "EffectiveCost",
    currency: Annotated[
        str | None,
        typer.Option(help="Convert into this currency with the config's currency.rates."),
    ] = None,
    fmt: FormatOption = "table",
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Totals from the store, by any breakdown; never summed across currencies."""
    settings = settings_for(config)
    groups = [g.strip() for g in by.split(",") if g.strip()]
    report = currency or settings.currency.report
    with open_store(settings, store) as opened:
        frame = opened.summary(
            groups,
            start=parse_day(since, "--since"),
            end=parse_day(until, "--until"),
            measure=measure,
            rates=settings.currency.rates,
            report_currency=report,
        )
    if frame.empty:
        console.print("no cost lines in the store for that window; run `cloudbalance ingest`")
        return
    emit_frame(frame, fmt, title=f"{measure} by {', '.join(groups)}")


def sync(
    provider: Annotated[
        list[str] | None, typer.Option("--provider", "-p", help="Only this provider.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Re-pull from this day (YYYY-MM-DD).")] = None,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Pull every configured provider incrementally; one failing does not lose the others."""
    from cloudbalance import steps

    settings = settings_for(config, required=True)
    if not settings.providers:
        raise ConfigError(
            "no providers configured; add them under `providers:`",
            file=settings.path,
            key="providers",
        )
    with open_store(settings, store) as opened, progress() as bar:
        task = bar.add_task("syncing", total=None)
        ctx = steps.Context(
            settings,
            opened,
            steps.now(),
            tell=lambda m: bar.update(task, description=m),
        )
        result = steps.sync(ctx, names=provider, since=parse_day(since, "--since"))
    for r in result.providers:
        if r.ok:
            console.print(
                f"[green]ok[/]     {r.provider}: {r.rows:,} cost rows"
                f" ({r.start:%Y-%m-%d} .. {r.end:%Y-%m-%d}), {r.prices:,} prices"
                + (f", {r.replaced:,} restated rows replaced" if r.replaced else "")
            )
        else:
            console.print(f"[red]failed[/] {r.provider}: {escape(str(r.error))}", highlight=False)
    if result.freshness:
        days = ", ".join(f"{f.cloud} {f.as_of:%Y-%m-%d}" for f in result.freshness)
        console.print(f"data as of {days}", highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning[/] {escape(warning)}", highlight=False)
    if result.status == "failed":
        raise typer.Exit(1)


@config_app.command("check")
def config_check(
    path: Annotated[Path | None, typer.Argument(help="The file (default: nearest).")] = None,
) -> None:
    """Validate cloudbalance.yaml: unknown keys and wrong types are reported with their line."""
    settings = load_config(path)
    console.print(
        f"[green]ok[/] {settings.path}: {len(settings.providers)} provider(s), "
        f"{len(settings.workloads)} workload(s), store {settings.store_path}"
    )


@config_app.command("init")
def config_init(
    folder: Annotated[Path, typer.Argument(help="Where to write cloudbalance.yaml.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write the documented example configuration."""
    target = folder / CONFIG_FILENAME
    if target.exists() and not force:
        raise ConfigError(f"{target} exists; pass --force to overwrite it")
    folder.mkdir(parents=True, exist_ok=True)
    target.write_text(example_config(), encoding="utf-8")
    console.print(f"wrote {target}; edit it, then run `cloudbalance config check`")


@providers_app.command("list")
def providers_list() -> None:
    """Installed provider plugins (entry-point group ``cloudbalance.providers``)."""
    from importlib.metadata import entry_points

    from cloudbalance.provider import ENTRY_POINT_GROUP

    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else "?"
        console.print(f"{ep.name:<8} {ep.value:<45} {dist} {version}", highlight=False)


@providers_app.command("check")
def providers_check(config: ConfigOption = None) -> None:
    """For each configured provider: installed, credentials found, what is missing (one line)."""
    from cloudbalance.provider import ProviderCheck, get_provider

    settings = settings_for(config, required=True)
    bad = 0
    for name, options in settings.providers.items():
        try:
            result = get_provider(name, options).check()
        except CloudBalanceError as err:
            result = ProviderCheck(name, ok=False, detail=str(err))
        bad += not result.ok
        mark = "[green]ok[/]     " if result.ok else "[red]missing[/]"
        missing = f"(needs: {result.missing})" if result.missing else ""
        detail = " ".join(part for part in (result.detail, missing.strip()) if part)
        console.print(f"{mark} {name}: {detail}", highlight=False)
    if bad:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(ingest)
    app.command()(costs)
    app.command()(sync)
    app.add_typer(config_app, name="config")
    app.add_typer(providers_app, name="providers")
