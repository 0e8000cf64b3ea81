"""The ``cloudbalance`` command.

Each area of the product keeps its commands in ``cloudbalance/commands/<area>.py`` with a
``register(app)`` function; this module only assembles them and owns the exit-code contract:

- ``0``: success.
- ``1``: user error, any :class:`~cloudbalance.exceptions.CloudBalanceError`: one clear line on
  stderr, never a traceback.
- ``2``: internal error (a bug): the traceback, so it can be reported.

Commands import their heavy dependencies (Prophet, solvers, cloud SDKs) inside the command
function, so ``cloudbalance --help`` answers at once.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from cloudbalance._version import __version__
from cloudbalance.exceptions import CloudBalanceError

__all__ = ["app", "main"]

#: Modules that contribute commands, in help order. Each defines ``register(app: typer.Typer)``.
_COMMAND_MODULES: tuple[str, ...] = (
    "cloudbalance.commands.demo",
    "cloudbalance.commands.run",
    "cloudbalance.commands.data",
    "cloudbalance.commands.forecast",
    "cloudbalance.commands.plan",
    "cloudbalance.commands.gitops",
    "cloudbalance.commands.policy",
    "cloudbalance.commands.stacks",
    "cloudbalance.commands.notify",
)

app = typer.Typer(
    name="cloudbalance",
    help=(
        "Forecast cloud cost spikes and move workloads across AWS, Azure and GCP before they "
        "happen, through Pulumi stack config in Git."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

err_console = Console(stderr=True, soft_wrap=True)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"cloudbalance {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Forecast cloud cost spikes and move workloads before they happen."""


for _module in _COMMAND_MODULES:
    importlib.import_module(_module).register(app)

#: Help panels, in the order of the loop, so ``--help`` reads like the product.
_PANELS: dict[str, str] = {
    **dict.fromkeys(("demo", "run", "report", "schedule"), "Start here"),
    **dict.fromkeys(("ingest", "sync", "costs", "providers", "config"), "Data"),
    **dict.fromkeys(("forecast", "anomalies", "plan", "budgets"), "Forecast and plan"),
    **dict.fromkeys(("apply", "revert", "check", "policy", "verify"), "Act and guard"),
    **dict.fromkeys(("stack", "preview", "up"), "Pulumi stacks"),
    **dict.fromkeys(("notify",), "Tell people"),
}


def _assign_panels() -> None:
    for command in app.registered_commands:
        name = command.name or (command.callback.__name__ if command.callback else "")
        command.rich_help_panel = _PANELS.get(name.replace("_", "-"), "Other")
    for group in app.registered_groups:
        group.rich_help_panel = _PANELS.get(group.name or "", "Other")


_assign_panels()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and map errors to exit codes (0 ok, 1 user error, 2 internal error)."""
    try:
        # without standalone mode click returns the code of a `typer.Exit` instead of raising
        code = app(args=argv, standalone_mode=False)
    except CloudBalanceError as err:
        err_console.print(f"[bold red]error:[/] {escape(str(err))}", highlight=False)
        return 1
    except typer.Exit as exit_:
        return int(exit_.exit_code or 0)
    except typer.Abort:
        err_console.print("aborted")
        return 1
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except Exception as err:  # click usage errors are handled below; anything else is a bug
        import click

        if isinstance(err, click.ClickException):
            err.show()
            return 1
        err_console.print_exception()
        err_console.print(
            "[bold red]internal error[/]: this is a bug in cloudbalance; please report it "
            "with the traceback above."
        )
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
