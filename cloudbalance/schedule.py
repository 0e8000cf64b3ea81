"""Ready-made schedules for ``cloudbalance run``: GitHub Actions, a Kubernetes CronJob, cron.

``cloudbalance schedule init`` writes them from the templates in ``templates/schedule/``, with
the schedule and the paths filled in, and never overwrites a file. What the templates need to
run is read from the ``cloudbalance.yaml`` in the folder, when there is one:

- the clouds among its providers: the workflow logs into each with OpenID Connect
  (``aws-actions/configure-aws-credentials``, ``azure/login``, ``google-github-actions/auth``)
  and installs only their plugins; without a config, all three;
- where the infrastructure repository is: the CronJob clones it (from the remote's URL) into
  a scratch volume and reads the config from the clone when the config lives in it, else from
  a ConfigMap; the store and the reports always go to the one volume kept between runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

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


#: Each cron field: its name and the range of its numbers (names such as mon or jan also pass).
_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day", 1, 31),
    ("month", 1, 12),
    ("weekday", 0, 7),
)
_CRON_ITEM = re.compile(r"^(\*|[0-9a-z]+(-[0-9a-z]+)?)(/[0-9]+)?$")
_CRON_NAMES = {
    "month": ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    "weekday": ("sun", "mon", "tue", "wed", "thu", "fri", "sat"),
}


def _check_cron(cron: str) -> None:
    """Refuse a schedule every scheduler would refuse later, on the day it should have run."""
    fields = cron.split()
    if len(fields) != 5:
        raise ConfigError(
            f"schedule {cron!r}: expected 5 cron fields (minute hour day month "
            "weekday), e.g. '17 6 * * *'"
        )
    for text, (name, low, high) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.lower().split(","):
            match = _CRON_ITEM.match(item)
            values = re.findall(r"[0-9a-z]+", item.split("/")[0])
            bad = match is None or any(
                not (v.isdigit() and low <= int(v) <= high) and v not in _CRON_NAMES.get(name, ())
                for v in values
            )
            if bad:
                raise ConfigError(
                    f"schedule {cron!r}: {name} {item!r} is not a cron value "
                    f"({low}-{high}, *, ranges a-b, steps /n, lists a,b)"
                )


_CLOUDS = ("aws", "azure", "gcp")
_PLACEHOLDER_URL = "https://github.com/your-org/infra.git"

#: The OIDC login step of each cloud and the secrets it reads (GitHub Actions).
_LOGIN: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "aws": (
        "      - name: Log into AWS (OIDC)\n"
        "        uses: aws-actions/configure-aws-credentials@v4\n"
        "        with:\n"
        "          role-to-assume: ${{ secrets.AWS_ROLE_ARN }}\n"
        "          aws-region: ${{ secrets.AWS_REGION }}\n",
        (("AWS_ROLE_ARN", "the IAM role to assume"), ("AWS_REGION", "e.g. us-east-1")),
    ),
    "azure": (
        "      - name: Log into Azure (OIDC)\n"
        "        uses: azure/login@v2\n"
        "        with:\n"
        "          client-id: ${{ secrets.AZURE_CLIENT_ID }}\n"
        "          tenant-id: ${{ secrets.AZURE_TENANT_ID }}\n"
        "          subscription-id: ${{ secrets.AZURE_SUBSCRIPTION_ID }}\n",
        (
            ("AZURE_CLIENT_ID", "the federated app registration"),
            ("AZURE_TENANT_ID", "its tenant"),
            ("AZURE_SUBSCRIPTION_ID", "the billed subscription"),
        ),
    ),
    "gcp": (
        "      - name: Log into Google Cloud (OIDC)\n"
        "        uses: google-github-actions/auth@v2\n"
        "        with:\n"
        "          workload_identity_provider: ${{ secrets.GCP_WORKLOAD_IDENTITY_PROVIDER }}\n"
        "          service_account: ${{ secrets.GCP_SERVICE_ACCOUNT }}\n",
        (
            ("GCP_WORKLOAD_IDENTITY_PROVIDER", "projects/N/locations/global/..."),
            ("GCP_SERVICE_ACCOUNT", "the billing reader's e-mail"),
        ),
    ),
}


@dataclass(frozen=True)
class _Layout:
    """What the templates need to know about the project in ``folder``."""

    clouds: tuple[str, ...]
    repo_url: str
    #: cloudbalance.yaml relative to the infrastructure repository's root, when it lives there
    config_in_repo: str | None
    #: where git.repo points, relative to the config (the clone's folder when not inside)
    repo_dir: str


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _layout(folder: Path) -> _Layout:
    from cloudbalance.config import CONFIG_FILENAME, Settings, load_config

    config = folder / CONFIG_FILENAME
    settings = load_config(config) if config.is_file() else Settings()
    clouds = tuple(c for c in _CLOUDS if c in settings.providers) if config.is_file() else _CLOUDS
    repo = settings.resolve(settings.git.repo)
    root = _git(repo, "rev-parse", "--show-toplevel") if repo.is_dir() else None
    url = _git(repo, "remote", "get-url", settings.git.remote) if root else None
    inside: str | None = CONFIG_FILENAME if root is None else None
    if root is not None:
        try:
            inside = config.resolve().relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            inside = None
    repo_dir = settings.git.repo
    where = PurePosixPath(repo_dir)
    if where.is_absolute() or ".." in where.parts or repo_dir in (".", ""):
        repo_dir = "infra"  # the clone must land on the scratch volume, beside the config
    return _Layout(clouds, url or _PLACEHOLDER_URL, inside, repo_dir)


def _package(clouds: tuple[str, ...]) -> str:
    return f"cloudbalance[{','.join(clouds)}]" if clouds else "cloudbalance"


def _values(scheduler: str, layout: _Layout) -> dict[str, str]:
    """The placeholders of one template, beyond cron, folder, image and executable."""
    package = _package(layout.clouds)
    if scheduler == "github":
        secrets = [s for cloud in layout.clouds for s in _LOGIN[cloud][1]]
        doc = [f"#   {name}: {what}" for name, what in secrets] or ["#   (no cloud provider)"]
        return {
            "secrets_doc": "\n".join(doc),
            "cloud_login": "".join("\n" + _LOGIN[cloud][0] for cloud in layout.clouds),
            "package": package,
            "config": layout.config_in_repo or "cloudbalance.yaml",
        }
    if scheduler == "kubernetes":
        if layout.config_in_repo is not None:  # the config is versioned with the stacks
            return {
                "package": package,
                "repo_url": layout.repo_url,
                "clone_dir": "repo",
                "config": f"repo/{layout.config_in_repo}",
                "copy_config": "",
                "config_doc": f"# The config is read from the clone: {layout.config_in_repo}",
                "config_mount": "",
                "config_volume": "",
            }
        return {
            "package": package,
            "repo_url": layout.repo_url,
            "clone_dir": layout.repo_dir,
            "config": "cloudbalance.yaml",
            "copy_config": "                  cp /config/cloudbalance.yaml cloudbalance.yaml\n",
            "config_doc": "#   kubectl create configmap cloudbalance-config "
            f"--from-file=cloudbalance.yaml   (with git.repo: {layout.repo_dir})",
            "config_mount": " " * 16 + "- {name: config, mountPath: /config, readOnly: true}\n",
            "config_volume": "            - name: config\n"
            "              configMap: {name: cloudbalance-config}\n",
        }
    return {}


def render_schedule(
    scheduler: str,
    *,
    cron: str = "17 6 * * *",
    folder: str | Path = ".",
    image: str = "ghcr.io/your-org/cloudbalance:latest",
) -> str:
    """The text of one schedule, for the project whose cloudbalance.yaml is in ``folder``.

    Raises:
        ConfigError: Unknown scheduler, a cron expression without 5 fields, or a
            cloudbalance.yaml in ``folder`` that does not load.
    """
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"unknown scheduler {scheduler!r}; use one of {', '.join(SCHEDULERS)}")
    _check_cron(cron)
    template = (_TEMPLATES / SCHEDULERS[scheduler][0]).read_text(encoding="utf-8")
    executable = shutil.which("cloudbalance") or f"{sys.executable} -m cloudbalance.cli"
    root = Path(folder).resolve()
    return template.format(
        cron=cron,
        folder=root,
        image=image,
        executable=executable,
        **_values(scheduler, _layout(root)),
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
