"""``cloudbalance demo``: the bundled multi-cloud sample, end to end, in a folder of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloudbalance.commands._common import console, emit_frame, literal, progress


def demo(
    folder: Annotated[
        Path,
        typer.Argument(
            help="Folder to create (a new or empty one, or an earlier demo's, which is reused).",
            file_okay=False,
        ),
    ] = Path("cloudbalance-demo"),
) -> None:
    """Run the whole loop on the bundled sample in FOLDER, then say what to look at."""
    from cloudbalance.demo.run import run_demo

    with progress() as bar:
        task = bar.add_task("demo", total=None)
        result = run_demo(folder, progress=lambda m: bar.update(task, description=m))
    console.print(
        f"ingested [bold]{result.ingest.rows:,}[/] FOCUS cost lines from "
        f"{len(result.exports)} files (AWS Parquet, Azure CSV, GCP CSV.gz) "
        f"in {result.ingest.seconds:.1f}s"
    )
    emit_frame(result.by_cloud, "table", title="Two years of cost by cloud")
    emit_frame(result.by_workload, "table", title="Two years of cost by workload")
    for step in result.run.steps:
        colour = {"ok": "green", "failed": "red", "skipped": "yellow"}[step.status]
        console.print(
            f"[{colour}]{step.status:<7}[/] {step.step:<9} {literal(step.detail)}", highlight=False
        )
    console.print(f"\nworking directory: {result.folder}", markup=False)
    console.print(f"  config   {result.config}", markup=False)
    console.print(f"  store    {result.store}", markup=False)
    console.print(f"  infra    {result.infra}  (git log -p shows the plan's commit)", markup=False)
    for kind, path in result.run.reports.items():
        console.print(f"  {kind:<8} {path}", markup=False)
    console.print(
        f"next: open {result.run.reports.get('html', 'the report')}, then "
        f"`cd {result.folder} && git -C infra show --stat HEAD` and "
        "`cloudbalance run --dry-run`",
        markup=False,
    )
    if result.run.exit_code:
        raise typer.Exit(result.run.exit_code)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command()(demo)
