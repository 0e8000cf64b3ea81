"""``cloudbalance budgets`` (where spend is heading) and ``cloudbalance notify test``."""

from __future__ import annotations

from typing import Annotated

import typer

from cloudbalance.commands._common import (
    ConfigOption,
    FormatOption,
    StoreOption,
    console,
    err_console,
    settings_for,
)

notify_app = typer.Typer(help="Notifications: check the configured channels.", no_args_is_help=True)


def budgets(
    fmt: FormatOption = "table",
    config: ConfigOption = None,
    store: StoreOption = None,
) -> None:
    """Budgets: spent this period, projected end of period, chance of crossing 50/75/90/100%."""
    import pandas as pd

    from cloudbalance.budgets import evaluate_budgets
    from cloudbalance.commands._common import emit_frame, open_store
    from cloudbalance.exceptions import ConfigError

    settings = settings_for(config, required=True)
    if not settings.budgets:
        raise ConfigError(
            "no budget configured: add a `budgets:` list to cloudbalance.yaml (docs/budgets.md)",
            key="budgets",
        )
    with open_store(settings, store, read_only=True) as opened:
        statuses = evaluate_budgets(settings, opened)
    rows = []
    for s in statuses:
        row: dict[str, object] = {
            "budget": s.budget.label,
            "from": f"{s.start:%Y-%m-%d}",
            "amount": s.budget.amount,
            "spent": s.actual,
            "projected": s.projected,
            "range": f"{s.lower:,.0f}-{s.upper:,.0f}",
        }
        row.update({f">{t:.0%}": f"{p:.0%}" for t, p in s.probabilities.items()})
        rows.append(row)
    if fmt == "json":
        import json
        import sys

        sys.stdout.write(json.dumps([s.to_dict() for s in statuses], indent=2) + "\n")
        return
    as_of = statuses[0].as_of if statuses else None
    currency = statuses[0].currency if statuses else ""
    title = f"Budgets ({currency}), data as of {as_of:%Y-%m-%d %H:%M} UTC"
    emit_frame(pd.DataFrame(rows), fmt, title=title)
    if fmt == "table":
        for s in statuses:
            err_console.print(
                f"{s.budget.label}: projected {s.projected:,.2f} {s.currency} by {s.end:%Y-%m-%d} "
                f"({s.interval:.0%} range {s.lower:,.2f}-{s.upper:,.2f}); {s.basis}",
                highlight=False,
            )


@notify_app.command("test")
def notify_test_cmd(
    channel: Annotated[
        list[str] | None, typer.Option("--channel", help="Only this channel (repeatable).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Send a sample message to each configured channel; exit 1 when one fails."""
    from cloudbalance.notify import notify_test

    settings = settings_for(config, required=True)
    results = notify_test(settings, channels=channel or ())
    for result in results:
        if result.status == "sent":
            console.print(f"[green]sent[/]   {result.channel}", highlight=False)
        else:
            console.print(f"[red]failed[/] {result.channel}: {result.detail}", highlight=False)
    if any(r.status != "sent" for r in results):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(budgets)
    app.add_typer(notify_app, name="notify")
