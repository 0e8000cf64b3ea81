"""Git commands: ``cloudbalance apply PLAN.json`` and ``cloudbalance revert PLAN_ID``.

Defaults come from ``cloudbalance.yaml`` (``git:`` and ``guardrails:``) when one is found;
options given on the command line win. Without either, ``apply`` is a dry run. With a
configuration file, ``apply`` also evaluates the Rego guardrails (the starter policies and
``guardrails.policies``) before writing: a deny stops the change, warnings go into the message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from cloudbalance.commands._common import ConfigOption, OutputFormat, comma_list, working

if TYPE_CHECKING:
    from cloudbalance.config import Settings
    from cloudbalance.gitops import ApplyResult, Guardrails

ForgeOption = Annotated[
    Literal["github", "gitlab"] | None,
    typer.Option(help="github or gitlab (default: told by the API URL or the remote)."),
]
FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output: text, or the result as JSON.")
]
JsonFlag = Annotated[
    bool, typer.Option("--json", hidden=True, help="Same as --format json (older spelling).")
]


def _guardrails(
    settings: Settings,
    *,
    min_confidence: float | None,
    max_moves: int | None,
    max_share: float | None,
    freeze: list[str],
) -> Guardrails:
    """The configured guardrails, with the command line's options on top."""
    import dataclasses

    from cloudbalance.gitops import FreezeWindow, Guardrails

    rails = Guardrails.from_settings(settings)
    values: dict[str, Any] = {}
    if min_confidence is not None:
        values["min_confidence"] = min_confidence
    if max_moves is not None:
        values["max_moves"] = max_moves
    if max_share is not None:
        values["max_share_moved"] = max_share
    windows = (*rails.freeze, *(FreezeWindow.parse(text) for text in freeze))
    return dataclasses.replace(rails, freeze=windows, **values)


def _with_guardrails(settings: Settings, rails: Guardrails) -> Settings:
    """The settings with the command line's guardrails, so policies see the same limits."""
    import dataclasses

    return dataclasses.replace(
        settings,
        guardrails=dataclasses.replace(
            settings.guardrails,
            min_confidence_commit=rails.min_confidence,
            max_moves=rails.max_moves,
            max_share_moved=rails.max_share_moved,
            freeze=rails.freeze,
        ),
    )


