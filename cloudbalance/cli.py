"""The ``cloudbalance`` command.

Each area of the product keeps its commands in ``cloudbalance/commands/<area>.py`` with a
``register(app)`` function; this module only assembles them and owns the exit-code contract:

- ``0``: success.
- ``1``: user error: any :class:`~cloudbalance.exceptions.CloudBalanceError` and every usage
  mistake (unknown command or option, missing argument, bad value): one clear line on stderr,
  never a traceback.
- ``2``: internal error (a bug): the traceback, so it can be reported.
- ``3``: a run whose step failed while the others ran (set by ``cloudbalance run``).

Start-up is part of the contract: ``cloudbalance --version`` answers without importing the
command line framework, and ``--help`` without pandas, numpy, DuckDB or rich (help is plain
text, grouped in panels by :class:`PanelGroup`). Commands import their heavy dependencies
inside the command function.
"""

from __future__ import annotations

import sys
from functools import cache
from typing import TYPE_CHECKING, Any

from cloudbalance.exceptions import CloudBalanceError

if TYPE_CHECKING:
    import typer
    from typer._click import Command

    app: typer.Typer  # built on first use by the module's __getattr__

__all__ = ["app", "build_app", "main"]

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

#: Help panels, in the order of the loop, so ``--help`` reads like the product.
_PANELS: dict[str, str] = {
    **dict.fromkeys(("demo", "run", "report", "schedule"), "Start here"),
    **dict.fromkeys(("ingest", "sync", "costs", "prices", "providers", "config"), "Data"),
    **dict.fromkeys(("forecast", "anomalies", "plan", "budgets"), "Forecast and plan"),
    **dict.fromkeys(("apply", "revert", "check", "policy", "verify"), "Act and guard"),
    **dict.fromkeys(("stack", "preview", "up"), "Pulumi stacks"),
    **dict.fromkeys(("notify",), "Tell people"),
}
_PANEL_ORDER: tuple[str, ...] = (*dict.fromkeys(_PANELS.values()), "Other")

_HELP_OPTIONS = ("-h", "--help")

_HELP = (
    "Forecast cloud cost spikes and move workloads across AWS, Azure and GCP before they "
    "happen, through Pulumi stack config in Git."
)


def __getattr__(name: str) -> Any:
    """``cloudbalance.cli.app`` is built on first use, so ``--version`` stays instant."""
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@cache
def build_app() -> typer.Typer:
    """The Typer application with every command registered (built once)."""
    import importlib

    import typer

    app = typer.Typer(
        name="cloudbalance",
        help=_HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # plain help: rich would load at every --help and reads `file:100:` as an emoji
        rich_markup_mode=None,
        cls=_panel_group_class(),
        context_settings={"help_option_names": list(_HELP_OPTIONS)},
    )

    @app.callback()
    def _root(
        version: bool = typer.Option(
            False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ) -> None:
        """Forecast cloud cost spikes and move workloads before they happen."""

    for module in _COMMAND_MODULES:
        importlib.import_module(module).register(app)
    for command in app.registered_commands:
        name = command.name or (command.callback.__name__ if command.callback else "")
        command.rich_help_panel = _PANELS.get(name.replace("_", "-"), "Other")
    for group in app.registered_groups:
        group.rich_help_panel = _PANELS.get(group.name or "", "Other")
    return app


def _version_callback(value: bool) -> None:
    if value:
        import typer

        from cloudbalance._version import __version__

        typer.echo(f"cloudbalance {__version__}")
        raise typer.Exit()


@cache
def _panel_group_class() -> type[Any]:
    """A ``TyperGroup`` that lists commands under their help panel, in plain text."""
    from typer.core import TyperGroup

    class PanelGroup(TyperGroup):
        def format_commands(self, ctx: Any, formatter: Any) -> None:
            panels: dict[str, list[tuple[str, str]]] = {}
            listed = [(n, self.get_command(ctx, n)) for n in self.list_commands(ctx)]
            shown = [(n, c) for n, c in listed if c is not None and not c.hidden]
            if not shown:
                return
            limit = formatter.width - 6 - max(len(n) for n, _ in shown)
            for name, cmd in shown:
                panel = getattr(cmd, "rich_help_panel", None) or "Other"
                panels.setdefault(panel, []).append((name, cmd.get_short_help_str(limit)))
            for panel in sorted(panels, key=_panel_rank):
                with formatter.section(panel):
                    formatter.write_dl(panels[panel])

    return PanelGroup


def _panel_rank(panel: str) -> int:
    return _PANEL_ORDER.index(panel) if panel in _PANEL_ORDER else len(_PANEL_ORDER)


@cache
def command() -> Command:
    """The click command tree of :func:`build_app`, with help metavars tidied (built once)."""
    import typer.main

    root = typer.main.get_command(build_app())
    _tidy_metavars(root)
    _light_flags(root)
    return root


def walk(root: Command, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Command]]:
    """Every command and group below ``root`` (itself included) with its argv path."""
    found = [(path, root)]
    for name, sub in sorted(getattr(root, "commands", {}).items()):
        found += walk(sub, (*path, name))
    return found


