"""`cloudbalance stack init`, `preview` and `up`: generated projects, and Pulumi through its API."""

from __future__ import annotations

import ast
import io
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation

from cloudbalance import stacks as stacks_module
from cloudbalance.cli import main
from cloudbalance.exceptions import ConfigError, StackConfigError
from cloudbalance.gitops import read_placements, validate_stack_config
from cloudbalance.stacks import (
    INSTALL_URL,
    TEMPLATES,
    OperationResult,
    PulumiNotInstalledError,
    StackOperationError,
    init_stack,
    preview,
    template_dir,
    up,
    validate_project_file,
)

REPO = Path(__file__).resolve().parents[1]
PROJECT_SCHEMA = REPO.parent / "shared" / "schemas" / "pulumi-project.schema.json"


@pytest.fixture
def project_schema() -> Path:
    if not PROJECT_SCHEMA.is_file():
        pytest.skip(f"Pulumi's project schema is not available at {PROJECT_SCHEMA}")
    return PROJECT_SCHEMA


@pytest.fixture
def no_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH with no `pulumi` on it."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def fake_pulumi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `pulumi` on PATH (never run: the Automation API entry point is replaced in each test)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable = bin_dir / "pulumi"
    executable.write_text("#!/bin/sh\nexit 3\n", encoding="utf-8")
    executable.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir) + os.pathsep + os.environ.get("PATH", ""))


class FakeStack:
    """Stands in for `pulumi.automation.Stack`, recording calls and streaming output lines."""

    def __init__(self, *, fail_with: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail_with = fail_with

    def _emit(self, on_output: Any, operation: str) -> None:
        self.calls.append(operation)
        if self.fail_with is not None:
            raise automation.errors.CommandError(
                automation.CommandResult(stdout="", stderr=self.fail_with, code=255)
            )
        if on_output is not None:
            on_output(f"Previewing {operation} (dev)\n")
            on_output("Resources: 3 to create\n")

    def preview(self, on_output: Any = None) -> automation.PreviewResult:
        self._emit(on_output, "preview")
        return automation.PreviewResult(
            stdout="", stderr="", change_summary={automation.OpType.CREATE: 3, "same": 2}
        )

    def up(self, on_output: Any = None) -> automation.UpResult:
        self._emit(on_output, "up")
        summary = automation.UpdateSummary(
            kind="update", start_time=None, message="", environment={}, config={},
            result="succeeded", end_time=None, version=1, deployment=None,
            resource_changes={"create": 3},
        )  # fmt: skip
        outputs = {
            "checkout/aws-us-east-1/endpoint": automation.OutputValue("lb.example.com", False),
            "db-password": automation.OutputValue("hunter2", True),
        }
        return automation.UpResult(stdout="", stderr="", summary=summary, outputs=outputs)


@pytest.fixture
def fake_stack(monkeypatch: pytest.MonkeyPatch, fake_pulumi: None) -> tuple[FakeStack, list[Any]]:
    stack = FakeStack()
    selected: list[Any] = []

    def create_or_select_stack(*, stack_name: str, work_dir: str) -> FakeStack:
        selected.append((stack_name, work_dir))
        return stack

    monkeypatch.setattr(automation, "create_or_select_stack", create_or_select_stack)
    return stack, selected


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return init_stack("service", tmp_path / "svc").directory


# --- stack init ---------------------------------------------------------------------------------


@pytest.mark.parametrize("template", TEMPLATES)
def test_init_writes_a_project_valid_against_pulumis_schema_and_ours(
    tmp_path: Path, project_schema: Path, template: str
) -> None:
    result = init_stack(template, tmp_path / "infra", project="shop-infra", stack="prod")

    project_file = result.directory / "Pulumi.yaml"
    document = validate_project_file(project_file, schema=project_schema)
    assert document["name"] == "shop-infra"
    assert document["runtime"]["name"] == "python"
    assert result.stack_file.name == "Pulumi.prod.yaml"
    validate_stack_config(result.stack_file)
    placements = read_placements(
        result.stack_file.read_text(encoding="utf-8"), file=str(result.stack_file)
    )
    assert placements
    assert all(replicas >= 0 for found in placements.values() for replicas in found.values())
    assert {
        "Pulumi.yaml",
        "Pulumi.prod.yaml",
        "__main__.py",
        "requirements.txt",
        ".gitignore",
    } <= set(result.files)
    assert "workload_placements.py" in result.files
    assert sorted(p.name for p in result.directory.iterdir()) == sorted(result.files)


@pytest.mark.parametrize("template", TEMPLATES)
def test_generated_program_is_the_shipped_template_byte_for_byte(
    tmp_path: Path, template: str
) -> None:
    result = init_stack(template, tmp_path / "infra")

    source = template_dir(template)
    for name in result.files:
        if name.endswith(".py") or name == "requirements.txt":
            assert (result.directory / name).read_bytes() == (source / name).read_bytes(), name
    assert (result.directory / "Pulumi.dev.yaml").read_bytes() == (
        source / "Pulumi.dev.yaml"
    ).read_bytes()
    shared = REPO / "stacks" / "common" / "workload_placements.py"
    assert (result.directory / "workload_placements.py").read_bytes() == shared.read_bytes()
    assert not (result.directory / "workload_placements.py").is_symlink()


def test_generated_programs_do_not_import_cloudbalance(tmp_path: Path) -> None:
    for template in TEMPLATES:
        result = init_stack(template, tmp_path / template)
        for path in result.directory.glob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            imported = {
                alias.name.split(".")[0]
                for node in ast.walk(tree)
                if isinstance(node, ast.Import)
                for alias in node.names
            } | {
                (node.module or "").split(".")[0]
                for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom)
            }
            assert "cloudbalance" not in imported, path


