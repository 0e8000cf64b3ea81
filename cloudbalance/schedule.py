"""Ready-made schedules for ``cloudbalance run``: GitHub Actions, a Kubernetes CronJob, cron.

``cloudbalance schedule init`` writes them from the templates in ``templates/schedule/``, with
the schedule and the paths filled in, and never overwrites a file.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from cloudbalance.exceptions import ConfigError

__all__ = ["SCHEDULERS", "ScheduleFile", "render_schedule", "write_schedules"]

_TEMPLATES = Path(__file__).parent / "templates" / "schedule"

#: scheduler -> (template, file written, relative to the target folder)
SCHEDULERS: dict[str, tuple[str, str]] = {
    "github": ("github-actions.yml", ".github/workflows/cloudbalance.yml"),
    "kubernetes": ("cronjob.yaml", "deploy/cloudbalance-cronjob.yaml"),
    "cron": ("crontab", "cloudbalance.crontab"),
}


@dataclass(frozen=True)
class ScheduleFile:
    """One written schedule."""

    scheduler: str
    path: Path


def _check_cron(cron: str) -> None:
    fields = cron.split()
    if len(fields) != 5:
        raise ConfigError(
            f"schedule {cron!r}: expected 5 cron fields (minute hour day month "
            "weekday), e.g. '17 6 * * *'"
        )


def render_schedule(
    scheduler: str,
    *,
    cron: str = "17 6 * * *",
    folder: str | Path = ".",
    image: str = "ghcr.io/your-org/cloudbalance:latest",
) -> str:
    """The text of one schedule.

    Raises:
        ConfigError: Unknown scheduler, or a cron expression without 5 fields.
    """
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {scheduler!r}; use one of {', '.join(SCHEDULERS)}")
    _check_cron(cron)
    template = (_TEMPLATES / SCHEDULERS[scheduler][0]).read_text(encoding="utf-8")
    executable = shutil.which("cloudbalance") or f"{sys.executable} -m cloudbalance.cli"
    return template.format(
        cron=cron, folder=Path(folder).resolve(), image=image, executable=executable
    )


def write_schedules(
    target: str | Path,
    schedulers: list[str] | None = None,
    *,
    cron: str = "17 6 * * *",
    image: str = "ghcr.io/your-org/cloudbalance:latest",
) -> list[ScheduleFile]:
    """Write the schedules into ``target`` (the folder holding cloudbalance.yaml).

    Raises:
        ConfigError: A file exists already (nothing is written then), or bad arguments.
    """
    root = Path(target)
    chosen = schedulers or list(SCHEDULERS)
    texts = {name: render_schedule(name, cron=cron, folder=root, image=image) for name in chosen}
    paths = {name: root / SCHEDULERS[name][1] for name in chosen}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing:
        raise ConfigError(f"not overwriting {', '.join(existing)}; remove it first")
    written = []
    for name, text in texts.items():
        paths[name].parent.mkdir(parents=True, exist_ok=True)
        paths[name].write_text(text, encoding="utf-8")
        written.append(ScheduleFile(name, paths[name]))
    return written
