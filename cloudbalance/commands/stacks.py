"""Stack commands: ``cloudbalance stack init``, ``cloudbalance preview``, ``cloudbalance up``.

``stack init`` writes a ready Pulumi project from a shipped template; ``preview`` and ``up`` run
Pulumi on a project through the Automation API and need the Pulumi CLI (a clear message says how
to install it when it is missing). ``up`` asks before deploying unless ``--yes`` is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from cloudbalance.stacks import OperationResult

_DEFAULT_STACK = "dev"

StackOption = Annotated[
    str, typer.Option("--stack", "-s", help="Stack name (Pulumi.<stack>.yaml).")
]
ProjectDir = Annotated[
    Path,
    typer.Argument(help="The Pulumi project directory (holding Pulumi.yaml).", file_okay=False),
]


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    stack_app = typer.Typer(
        help="Pulumi projects that read cloudbalance:workloads.", no_args_is_help=True
    )

    @stack_app.command("init")
    def init(
        directory: Annotated[
            Path, typer.Argument(help="New or empty directory to write the project into.")
        ],
        template: Annotated[
            str, typer.Option("--template", "-t", help="Project template: service or batch.")
        ] = "service",
        project: Annotated[
            str | None,
            typer.Option("--project", help="Project name (default: the directory's name)."),
        ] = None,
        stack: StackOption = _DEFAULT_STACK,
        project_schema: Annotated[
            Path | None,
            typer.Option(
                "--project-schema",
                help="Pulumi's project JSON schema, to validate the new Pulumi.yaml against.",
                dir_okay=False,
            ),
        ] = None,
    ) -> None:
        """Generate a ready Pulumi project (service or batch) from a template."""
        from cloudbalance.stacks import init_stack

        result = init_stack(
            template, directory, project=project, stack=stack, project_schema=project_schema
        )
        typer.echo(
            f"created {result.template} project {result.project!r} in {result.directory} "
            f"({len(result.files)} files)"
        )
        typer.echo(f"next: edit {result.stack_file} (cloudbalance:workloads), then")
        typer.echo(f"      cloudbalance preview {result.directory} --stack {result.stack}")

    app.add_typer(stack_app, name="stack")

    @app.command("preview")
    def preview_command(
        directory: ProjectDir = Path("."), stack: StackOption = _DEFAULT_STACK
    ) -> None:
        """Show what `pulumi up` would change on a stack (runs `pulumi preview`)."""
        from cloudbalance.stacks import preview

        _report(preview(directory, stack=stack, on_output=_echo))

    @app.command("up")
    def up_command(
        directory: ProjectDir = Path("."),
        stack: StackOption = _DEFAULT_STACK,
        yes: Annotated[
            bool, typer.Option("--yes", "-y", help="Deploy without asking for confirmation.")
        ] = False,
    ) -> None:
        """Deploy a stack (runs `pulumi up`); asks first unless --yes."""
        from cloudbalance.stacks import pulumi_cli, up

        pulumi_cli()  # say how to install it before asking anything
        if not yes and not typer.confirm(
            f"Deploy stack {stack!r} of {directory} to the clouds it names?", default=False
        ):
            raise typer.Abort()
        _report(up(directory, stack=stack, on_output=_echo))


def _echo(line: str) -> None:
    typer.echo(line.rstrip("\n"))


def _report(result: OperationResult) -> None:
    typer.echo(result.summary())
    for key, value in sorted(result.outputs.items()):
        typer.echo(f"  {key}: {value}")