def test_project_name_defaults_to_the_directory_and_is_quoted_when_yaml_would_retype_it(
    tmp_path: Path,
) -> None:
    assert init_stack("batch", tmp_path / "fleet").project == "fleet"
    numeric = init_stack("batch", tmp_path / "2024")

    assert validate_project_file(numeric.directory / "Pulumi.yaml")["name"] == "2024"


def test_cli_init_reports_the_project_and_next_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["stack", "init", str(tmp_path / "svc"), "--template", "service"])

    out = capsys.readouterr().out
    assert code == 0
    assert "created service project 'svc'" in out
    assert "cloudbalance preview" in out
    assert (tmp_path / "svc" / "Pulumi.dev.yaml").is_file()


def test_cli_init_validates_against_a_given_project_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps({"type": "object", "required": ["template"]}), encoding="utf-8")

    code = main(
        [
            "stack",
            "init",
            str(tmp_path / "svc"),
            "--template",
            "batch",
            "--project-schema",
            str(strict),
        ]
    )

    err = capsys.readouterr().err
    assert code == 1
    assert "does not match Pulumi's project schema" in err
    assert "'template' is a required property" in err


def test_init_never_writes_into_a_non_empty_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "infra"
    target.mkdir()
    (target / "Pulumi.yaml").write_text("name: mine\nruntime: go\n", encoding="utf-8")

    code = main(["stack", "init", str(target), "--template", "service"])

    assert code == 1
    assert "not an empty directory" in capsys.readouterr().err
    assert (target / "Pulumi.yaml").read_text(encoding="utf-8") == "name: mine\nruntime: go\n"
    assert sorted(p.name for p in target.iterdir()) == ["Pulumi.yaml"]


def test_unknown_template_lists_the_valid_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["stack", "init", str(tmp_path / "x"), "--template", "web"])

    assert code == 1
    assert "unknown stack template 'web'; choose one of: service, batch" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(("project", "stack"), [("my project", "dev"), ("shop", "prod/eu")])
def test_names_pulumi_would_refuse_are_refused_before_writing(
    tmp_path: Path, project: str, stack: str
) -> None:
    with pytest.raises(ConfigError, match="may contain only letters"):
        init_stack("service", tmp_path / "x", project=project, stack=stack)
    assert not (tmp_path / "x").exists()


def test_project_file_with_another_runtime_is_rejected(tmp_path: Path) -> None:
    file = tmp_path / "Pulumi.yaml"
    file.write_text("name: web\nruntime: nodejs\n", encoding="utf-8")

    with pytest.raises(StackConfigError, match="runtime is 'nodejs'") as caught:
        validate_project_file(file)
    assert caught.value.file == str(file)


def test_project_file_that_is_not_yaml_names_the_line(tmp_path: Path) -> None:
    file = tmp_path / "Pulumi.yaml"
    file.write_text("name: web\nruntime: [python\n", encoding="utf-8")

    with pytest.raises(StackConfigError, match="not valid YAML") as caught:
        validate_project_file(file)
    assert caught.value.line is not None


@pytest.mark.parametrize("template", TEMPLATES)
def test_project_virtualenv_is_one_the_wheel_build_leaves_out(template: str) -> None:
    # The wheel force-includes stacks/<template> whole; hatch skips `.venv` there, not `venv`.
    project = validate_project_file(REPO / "stacks" / template / "Pulumi.yaml")

    assert project["runtime"]["options"]["virtualenv"] == ".venv"


def test_wheel_ships_each_template_from_stacks() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    force = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]

    for template in TEMPLATES:
        assert force[f"stacks/{template}"] == f"cloudbalance/templates/stacks/{template}"
        assert (REPO / "stacks" / template / "Pulumi.yaml").is_file()


