"""Data commands: ingest, costs, prices, sync, config check|init, providers list|check."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from cloudbalance.commands._common import (
    ConfigOption,
    FormatOption,
    StoreOption,
    comma_list,
    console,
    emit_frame,
    err_console,
    literal,
    open_store,
    output_file,
    parse_day,
    progress,
    settings_for,
    working,
    write_frame,
)
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
    from cloudbalance.attribution import Attribution
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
        + f" -> {literal(opened.path)}"
    )


SinceOption = Annotated[
    str | None, typer.Option("--since", metavar="DAY", help="First day (YYYY-MM-DD).")
]
UntilOption = Annotated[
    str | None, typer.Option("--until", metavar="DAY", help="Day after the last (YYYY-MM-DD).")
]


@working("totalling costs")
def costs(
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            metavar="KEY,...",
            callback=comma_list,
            help="Group by provider, cloud, account, region, service, workload, day, month "
            "or any costs column (default: cloud,workload).",
        ),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    measure: Annotated[
        Literal["EffectiveCost", "BilledCost", "ListCost"],
        typer.Option(help="EffectiveCost (amortised), BilledCost or ListCost."),
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
    groups = by or ["cloud", "workload"]
    report = currency or settings.currency.report
    with open_store(settings, store, read_only=True) as opened:
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


@working("reading prices")
def prices(
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            metavar="KIND,...",
            callback=comma_list,
            help="Only these price kinds: on_demand, spot, committed (default: all).",
        ),
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            dir_okay=False,
            callback=output_file,
            help="Write the prices file (.csv or .parquet) that `plan --prices` reads.",
        ),
    ] = None,
    fmt: FormatOption = "table",
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """The price table of the store (what `sync` pulled), to read or to give to `plan`."""
    kinds = ("on_demand", "spot", "committed")
    unknown = sorted(set(kind or ()) - set(kinds))
    if unknown:
        raise typer.BadParameter(
            f"unknown price kind {', '.join(unknown)}; use {', '.join(kinds)}",
            param_hint="'--kind'",
        )
    settings = settings_for(config)
    with open_store(settings, store, read_only=True) as opened:
        frame = opened.prices(start=parse_day(since, "--since"), end=parse_day(until, "--until"))
    if kind:
        frame = frame[frame["price_kind"].isin(kind)].reset_index(drop=True)
    if output is not None:
        write_frame(frame, output)
        err_console.print(f"wrote {len(frame):,} prices to {output}", markup=False)
        return
    if frame.empty:
        console.print("no prices in the store for that window; run `cloudbalance sync`")
        return
    emit_frame(frame, fmt, title="Prices")


def sync(
    provider: Annotated[
        list[str] | None,
        typer.Option(
            "--provider", "-p", callback=comma_list, help="Only these providers (default: all)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DAY", help="Re-pull from this day (YYYY-MM-DD)."),
    ] = None,
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Pull every configured provider incrementally; one failing does not lose the others."""
    from rich.markup import escape

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
    config: ConfigOption = None,
) -> None:
    """Validate cloudbalance.yaml completely and list every problem at once.

    One `file:line: key: message` line per problem: types, ranges, cross-field rules, and each
    provider's options through its plugin.
    """
    from cloudbalance.config import check_config

    if path is not None and config is not None and path != config:
        raise ConfigError(f"give the file once: {path} or --config {config}")
    try:
        settings = check_config(path if path is not None else config)
    except ConfigError as err:
        for problem in err.problems:  # printed literally: no markup, no emoji codes
            typer.echo(problem.location, err=True)
        raise typer.Exit(1) from err
    typer.echo(
        f"ok {settings.path}: {len(settings.providers)} provider(s), "
        f"{len(settings.workloads)} workload(s), store {settings.store_path}"
    )


@config_app.command("init")
def config_init(
    folder: Annotated[
        Path, typer.Argument(help="Folder to write cloudbalance.yaml into (or the .yaml file).")
    ] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Write the documented example configuration."""
    from cloudbalance.config import CONFIG_FILENAME, example_config

    named = folder.suffix.lower() in (".yaml", ".yml") and not folder.is_dir()
    target = folder if named else folder / CONFIG_FILENAME
    if target.exists() and not force:
        raise ConfigError(f"{target} exists; pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(example_config(), encoding="utf-8")
    # the folder the example's focus provider reads, so `providers check` passes as written
    (target.parent / "exports").mkdir(exist_ok=True)
    typer.echo(
        f"wrote {target} and {target.parent / 'exports'}/; "
        "edit it, then run `cloudbalance config check`"
    )


@providers_app.command("list")
def providers_list() -> None:
    """Installed provider plugins (entry-point group cloudbalance.providers)."""
    from importlib.metadata import entry_points

    from cloudbalance.provider import ENTRY_POINT_GROUP

    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else "?"
        console.print(f"{ep.name:<8} {ep.value:<45} {dist} {version}", markup=False)


@providers_app.command("check")
@working("checking providers")
def providers_check(config: ConfigOption = None) -> None:
    """For each configured provider: installed, credentials found, what is missing (one line)."""
    from cloudbalance.provider import ProviderCheck, get_provider

    settings = settings_for(config, required=True)
    bad = 0
    for name in settings.providers:
        try:
            result = get_provider(name, settings.provider_options(name)).check()
        except CloudBalanceError as err:
            result = ProviderCheck(name, ok=False, detail=str(err))
        bad += not result.ok
        mark = "[green]ok[/]     " if result.ok else "[red]missing[/]"
        missing = f"(needs: {result.missing})" if result.missing else ""
        detail = " ".join(part for part in (result.detail, missing.strip()) if part)
        console.print(f"{mark} {literal(name)}: {literal(detail)}", highlight=False)
    if bad:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(ingest)
    app.command()(costs)
    app.command()(prices)
    app.command()(sync)
    app.add_typer(config_app, name="config")
    app.add_typer(providers_app, name="providers")