def _report(result: ApplyResult, *, as_json: bool) -> None:
    if as_json:
        payload = {
            "plan_id": result.plan_id,
            "mode": result.mode,
            "files": list(result.diff.paths),
            "changes": [
                {
                    "workload": c.workload,
                    "location": c.location.key,
                    "before": c.before,
                    "after": c.after,
                }
                for c in result.diff.changes
            ],
            "commit": result.commit,
            "branch": result.branch,
            "pushed": result.pushed,
            "pull_request": result.pull_request.url if result.pull_request else None,
            "notes": list(result.notes),
            "message": result.message,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    if result.mode == "dry-run":
        typer.echo(result.diff.unified().rstrip("\n") or "(no change)")
        typer.echo("--- commit message ---")
        typer.echo(result.message)
    for note in result.notes:
        typer.echo(f"note: {note}")
    if result.commit:
        where = f" on {result.branch}" if result.branch else ""
        pushed = " (pushed)" if result.pushed else " (not pushed)"
        typer.echo(f"committed {result.commit[:12]}{where}{pushed}")
    if result.pull_request is not None:
        verb = "opened" if result.pull_request.created else "updated"
        typer.echo(f"{verb} pull request #{result.pull_request.number}: {result.pull_request.url}")


def _announce(settings: Settings, *, repo: Path | None, push: bool) -> None:
    """Say what ``apply`` will do when the mode comes from the config, not the command line."""
    from cloudbalance.commands._common import err_console

    where = repo if repo is not None else settings.resolve(settings.git.repo)
    what = {
        "commit": "commit to the current branch",
        "branch": "commit on a new branch",
        "pr": "commit on a new branch and open a pull request",
        "auto": "commit, or open a pull request below the confidence threshold",
    }.get(settings.git.mode, f"apply in mode {settings.git.mode}")
    pushed = f" and push to {settings.git.remote}" if push else ""
    source = settings.path if settings.path is not None else "the configuration"
    err_console.print(
        f"apply: git.mode is {settings.git.mode!r} in {source}: will {what} of {where}{pushed}; "
        "pass --mode dry-run to see the diff only",
        markup=False,
        highlight=False,
    )


def _parse_stacks(pairs: list[str]) -> dict[str, str]:
    from cloudbalance.exceptions import GitOpsError

    hints = {}
    for pair in pairs:
        workload, sep, stack = pair.partition("=")
        if not sep or "/" not in stack:
            raise GitOpsError(f"--stack {pair!r}: expected WORKLOAD=PROJECT/STACK")
        hints[workload.strip()] = stack.strip()
    return hints


def register(app: typer.Typer) -> None:
    """Add ``apply`` and ``revert`` to ``app``."""

    @app.command("apply")
    @working("applying")
    def apply_command(
        plan_file: Annotated[Path, typer.Argument(help="The plan, as JSON (Plan.to_json).")],
        repo: Annotated[
            Path | None, typer.Option(help="Infrastructure repository (default: config git.repo).")
        ] = None,
        mode: Annotated[
            Literal["dry-run", "commit", "branch", "pr", "auto"] | None,
            typer.Option(
                help="dry-run, commit, branch, pr or auto (default: config, else dry-run)."
            ),
        ] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the diff only.")] = False,
        min_confidence: Annotated[
            float | None, typer.Option(help="auto mode: commit at or above this confidence.")
        ] = None,
        max_moves: Annotated[int | None, typer.Option(help="Most placements changed.")] = None,
        max_share: Annotated[
            float | None, typer.Option(help="Most replicas added, as a share (0.25).")
        ] = None,
        freeze: Annotated[
            list[str] | None,
            typer.Option(
                metavar="DAY..DAY,...",
                callback=comma_list,
                help="Freeze windows YYYY-MM-DD..YYYY-MM-DD (commas or repeat).",
            ),
        ] = None,
        stack: Annotated[
            list[str] | None,
            typer.Option(
                metavar="WORKLOAD=PROJECT/STACK,...",
                callback=comma_list,
                help="Where a workload lives (commas or repeat).",
            ),
        ] = None,
        remote: Annotated[str | None, typer.Option(help="Git remote (default origin).")] = None,
        base: Annotated[str | None, typer.Option(help="Branch pull requests target.")] = None,
        forge: ForgeOption = None,
        api_url: Annotated[str | None, typer.Option(help="API base URL.")] = None,
        repository: Annotated[
            str | None, typer.Option(help="owner/name for pull requests (default: from remote).")
        ] = None,
        push: Annotated[bool, typer.Option("--push/--no-push", help="Push commits.")] = True,
        overwrite_edits: Annotated[
            bool,
            typer.Option(
                "--overwrite-edits", help="Write over values a person changed since the last plan."
            ),
        ] = False,
        config: ConfigOption = None,
        policies: Annotated[
            bool,
            typer.Option(
                "--policies/--no-policies",
                help="Evaluate the Rego guardrails (when a cloudbalance.yaml is used).",
            ),
        ] = True,
        fmt: FormatOption = "text",
        as_json: JsonFlag = False,
    ) -> None:
        """Write a plan's first period into Pulumi stack config: diff, commit, branch or PR."""
        from cloudbalance import steps
        from cloudbalance.commands._common import parse_mode_option, settings_for
        from cloudbalance.exceptions import GitOpsError
        from cloudbalance.planfile import load_plan_file

        plan = load_plan_file(plan_file)
        settings = settings_for(config)
        chosen = parse_mode_option("dry-run" if dry_run else mode or settings.git.mode)
        if mode is None and not dry_run and chosen != "dry-run":
            _announce(settings, repo=repo, push=push)
        rails = _guardrails(
            settings,
            min_confidence=min_confidence,
            max_moves=max_moves,
            max_share=max_share,
            freeze=freeze or [],
        )
        settings = _with_guardrails(settings, rails)
        target = steps.git_target(
            settings,
            repo=repo,
            mode=chosen,
            remote=remote,
            base=base,
            forge=forge,
            api_url=api_url,
            repository=repository,
            push=push,
            hints=_parse_stacks(stack or []),
            policies=policies,
        )
        step = steps.apply_plan(settings, plan, target=target, overwrite_edits=overwrite_edits)
        if step.applied is None:  # not a working copy, or a plan that changes nothing
            if not target.repo.is_dir() or "Git working copy" in step.detail:
                raise GitOpsError(f"{target.repo} is not a Git working copy")
            typer.echo(f"nothing to apply: {step.detail}")
            return
        _report(step.applied, as_json=as_json or fmt == "json")

    @app.command("revert")
    @working("reverting")
    def revert_command(
        plan_id: Annotated[str, typer.Argument(help="The plan to revert (its Cloudbalance-Plan).")],
        repo: Annotated[
            Path | None, typer.Option(help="Infrastructure repository (default: config git.repo).")
        ] = None,
        mode: Annotated[
            Literal["commit", "branch", "pr", "dry-run"],
            typer.Option(help="commit, branch, pr or dry-run."),
        ] = "commit",
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the diff only.")] = False,
        remote: Annotated[str | None, typer.Option(help="Git remote (default origin).")] = None,
        forge: ForgeOption = None,
        api_url: Annotated[str | None, typer.Option(help="API base URL.")] = None,
        repository: Annotated[
            str | None, typer.Option(help="owner/name for pull requests.")
        ] = None,
        push: Annotated[bool, typer.Option("--push/--no-push", help="Push commits.")] = True,
        overwrite_edits: Annotated[
            bool,
            typer.Option(
                "--overwrite-edits", help="Restore even values a person changed since the plan."
            ),
        ] = False,
        config: ConfigOption = None,
        fmt: FormatOption = "text",
        as_json: JsonFlag = False,
    ) -> None:
        """Make the commit that restores what a plan changed (a new commit, never a rewrite)."""
        from cloudbalance import steps
        from cloudbalance.commands._common import parse_mode_option, settings_for
        from cloudbalance.models import REVERT_MODES

        chosen = parse_mode_option("dry-run" if dry_run else mode, REVERT_MODES)
        settings = settings_for(config)
        target = steps.git_target(
            settings,
            repo=repo,
            remote=remote,
            forge=forge,
            api_url=api_url,
            repository=repository,
            push=push,
        )
        result = target.revert(
            plan_id,
            mode=chosen,
            overwrite_edits=overwrite_edits,
        )
        _report(result, as_json=as_json or fmt == "json")
