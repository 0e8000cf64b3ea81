"""``cloudbalance demo``: a working directory with the bundled sample, and the loop run on it.

The folder it builds is an ordinary cloudbalance project, so every other command works in it
afterwards (``cloudbalance costs``, ``cloudbalance sync`` ...):

```
DIR/
  cloudbalance.yaml         the sample's workloads, the focus provider on exports/
  exports/{aws,azure,gcp}/  FOCUS files as each cloud writes them (Parquet, CSV, CSV.gz)
  .cloudbalance/            the store
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from ruamel.yaml import YAML

from cloudbalance.attribution import Attribution
from cloudbalance.config import CONFIG_FILENAME, Settings, load_config
from cloudbalance.demo.sample import Sample, generate_sample, write_focus_exports
from cloudbalance.models import Workload
from cloudbalance.providers.focus import FocusReader
from cloudbalance.store import IngestResult, Store

__all__ = ["DemoResult", "prepare_demo", "run_demo"]


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
    }
    yaml = YAML()
    yaml.default_flow_style = False
    with (folder / CONFIG_FILENAME).open("w", encoding="utf-8") as fh:
        fh.write("# Written by `cloudbalance demo`: the bundled sample's workloads.\n")
        yaml.dump(config, fh)
    return load_config(folder / CONFIG_FILENAME), exports


def run_demo(folder: str | Path, *, progress: Callable[[str], None] | None = None) -> DemoResult:
    """Build the demo folder and run the loop on it (ingest and cost summary)."""
    tell = progress or (lambda _message: None)
    root = Path(folder).resolve()
    tell("generating two years of multi-cloud FOCUS data")
    sample = generate_sample()
    settings, exports = prepare_demo(root, sample)
    attribution = Attribution(settings.workload_tag, settings.workload_models())
    with Store.from_settings(settings) as store:
        tell(f"ingesting {len(exports)} FOCUS files")
        reader = FocusReader(store.con, progress=tell)
        result = reader.ingest(store, [root / "exports"], attribution=attribution)
        by_cloud = store.summary(["cloud"])
        by_workload = store.summary(["workload"])
    return DemoResult(
        folder=root,
        config=settings.path or root / CONFIG_FILENAME,
        store=settings.store_path,
        exports=tuple(exports),
        ingest=result,
        by_cloud=by_cloud,
        by_workload=by_workload,
    )
