"""``cloudbalance demo``: a working directory with the bundled sample, and the loop run on it.

The folder it builds is an ordinary cloudbalance project, so every other command works in it
afterwards (``cloudbalance costs``, ``cloudbalance run --dry-run`` ...):

```
DIR/
  cloudbalance.yaml         the sample's workloads, the focus provider on exports/, git: infra/
  exports/{aws,azure,gcp}/  FOCUS files as each cloud writes them (Parquet, CSV, CSV.gz)
  infra/                    a Git repository with two Pulumi projects from stacks/ (service,
                            batch) whose Pulumi.prod.yaml the plan rewrites, in a real commit
  reports/                  report.html, report.md, report.json
  .cloudbalance/            the store
```

Running it again in the same folder reuses everything: the same data gives the same plan, which
is recognised as already written, so the second run commits nothing. A folder that holds
anything else (a user's own ``cloudbalance.yaml``, an infrastructure repository) is refused
before anything is written: the demo never overwrites or commits a user's files.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from ruamel.yaml import YAML

from cloudbalance.attribution import Attribution
from cloudbalance.config import CONFIG_FILENAME, Settings, load_config
from cloudbalance.demo.sample import Sample, generate_sample, write_focus_exports
from cloudbalance.exceptions import ConfigError
from cloudbalance.models import Placement, Workload
from cloudbalance.providers.focus import FocusReader
from cloudbalance.run import RunResult, run
from cloudbalance.series import current_placement
from cloudbalance.store import IngestResult, Store

__all__ = ["DEMO_MARKER", "DemoResult", "claim_demo_folder", "prepare_demo", "run_demo"]

#: The file that marks a folder as the demo's own, so a later demo run may reuse it.
DEMO_MARKER = ".cloudbalance-demo"
_CONFIG_HEADER = "# Written by `cloudbalance demo`"


@dataclass(frozen=True)
class DemoResult:
    """Where the demo put things and what it found."""

    folder: Path
    config: Path
    store: Path
    exports: tuple[Path, ...]
    ingest: IngestResult
    by_cloud: pd.DataFrame
    by_workload: pd.DataFrame
    infra: Path
    run: RunResult


def _workload_config(workload: Workload) -> dict[str, object]:
    return {
        "match": {"tags": list(workload.match.tag_values)},
        "replica": {"vcpus": workload.vcpus, "memory_gib": workload.memory_gib},
        "allowed": [loc.key for loc in workload.allowed],
        "min_locations": workload.min_locations,
        "max_share": workload.max_share,
        "max_change": workload.max_change,
        "move_cost": workload.move_cost,
        "spot": workload.spot,
        "stack": workload.stack,
    }


def claim_demo_folder(folder: Path) -> None:
    """Make sure ``folder`` is the demo's to write: missing, empty, or an earlier demo's.

    Raises:
        ConfigError: ``folder`` is a file, or a folder holding files the demo did not write
            (nothing is written then).
    """
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file; give a new or empty folder for the demo")
    if folder.is_dir() and not _is_demo_folder(folder):
        entries = sorted(p.name for p in folder.iterdir())
        if entries:
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise ConfigError(
                f"{folder} already holds files the demo did not write ({shown}); the demo "
                "writes cloudbalance.yaml and commits in infra/, so give it a new or empty "
                "folder, e.g. `cloudbalance demo cloudbalance-demo`"
            )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DEMO_MARKER).write_text(
        "This folder was written by `cloudbalance demo`; delete it freely.\n", encoding="utf-8"
    )


def _is_demo_folder(folder: Path) -> bool:
    if (folder / DEMO_MARKER).is_file():
        return True
    config = folder / CONFIG_FILENAME  # a demo folder written before the marker existed
    try:
        return config.is_file() and config.read_text(encoding="utf-8").startswith(_CONFIG_HEADER)
    except (OSError, UnicodeDecodeError):
        return False


def prepare_demo(folder: Path, sample: Sample) -> tuple[Settings, list[Path]]:
    """Write the sample's exports and a config into ``folder``; return the settings."""
    folder.mkdir(parents=True, exist_ok=True)
    exports = write_focus_exports(sample.costs, folder / "exports")
    config = {
        "version": 1,
        "store": {"path": ".cloudbalance/store.duckdb"},
        "providers": {"focus": {"paths": ["exports/"]}},
        "workload_tag": "workload",
        "workloads": {w.name: _workload_config(w) for w in sample.workloads},
        "forecast": {"horizon": 14, "interval": 0.8, "country_holidays": ["US"]},
        "plan": {"quantile": 0.8},
        "guardrails": {"min_confidence_commit": 0.5, "min_saving": 1.0},
        "git": {"repo": "infra", "mode": "commit"},
        # budgets for people (none per cloud alone, so the demo's plan is not capped by them)
        "budgets": [
            {"name": "all clouds", "amount": 7000},
            {"workload": "checkout", "amount": 3000},
        ],
    }
    yaml = YAML()
    yaml.default_flow_style = False
    with (folder / CONFIG_FILENAME).open("w", encoding="utf-8") as fh:
        fh.write(f"{_CONFIG_HEADER}: the bundled sample's workloads.\n")
        yaml.dump(config, fh)
    return load_config(folder / CONFIG_FILENAME), exports


