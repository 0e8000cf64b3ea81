"""Guardrail commands: ``policy check``, ``policy test``, the pre-merge ``check`` and ``verify``.

Exit codes follow the CLI contract: ``0`` when the change is allowed (warnings included), ``1``
when a policy denies it, a stack file breaks its schema, a Rego test fails, or on any user error.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from cloudbalance.commands._common import (
    ConfigOption,
    StoreOption,
    comma_list,
    console,
    settings_for,
    working,
)

if TYPE_CHECKING:
    from cloudbalance.config import Settings
    from cloudbalance.policy import PolicyReport, PolicySet

PolicyPaths = Annotated[
    list[Path] | None,
    typer.Option(
        "--policy",
        "-p",
        callback=comma_list,
        help="Rego files or folders, added to guardrails.policies (commas or repeat).",
    ),
]
NoStarter = Annotated[
    bool, typer.Option("--no-starter", help="Leave out the starter policy library.")
]
DataFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--data",
        "-d",
        callback=comma_list,
        help="JSON files merged into `data` (commas or repeat).",
    ),
]
Today = Annotated[
    str | None,
    typer.Option("--today", metavar="DAY", help="Check as of this day (YYYY-MM-DD), for freezes."),
]


def escape(text: str) -> str:
    """Rich markup escaped (rich loads when something is printed, not at ``--help``)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


OutputFormat = Annotated[
    Literal["text", "markdown", "json"],
    typer.Option("--format", "-f", help="text, markdown or json."),
]


def _day(value: str | None, *, option: str = "--today") -> date | None:
    from cloudbalance.exceptions import ConfigError

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        raise ConfigError(f"{option}: expected YYYY-MM-DD, got {value!r}") from err


def _data(files: list[Path] | None) -> dict[str, Any]:
    from cloudbalance.exceptions import PolicyError
    from cloudbalance.planfile import read_json_file

    merged: dict[str, Any] = {}
    for file in files or []:
        loaded = read_json_file(file, what="policy data")  # the one strict JSON reader
        if not isinstance(loaded, dict):
            raise PolicyError("a data file must hold a JSON object", file=file)
        merged.update(loaded)
    return merged


def _policies(
    settings: Settings, paths: list[Path] | None, *, starter: bool, data: list[Path] | None
) -> PolicySet:
    from cloudbalance.policy import load_policies

    return load_policies(settings, paths=paths or [], starter=starter, data=_data(data))


