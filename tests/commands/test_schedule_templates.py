"""The schedule templates render, lint and run.

The workflow is validated against the GitHub workflow JSON schema that check-jsonschema ships
(actionlint is not installable without a download); the CronJob against a schema of the batch/v1
fields it uses plus the rules that make it run (every path it writes is a mounted volume, the
store is on the one kept between runs), and its shell script is run against a local repository.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from cloudbalance.exceptions import ConfigError
from cloudbalance.schedule import render_schedule
from tests.conftest import git

_WORKFLOW_SCHEMA = json.loads(
    files("check_jsonschema.builtin_schemas.vendor")
    .joinpath("github-workflows.json")
    .read_text(encoding="utf-8")
)

_CONTAINER = {
    "type": "object",
    "required": ["name", "image", "command"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "image": {"type": "string", "minLength": 1},
        "workingDir": {"type": "string", "pattern": "^/"},
        "command": {"type": "array", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}},
        "env": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"},
                    "value": {"type": "string"},
                    "valueFrom": {"type": "object"},
                },
                "additionalProperties": False,
            },
        },
        "volumeMounts": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "mountPath"],
                "properties": {
                    "name": {"type": "string"},
                    "mountPath": {"type": "string", "pattern": "^/"},
                    "readOnly": {"type": "boolean"},
                },
                "additionalProperties": False,
            },
        },
        "securityContext": {"type": "object"},
        "resources": {"type": "object"},
    },
    "additionalProperties": False,
}

#: The batch/v1 CronJob fields the template uses, with their types (a subset of the API).
_CRONJOB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "batch/v1"},
        "kind": {"const": "CronJob"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["schedule", "jobTemplate"],
            "properties": {
                "schedule": {"type": "string"},
                "timeZone": {"type": "string"},
                "concurrencyPolicy": {"enum": ["Allow", "Forbid", "Replace"]},
                "startingDeadlineSeconds": {"type": "integer", "minimum": 0},
                "successfulJobsHistoryLimit": {"type": "integer", "minimum": 0},
                "failedJobsHistoryLimit": {"type": "integer", "minimum": 0},
                "jobTemplate": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["template"],
                            "properties": {
                                "backoffLimit": {"type": "integer", "minimum": 0},
                                "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                                "template": {
                                    "type": "object",
                                    "required": ["spec"],
                                    "properties": {
                                        "spec": {
                                            "type": "object",
                                            "required": ["containers", "restartPolicy"],
                                            "properties": {
                                                "restartPolicy": {"enum": ["Never", "OnFailure"]},
                                                "serviceAccountName": {"type": "string"},
                                                "securityContext": {"type": "object"},
                                                "containers": {
                                                    "type": "array",
                                                    "minItems": 1,
                                                    "items": _CONTAINER,
                                                },
                                                "volumes": {
                                                    "type": "array",
                                                    "items": {
                                                        "type": "object",
                                                        "required": ["name"],
                                                        "minProperties": 2,
                                                        "maxProperties": 2,
                                                    },
                                                },
                                            },
                                            "additionalProperties": False,
                                        }
                                    },
                                },
                            },
                            "additionalProperties": False,
                        }
                    },
                },
            },
            "additionalProperties": False,
        },
    },
}


def _project(folder: Path, providers: tuple[str, ...] | None, *, repo: str = ".") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if providers is not None:
        lines = ["providers:", *(f"  {p}: {{}}" for p in providers)] if providers else []
        lines += ["git:", f"  repo: {repo}"]
        (folder / "cloudbalance.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _load(text: str) -> Any:
    return YAML(typ="safe").load(text)


def _uses(workflow: Any) -> list[str]:
    return [
        step["uses"].split("@")[0] for step in workflow["jobs"]["run"]["steps"] if "uses" in step
    ]


@pytest.mark.parametrize(
    ("providers", "logins"),
    [
        (
            ("aws", "azure", "gcp"),
            [
                "aws-actions/configure-aws-credentials",
                "azure/login",
                "google-github-actions/auth",
            ],
        ),
        (("gcp", "focus"), ["google-github-actions/auth"]),
        (
            None,
            ["aws-actions/configure-aws-credentials", "azure/login", "google-github-actions/auth"],
        ),
        ((), []),
    ],
    ids=["three clouds", "gcp only", "no config", "no cloud"],
)
def test_workflow_is_valid_and_logs_into_each_configured_cloud_with_oidc(
    tmp_path: Path, providers: tuple[str, ...] | None, logins: list[str]
) -> None:
    text = render_schedule("github", folder=_project(tmp_path, providers), cron="5 4 * * 1-5")
    workflow = _load(text)
    jsonschema.validate(workflow, _WORKFLOW_SCHEMA)
    assert re.findall(r"\$\{\{[^}]*\}\}", text) == re.findall(r"\$\{\{.*?\}\}", text)
    clouds = [u for u in _uses(workflow) if u not in ("actions/checkout", "actions/setup-python")]
    assert [u for u in clouds if u not in ("actions/cache", "actions/upload-artifact")] == logins
    assert workflow["permissions"]["id-token"] == "write"  # OIDC
    assert workflow["permissions"]["contents"] == "write"  # push with the workflow token
    checkout = workflow["jobs"]["run"]["steps"][0]
    assert checkout["with"]["token"] == "${{ github.token }}"
    assert checkout["with"]["persist-credentials"] is True
    run = next(s for s in workflow["jobs"]["run"]["steps"] if s.get("id") == "run")
    cache = next(
        s for s in workflow["jobs"]["run"]["steps"] if s.get("uses", "").startswith("actions/cache")
    )
    assert f"--store {cache['with']['path']}/store.duckdb" in run["run"]
    assert run["env"]["GITHUB_TOKEN"] == "${{ github.token }}"
    install = next(
        s for s in workflow["jobs"]["run"]["steps"] if s.get("name") == "Install cloudbalance"
    )
    for cloud in providers or ():
        assert cloud not in ("aws", "azure", "gcp") or cloud in install["run"]


def _container(job: Any) -> Any:
    return job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


def _check_cronjob(text: str) -> Any:
    job = _load(text)
    jsonschema.validate(job, _CRONJOB_SCHEMA)
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    container = _container(job)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert {m["name"] for m in mounts.values()} == set(volumes)  # every mount has its volume
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    script = container["args"][0]
    store = re.search(r"--store (\S+)", script)
    reports = re.search(r"--report-dir (\S+)", script)
    assert store is not None
    assert reports is not None
    kept = [p for p, m in mounts.items() if "persistentVolumeClaim" in volumes[m["name"]]]
    assert kept == ["/data"]
    assert store.group(1).startswith("/data/")
    assert reports.group(1).startswith("/data/")
    writable = [p for p, m in mounts.items() if not m.get("readOnly")]
    assert container["workingDir"] in writable  # the clone
    assert "/tmp" in writable
    home = next(e["value"] for e in container["env"] if e["name"] == "HOME")
    assert home in writable
    subprocess.run(["sh", "-n", "-c", script], check=True)  # the script parses
    return job


def _run_script(job: Any, tmp_path: Path, config_dir: Path | None = None) -> list[str]:
    """Run the container's script with a fake `cloudbalance` that records what it got."""
    container = _container(job)
    script = container["args"][0]
    if config_dir is not None:
        script = script.replace("/config/", f"{config_dir}/")
    env_values = {e["name"]: e.get("value", "") for e in container["env"]}
    work = tmp_path / "work"
    work.mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    fake = bin_dir / "cloudbalance"
    fake.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do echo "$a"; done > "$RECORD"\n'
        'test -f "$3" || { echo "no config at $3" >&2; exit 9; }\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {
        **{k: v for k, v in os.environ.items() if k != "GIT_CONFIG_GLOBAL"},  # a pod has none
        **env_values,
        "HOME": str(work),
        "GIT_TOKEN": "t0ken",
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "RECORD": str(tmp_path / "args"),
    }
    subprocess.run(["sh", "-ec", script], cwd=work, env=env, check=True, timeout=60)
    return (tmp_path / "args").read_text().splitlines()