_STACK_HEADER = """\
# {project} stack, production. Hand-written parts stay as they are: cloudbalance rewrites only
# cloudbalance:workloads.<name>.placements[*].replicas (and appends new locations).
config:
  aws:region: us-east-1
  azure-native:location: westeurope
  gcp:project: acme-prod
  gcp:region: us-central1
  cloudbalance:workloads:
"""

_SERVICE_FIELDS = """\
      image: ghcr.io/acme/{name}:1.0
      cpu: 2
      memory_gib: 8
      port: 8080
      spot: false
"""

_BATCH_FIELDS = """\
      image: ghcr.io/acme/{name}:1.0
      spot: true
      aws: {{instance_type: m6i.large}}
      azure:
        vm_size: Standard_D2s_v5
        admin_username: cloudbalance
        ssh_public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemoKeyReplaceMe {name}
      gcp: {{machine_type: n2-standard-2}}
"""


def _stack_file(project: str, workloads: list[Workload], placement: list[Placement]) -> str:
    text = _STACK_HEADER.format(project=project)
    for workload in workloads:
        fields = _BATCH_FIELDS if workload.spot else _SERVICE_FIELDS
        text += f"    {workload.name}:\n" + fields.format(name=workload.name)
        text += "      placements:\n"
        for p in placement:
            if p.workload == workload.name:
                text += (
                    f"        - {{cloud: {p.location.cloud}, region: {p.location.region}, "
                    f"replicas: {p.replicas}}}\n"
                )
    return text


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True)


def init_infra_repo(folder: Path, workloads: list[Workload], placement: list[Placement]) -> Path:
    """A Git repository with the service and batch Pulumi projects, placed as today."""
    from cloudbalance.stacks import init_stack

    if (folder / ".git").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    _git(folder, "init", "--quiet", "--initial-branch=main")
    _git(folder, "config", "user.name", "cloudbalance demo")
    _git(folder, "config", "user.email", "demo@cloudbalance.invalid")
    for project in ("service", "batch"):
        init_stack(project, folder / project, project=project, stack="prod")
        mine = [w for w in workloads if (w.stack or "").startswith(f"{project}/")]
        (folder / project / "Pulumi.prod.yaml").write_text(
            _stack_file(project, mine, placement), encoding="utf-8"
        )
    _git(folder, "add", "--all")
    _git(folder, "commit", "--quiet", "-m", "Service and batch stacks, placed by hand")
    return folder


def run_demo(folder: str | Path, *, progress: Callable[[str], None] | None = None) -> DemoResult:
    """Build the demo folder and run the whole loop on it.

    Ingests the FOCUS exports and the sample's prices, makes the infrastructure repository,
    then runs ``cloudbalance run`` (forecast, spike warnings, plan, a real commit of the
    rewritten stack config, reports) without syncing providers.

    Raises:
        ConfigError: ``folder`` holds files the demo did not write (see
            :func:`claim_demo_folder`).
    """
    tell = progress or (lambda _message: None)
    root = Path(folder).resolve()
    claim_demo_folder(root)
    tell("generating two years of multi-cloud FOCUS data")
    sample = generate_sample()
    settings, exports = prepare_demo(root, sample)
    attribution = Attribution(settings.workload_tag, settings.workload_models())
    with Store.from_settings(settings) as store:
        tell(f"ingesting {len(exports)} FOCUS files")
        reader = FocusReader(store.con, progress=tell)
        result = reader.ingest(store, [root / "exports"], attribution=attribution)
        store.ingest_prices(sample.prices, source="demo:prices")
        by_cloud = store.summary(["cloud"])
        by_workload = store.summary(["workload"])
        placement = list(current_placement(store.costs(), settings.workload_models()))
    infra = init_infra_repo(root / settings.git.repo, settings.workload_models(), placement)
    outcome = run(settings, sync_providers=False, progress=tell)
    return DemoResult(
        folder=root,
        config=settings.path or root / CONFIG_FILENAME,
        store=settings.store_path,
        exports=tuple(exports),
        ingest=result,
        by_cloud=by_cloud,
        by_workload=by_workload,
        infra=infra,
        run=outcome,
    )