def _tidy_metavars(root: Command) -> None:
    """Help shows what to type (``FILE``, ``N``, ``[csv|json]``), never a type name (``<str>``)."""
    for _, cmd in walk(root):
        for param in cmd.params:
            if param.metavar is not None:
                continue
            desc = getattr(param, "type_descriptor", None)
            if getattr(param, "is_flag", False):
                param.metavar = ""
            elif desc is not None and desc.is_choice:
                param.metavar = "[" + "|".join(str(c) for c in desc.choices or ()) + "]"
            elif param.param_type_name == "argument":
                param.metavar = (param.name or "value").upper()
                # an argument's help row would add its type name (`PLAN_FILE <path>`)
                vars(param)["display_type_rich"] = _no_type
            elif desc is not None and desc.is_path:
                kind = {"file": "FILE", "directory": "DIR"}.get(str(desc.path_type), "PATH")
                param.metavar = kind
            elif desc is not None and desc.annotation in (int, float):
                param.metavar = "N" if desc.annotation is int else "NUMBER"
            else:
                param.metavar = (param.name or "value").upper()
            if desc is not None and desc.is_list and param.param_type_name == "option":
                param.metavar += ",..."


def _light_flags(root: Command) -> None:
    """Flags check their value without pydantic, which would otherwise load at every ``--help``.

    A flag's value is a bool, or ``None`` when absent (``--help`` of the root group, read on
    the way to any subcommand); Typer builds a pydantic adapter for the latter.
    """
    from typer._click import Context
    from typer._coercion import PassThroughRuntimeParam

    for _, cmd in walk(root):
        # made once here, then cached by click: with the names every context inherits
        help_option = cmd.get_help_option(Context(cmd, help_option_names=list(_HELP_OPTIONS)))
        for param in [*cmd.params, *([help_option] if help_option is not None else [])]:
            desc = getattr(param, "type_descriptor", None)
            if getattr(param, "is_flag", False) and desc is not None and desc.annotation is bool:
                param._runtime_param = PassThroughRuntimeParam(  # type: ignore[attr-defined]
                    annotation=bool, parameter_info=desc.parameter_info
                )


def _no_type(ctx: Any) -> None:
    return None


def _error(message: str) -> None:
    """One line on stderr, printed literally (no markup, no emoji)."""
    line = " ".join(message.split()) if "\n" not in message.strip() else message.strip()
    sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()


def _usage_line(err: Any) -> str:
    """A usage error as one line: what is wrong, in which command, where help is."""
    message = " ".join(str(err.format_message()).split()).replace(": Value error, ", ": ")
    ctx = getattr(err, "ctx", None)
    if ctx is None:
        return message
    path = ctx.command_path
    return f"{message} (see `{path} --help`)"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and map errors to exit codes (0 ok, 1 user error, 2 internal error)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args == ["--version"]:  # the fast path: no framework, no commands
        from cloudbalance._version import __version__

        sys.stdout.write(f"cloudbalance {__version__}\n")
        return 0
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
    from typer.exceptions import Abort, Exit

    try:
        code = command().main(args=args, prog_name="cloudbalance", standalone_mode=False)
    except CloudBalanceError as err:
        _error(str(err))
        return 1
    except NoArgsIsHelpError as err:  # `cloudbalance` or `cloudbalance config` alone: help
        sys.stdout.write(err.format_message().rstrip("\n") + "\n")
        return 0
    except ClickException as err:
        _error(_usage_line(err))
        return 1
    except Exit as exit_:
        return int(exit_.exit_code or 0)
    except Abort:
        _error("aborted")
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except OSError as err:
        if err.filename is None:  # not about a file the user named: treat as a bug below
            return _internal_error()
        # the file system refused (permission, missing folder, full disk): the user can fix it
        where = f"{err.filename} -> {err.filename2}" if err.filename2 else str(err.filename)
        _error(f"{where}: {err.strerror or err}")
        return 1
    except Exception as err:
        if _is_foreign_usage_error(err):
            _error(_usage_line(err))
            return 1
        return _internal_error()
    return code if isinstance(code, int) else 0


def _internal_error() -> int:
    """Exit 2: a bug. The traceback of the exception being handled, so it can be reported."""
    import traceback

    traceback.print_exc()
    sys.stderr.write(
        "internal error: this is a bug in cloudbalance; please report it "
        "with the traceback above.\n"
    )
    return 2


def _is_foreign_usage_error(err: Exception) -> bool:
    """A usage error of a standalone ``click`` (a plugin may raise one) is a user error too."""
    click = sys.modules.get("click")
    return click is not None and isinstance(err, click.ClickException)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