def _infra(tmp_path: Path) -> tuple[Path, Path]:
    """A remote and a working copy of an infra repo whose root holds cloudbalance.yaml."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    clone = tmp_path / "infra"
    subprocess.run(["git", "clone", "-q", str(remote), str(clone)], check=True, capture_output=True)
    _project(clone / "ops", ("aws",), repo="..")
    git(clone, "add", "-A")
    git(clone, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "config")
    git(clone, "push", "-q", "origin", "HEAD")
    return remote, clone


def test_cronjob_clones_the_infra_repo_and_reads_its_config_from_the_clone(
    tmp_path: Path, git_identity: Path
) -> None:
    remote, clone = _infra(tmp_path)
    text = render_schedule("kubernetes", folder=clone / "ops", image="registry/cb:1")
    job = _check_cronjob(text)
    assert _container(job)["image"] == "registry/cb:1"
    env = {e["name"]: e for e in _container(job)["env"]}
    assert env["INFRA_REPO_URL"]["value"] == str(remote)
    assert env["GIT_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "cloudbalance-git"
    args = _run_script(job, tmp_path / "pod")
    assert args[:3] == ["run", "--config", "repo/ops/cloudbalance.yaml"]
    assert (tmp_path / "pod" / "work" / "repo" / ".git").is_dir()
    helper = subprocess.run(
        [
            "git",
            "config",
            "--file",
            str(tmp_path / "pod" / "work" / ".gitconfig"),
            "credential.helper",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "$GIT_TOKEN" in helper  # the token is read at push time, never written to disk
    assert "t0ken" not in (tmp_path / "pod" / "work" / ".gitconfig").read_text()


def test_cronjob_with_a_config_beside_the_repo_reads_it_from_a_configmap(
    tmp_path: Path, git_identity: Path
) -> None:
    _infra(tmp_path)
    project = _project(tmp_path, ("azure",), repo="infra")
    job = _check_cronjob(render_schedule("kubernetes", folder=project))
    assert any(
        v["name"] == "config" and "configMap" in v
        for v in job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
    )
    args = _run_script(job, tmp_path / "pod", config_dir=project)
    assert args[:3] == ["run", "--config", "cloudbalance.yaml"]
    assert (tmp_path / "pod" / "work" / "infra" / ".git").is_dir()  # where git.repo points


def test_crontab_runs_in_the_project_folder(tmp_path: Path) -> None:
    text = render_schedule("cron", folder=_project(tmp_path, ("gcp",)), cron="5 4 * * *")
    line = next(x for x in text.splitlines() if x.startswith("5 4 * * *"))
    assert f"cd {tmp_path.resolve()} && " in line
    assert " run >> " in line


@pytest.mark.parametrize("cron", ["*/15 0-6 1,15 jan-mar mon-fri", "0 0 * * 7", "5 4 * * 1-5"])
def test_cron_expressions_the_schedulers_accept_pass(tmp_path: Path, cron: str) -> None:
    assert cron in render_schedule("cron", folder=tmp_path, cron=cron)


@pytest.mark.parametrize(
    ("cron", "why"),
    [
        ("a b c d e", "minute 'a'"),
        ("60 * * * *", "minute '60'"),
        ("* 24 * * *", "hour '24'"),
        ("* * 0 * *", "day '0'"),
        ("*/x * * * *", "minute '*/x'"),
        ("* * * 13 *", "month '13'"),
    ],
)
def test_a_cron_expression_no_scheduler_would_run_is_refused(
    tmp_path: Path, cron: str, why: str
) -> None:
    from cloudbalance.cli import main

    assert main(["schedule", "init", str(tmp_path), "--cron", cron]) == 1
    assert not list(tmp_path.iterdir())
    with pytest.raises(ConfigError, match=re.escape(why)):
        render_schedule("cron", folder=tmp_path, cron=cron)