# --- preview / up without the Pulumi CLI --------------------------------------------------------


@pytest.mark.parametrize("command", [["preview"], ["up", "--yes"], ["up"]])
def test_without_the_pulumi_cli_the_command_says_how_to_install_it(
    project: Path, no_pulumi: None, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code = main([*command, str(project)])

    err = capsys.readouterr().err
    assert code == 1
    assert "the Pulumi CLI is not installed" in err
    assert INSTALL_URL in err
    assert "Traceback" not in err


def test_preview_api_raises_a_typed_error_without_the_cli(project: Path, no_pulumi: None) -> None:
    with pytest.raises(PulumiNotInstalledError, match=r"get\.pulumi\.com"):
        preview(project, stack="dev")


def test_preview_of_a_directory_without_pulumi_yaml_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_pulumi: None
) -> None:
    code = main(["preview", str(tmp_path)])

    assert code == 1
    assert "no Pulumi.yaml here" in capsys.readouterr().err


# --- preview / up through the Automation API -----------------------------------------------------


def test_preview_selects_the_stack_of_the_project_and_streams_pulumis_output(
    project: Path, fake_stack: tuple[FakeStack, list[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    stack, selected = fake_stack

    code = main(["preview", str(project), "--stack", "dev"])

    out = capsys.readouterr().out
    assert code == 0
    assert selected == [("dev", str(project))]
    assert stack.calls == ["preview"]
    assert "Resources: 3 to create" in out
    assert "preview of dev: 3 to create (2 unchanged)" in out


def test_up_with_yes_deploys_and_never_prints_secret_outputs(
    project: Path, fake_stack: tuple[FakeStack, list[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    stack, _ = fake_stack

    code = main(["up", str(project), "--yes"])

    out = capsys.readouterr().out
    assert code == 0
    assert stack.calls == ["up"]
    assert "up of dev: 3 created" in out
    assert "checkout/aws-us-east-1/endpoint: lb.example.com" in out
    assert "db-password: [secret]" in out
    assert "hunter2" not in out


def test_up_asks_first_and_does_nothing_when_refused(
    project: Path,
    fake_stack: tuple[FakeStack, list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    stack, selected = fake_stack
    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))

    code = main(["up", str(project)])

    assert code == 1
    assert "Deploy stack 'dev'" in capsys.readouterr().out
    assert stack.calls == []
    assert selected == []


def test_up_api_returns_changes_and_masked_outputs(
    project: Path, fake_stack: tuple[FakeStack, list[Any]]
) -> None:
    result = up(project, stack="dev")

    assert result == OperationResult(
        operation="up",
        stack="dev",
        work_dir=project,
        changes={"create": 3},
        outputs={"checkout/aws-us-east-1/endpoint": "lb.example.com", "db-password": "[secret]"},
    )


def test_a_pulumi_failure_is_one_line_with_its_first_error(
    project: Path,
    fake_stack: tuple[FakeStack, list[Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    stack, _ = fake_stack
    stack.fail_with = (
        "Updating (dev):\n"
        "error: cloudbalance:workloads.checkout.cpu: must be one of 0.25, 0.5 (got 0.3)\n"
    )

    with pytest.raises(StackOperationError, match=r"pulumi preview failed .*checkout\.cpu") as err:
        preview(project, stack="dev")
    assert isinstance(err.value.__cause__, automation.errors.CommandError)
    assert err.value.stack == "dev"

    code = main(["preview", str(project)])
    assert code == 1
    assert "checkout.cpu: must be one of" in capsys.readouterr().err


def test_invalid_stack_name_is_refused_before_pulumi_runs(
    project: Path, fake_stack: tuple[FakeStack, list[Any]]
) -> None:
    _, selected = fake_stack

    with pytest.raises(ConfigError, match="not a valid Pulumi stack name"):
        preview(project, stack="dev stack")
    assert selected == []


def test_an_installed_wheels_templates_are_preferred_to_a_source_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged = tmp_path / "site" / "cloudbalance"
    service = packaged / "templates" / "stacks" / "service"
    service.mkdir(parents=True)
    (service / "Pulumi.yaml").write_text("name: packaged\nruntime: python\n", encoding="utf-8")
    monkeypatch.setattr(stacks_module.resources, "files", lambda package: packaged)

    assert template_dir("service") == service
    assert template_dir("batch") == REPO / "stacks" / "batch"


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_shared_parser_is_one_file_linked_into_each_project(template: str) -> None:
    linked = REPO / "stacks" / template / "workload_placements.py"

    assert linked.is_symlink()
    assert linked.resolve() == (REPO / "stacks" / "common" / "workload_placements.py").resolve()