def _print_report(report: PolicyReport, fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
        return
    if fmt == "markdown":
        sys.stdout.write(report.to_markdown() + "\n")
        return
    for label, items in (
        ("[bold red]DENY[/]", report.denies),
        ("[yellow]WARN[/]", report.warnings),
    ):
        for item in items:
            console.print(
                f"{label}  {escape(item.message)}  [dim]({item.package})[/]", highlight=False
            )
    verdict = "[bold red]denied[/]" if report.denied else "[green]allowed[/]"
    console.print(
        f"{verdict}: {len(report.denies)} deny, {len(report.warnings)} warn, "
        f"{len(report.packages)} package(s)",
        highlight=False,
    )


def _check_format(fmt: str) -> None:
    if fmt not in ("text", "markdown", "json"):
        raise typer.BadParameter(f"unknown format {fmt!r}: use text, markdown or json")


def _document(
    target: Path | None,
    before: Path | None,
    after: Path | None,
    *,
    settings: Settings,
    mode: str,
    today: date | None,
) -> dict[str, Any]:
    """The input document for a plan file, an input-document file, or two stack files."""
    from cloudbalance.exceptions import PolicyError
    from cloudbalance.planfile import plan_from_document, read_json_file
    from cloudbalance.policy import as_mode, diff_input, plan_input

    if before is not None or after is not None:
        from cloudbalance.gitops import read_placements

        if before is None or after is None or target is not None:
            raise PolicyError("give --before and --after together, without a plan file")
        texts = []
        for path in (before, after):
            try:
                texts.append(path.read_text(encoding="utf-8"))
            except OSError as err:
                raise PolicyError(f"cannot read stack file: {err.strerror}", file=path) from err
        return diff_input(
            read_placements(texts[0], file=str(before)),
            read_placements(texts[1], file=str(after)),
            files=[str(after)],
            settings=settings,
            mode=as_mode(mode),
            now=today,
        )
    if target is None:
        raise PolicyError("give a plan JSON file, or --before and --after stack files")
    loaded = read_json_file(target)
    if isinstance(loaded, dict) and "plan_id" in loaded:
        plan = plan_from_document(loaded, file=target)
        return plan_input(plan, settings=settings, mode=as_mode(mode), now=today)
    if isinstance(loaded, dict) and "version" in loaded and "kind" in loaded:
        return loaded  # an input document written by `--format json` of another tool
    raise PolicyError(
        "neither a plan (no plan_id) nor a policy input document (no version and kind)",
        file=target,
    )


def register(app: typer.Typer) -> None:
    """Add ``policy check``, ``policy test``, ``check`` and ``verify`` to ``app``."""
    policy_app = typer.Typer(
        help="Rego guardrails: evaluate them on a plan or a stack change, run their tests.",
        no_args_is_help=True,
    )

    @policy_app.command("check")
    @working("evaluating policies")
    def policy_check(
        target: Annotated[
            Path | None, typer.Argument(help="Plan JSON file (or a policy input document).")
        ] = None,
        before: Annotated[
            Path | None, typer.Option(help="Stack file before the change (with --after).")
        ] = None,
        after: Annotated[
            Path | None, typer.Option(help="Stack file after the change (with --before).")
        ] = None,
        mode: Annotated[
            Literal["commit", "pr", "check"],
            typer.Option(help="How the change would be written: commit, pr, check."),
        ] = "pr",
        policy: PolicyPaths = None,
        no_starter: NoStarter = False,
        data: DataFiles = None,
        today: Today = None,
        fmt: OutputFormat = "text",
        config: ConfigOption = None,
    ) -> None:
        """Evaluate the policies on a plan file or a stack-config change; exit 1 on a deny."""
        _check_format(fmt)
        settings = settings_for(config)
        # the input first: a refused plan file costs no policy compilation
        document = _document(target, before, after, settings=settings, mode=mode, today=_day(today))
        policies = _policies(settings, policy, starter=not no_starter, data=data)
        report = policies.evaluate(document)
        _print_report(report, fmt)
        if report.denied:
            raise typer.Exit(1)

    @policy_app.command("test")
    @working("testing policies")
    def policy_test(
        paths: Annotated[
            list[Path] | None,
            typer.Argument(help="Rego files or folders (default: guardrails.policies)."),
        ] = None,
        data: DataFiles = None,
        config: ConfigOption = None,
    ) -> None:
        """Run the `test_` rules of your policies (the starter library is loaded beside them)."""
        from cloudbalance.exceptions import PolicyError

        settings = settings_for(config)
        policies = _policies(settings, paths, starter=True, data=data)
        results = policies.run_tests()
        if not results:
            raise PolicyError("no `test_` rules found in the policies given")
        failed = [r for r in results if not r.passed]
        for result in results:
            mark = "[green]PASS[/]" if result.passed else "[bold red]FAIL[/]"
            console.print(
                f"{mark}  {result.package}.{result.name}  [dim]{result.file}[/]", highlight=False
            )
        console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed", highlight=False)
        if failed:
            raise typer.Exit(1)

    app.add_typer(policy_app, name="policy")

    @app.command("check")
    @working("checking")
    def check_command(
        base: Annotated[str, typer.Option(help="Branch the change goes into, e.g. origin/main.")],
        head: Annotated[str, typer.Option(help="Commit to check.")] = "HEAD",
        worktree: Annotated[
            bool, typer.Option("--worktree", help="Check the working copy, edits included.")
        ] = False,
        repo: Annotated[
            Path | None, typer.Option(help="Infrastructure repository (default: config git.repo).")
        ] = None,
        policy: PolicyPaths = None,
        no_starter: NoStarter = False,
        data: DataFiles = None,
        today: Today = None,
        fmt: Annotated[
            Literal["markdown", "json"], typer.Option("--format", "-f", help="markdown or json.")
        ] = "markdown",
        summary: Annotated[
            Path | None,
            typer.Option(
                help="Also append the Markdown summary to this file "
                "($GITHUB_STEP_SUMMARY, when set, always gets it)."
            ),
        ] = None,
        config: ConfigOption = None,
        store: StoreOption = None,
    ) -> None:
        """Pre-merge check of a stack-config change: schema, policies, moves, cost impact.

        Exits 1 when a policy denies the change or a stack file breaks its schema.
        """
        from cloudbalance.checks import check_change
        from cloudbalance.exceptions import StoreError
        from cloudbalance.store import Store

        if fmt not in ("markdown", "json"):
            raise typer.BadParameter(f"unknown format {fmt!r}: use markdown or json")
        settings = settings_for(config)
        policies = _policies(settings, policy, starter=not no_starter, data=data)
        where = repo if repo is not None else settings.resolve(settings.git.repo)
        store_path = store if store is not None else settings.store_path
        opened = None
        if store_path.exists():
            try:
                opened = Store(store_path, lock_timeout=settings.store.lock_timeout)
            except StoreError as err:
                console.print(f"[yellow]not priced[/]: {err}", highlight=False)
        try:
            result = check_change(
                where,
                base=base,
                head=None if worktree else head,
                settings=settings,
                policies=policies,
                store=opened,
                now=_day(today),
            )
        finally:
            if opened is not None:
                opened.close()
        markdown = result.to_markdown()
        if fmt == "json":
            sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        else:
            sys.stdout.write(markdown)
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        targets = [summary] if summary is not None else []
        if step_summary and (summary is None or Path(step_summary) != summary):
            targets.append(Path(step_summary))
        for target in targets:
            with target.open("a", encoding="utf-8") as handle:
                handle.write(markdown)
        if not result.passed:
            raise typer.Exit(1)

    @app.command("verify")
    @working("verifying")
    def verify_command(
        revert: Annotated[
            bool, typer.Option("--revert", help="Propose the reverts the verification calls for.")
        ] = False,
        mode: Annotated[
            Literal["pr", "commit", "branch", "dry-run"],
            typer.Option(help="How reverts are written: pr, commit, branch or dry-run."),
        ] = "pr",
        threshold: Annotated[
            float | None,
            typer.Option(
                help="Revert above this excess cost (default guardrails.rollback_threshold)."
            ),
        ] = None,
        health_check: Annotated[
            str | None,
            typer.Option(help="Command run per moved workload (default guardrails.health_check)."),
        ] = None,
        repo: Annotated[
            Path | None, typer.Option(help="Infrastructure repository (default: config git.repo).")
        ] = None,
        as_of: Annotated[
            str | None,
            typer.Option(
                "--as-of", metavar="DAY", help="Verify as of this day (YYYY-MM-DD, UTC midnight)."
            ),
        ] = None,
        fmt: Annotated[
            Literal["text", "json"], typer.Option("--format", "-f", help="Output: text or JSON.")
        ] = "text",
        as_json: Annotated[
            bool, typer.Option("--json", hidden=True, help="Same as --format json.")
        ] = False,
        config: ConfigOption = None,
        store: StoreOption = None,
    ) -> None:
        """Compare each applied plan with what it expected and with not moving; revert if worse."""
        from cloudbalance import steps
        from cloudbalance.commands._common import open_store, parse_mode_option
        from cloudbalance.exceptions import GitOpsError
        from cloudbalance.models import REVERT_MODES

        chosen = parse_mode_option(mode, REVERT_MODES)
        settings = settings_for(config)
        day = _day(as_of, option="--as-of")
        when = datetime(day.year, day.month, day.day) if day is not None else steps.now()
        target = steps.git_target(settings, repo=repo)
        if not target.repo.is_dir():
            raise GitOpsError(f"{target.repo} is not a Git working copy")
        as_json = as_json or fmt == "json"
        with open_store(settings, store, read_only=True) as opened:
            checked = steps.verify(
                steps.Context(settings, opened, when),
                target=target,
                revert=revert,
                mode=chosen,
                threshold=threshold,
                health_check=health_check,
            )
        results, outcomes = checked.verified, checked.reverts
        if as_json:
            payload = {
                "verifications": [v.to_dict() for v in results],
                "reverts": [
                    {"plan_id": o.plan_id, "status": o.status, "detail": o.detail} for o in outcomes
                ],
            }
            sys.stdout.write(json.dumps(payload, indent=2) + "\n")
            return
        if not results:
            console.print("no applied plan to verify on this branch")
        for v in results:
            console.print(escape(v.summary()), highlight=False)
            for reason in v.reasons:
                console.print(f"  {escape(reason)}", highlight=False)
        for o in outcomes:
            console.print(f"{o.plan_id}: revert {o.status}: {escape(o.detail)}", highlight=False)
