"""The command line as a contract: every command, enumerated from the app, held to the same rules.

New commands are covered without touching this file: the cases are built from the click tree.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cloudbalance.cli import command, main, walk
from cloudbalance.commands._common import Steps, comma_list
from tests.conftest import focus_rows

TREE = walk(command())
#: What runs: commands, and groups that also run without a subcommand (`anomalies -i ...`).
LEAVES = [
    (path, cmd)
    for path, cmd in TREE
    if path and (not hasattr(cmd, "commands") or cmd.invoke_without_command)
]
GROUPS = [(path, cmd) for path, cmd in TREE if hasattr(cmd, "commands")]


def _ids(items: list[tuple[tuple[str, ...], Any]]) -> list[str]:
    return [" ".join(path) or "cloudbalance" for path, _ in items]


def _mistakes(path: tuple[str, ...], cmd: Any) -> list[list[str]]:
    """Usage mistakes that must all fail while parsing, before the command does anything."""
    argv = list(path)
    cases = [[*argv, "--no-such-option"], [*argv, "-Z"]]
    if any(p.required for p in cmd.params):
        cases.append(argv)  # a required argument or option is missing
    for param in cmd.params:
        if param.param_type_name != "option" or getattr(param, "is_flag", False):
            continue
        name = param.opts[0]
        cases.append([*argv, name])  # the option's value is missing
        desc = param.type_descriptor
        if desc.is_choice:
            cases.append([*argv, name, "no-such-choice"])
        elif desc.annotation is int:
            cases += [[*argv, name, "abc"], [*argv, name, "1.5"]]
        elif desc.annotation is float:
            cases.append([*argv, name, "abc"])
    return cases


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=_ids(LEAVES))
def test_every_usage_mistake_exits_1_with_one_line(
    path: tuple[str, ...], cmd: Any, empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in _mistakes(path, cmd):
        code, out, err = run(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 1, (argv, err)
        assert len(lines) == 1, (argv, err)
        assert lines[0].startswith("error: "), (argv, err)
        assert "Traceback" not in err, argv
        assert out == "", argv
    assert list(empty.iterdir()) == []  # a refused command wrote nothing, no store either


@pytest.mark.parametrize(("path", "cmd"), GROUPS, ids=_ids(GROUPS))
def test_groups_refuse_an_unknown_command_and_show_help_without_one(
    path: tuple[str, ...], cmd: Any, empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, *path, "no-such-command")
    assert code == 1
    assert err.startswith("error: No such command 'no-such-command'")
    assert len(err.strip().splitlines()) == 1
    code, out, err = run(capsys, *path)
    if cmd.invoke_without_command:  # it runs alone: what it misses is one clear line
        assert code == 1
        assert len(err.strip().splitlines()) == 1
    else:
        assert code == 0
        assert "Usage: cloudbalance" in out


@pytest.mark.parametrize(("path", "cmd"), TREE, ids=_ids(TREE))
def test_help_shows_what_to_type_never_type_names_or_markup(
    path: tuple[str, ...], cmd: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, *path, "--help")
    assert code == 0
    assert run(capsys, *path, "-h") == (0, out, "")
    for leftover in ("<bool>", "<str>", "<int>", "<float>", "<path>", "list[", "``", ":class:"):
        assert leftover not in out, leftover


def test_options_have_one_spelling_everywhere() -> None:
    spelled: dict[str, set[tuple[str, ...]]] = {}
    for path, cmd in LEAVES:
        for param in cmd.params:
            if param.param_type_name != "option":
                continue
            if param.name == "config":
                assert set(param.opts) == {"-c", "--config"}, path
            if param.name == "store":
                assert param.opts == ["--store"], path
            if "--output" in param.opts or "-o" in param.opts:
                assert set(param.opts) - {"--report-dir"} == {"-o", "--output"}, path
            if "--format" in param.opts:
                assert set(param.opts) == {"-f", "--format"}, path
                assert param.type_descriptor.is_choice, path
            spelled.setdefault(param.name, set()).add(tuple(sorted(param.opts)))
    assert not [opts for name, opts in spelled.items() if name == "config" and len(opts) > 1]


def test_commands_reading_the_store_take_config_and_store() -> None:
    for name in ("ingest", "costs", "prices", "sync", "forecast", "plan", "run", "report"):
        params = {p.name for p in command().commands[name].params}  # type: ignore[attr-defined]
        assert {"config", "store"} <= params, name


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=_ids(LEAVES))
def test_a_command_that_reads_the_config_or_store_takes_its_option(
    path: tuple[str, ...], cmd: Any
) -> None:
    import inspect

    source = inspect.getsource(getattr(cmd.callback, "__wrapped__", cmd.callback))
    names = {p.name for p in cmd.params}
    if any(call in source for call in ("settings_for(", "load_config(", "write_schedules(")):
        assert "config" in names
    if "open_store(" in source or "Store(" in source:
        assert "store" in names


def test_schedule_init_takes_the_config(empty: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (empty / "ops").mkdir()
    (empty / "ops" / "cloudbalance.yaml").write_text("providers:\n  gcp: {}\n", encoding="utf-8")
    code, _, err = run(capsys, "schedule", "init", "-c", "ops/cloudbalance.yaml", "--for", "github")
    assert code == 0, err
    workflow = (empty / "ops" / ".github" / "workflows" / "cloudbalance.yml").read_text()
    assert "google-github-actions/auth" in workflow
    assert "aws-actions" not in workflow


def test_error_text_is_printed_literally(empty: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # line 100 once printed as `cloudbalance.yaml💯` (rich emoji codes)
    lines = ["# padding"] * 99 + ["colour: [red]"]
    (empty / "cloudbalance.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _, err = run(capsys, "config", "check")
    assert code == 1
    assert "cloudbalance.yaml:100:" in err
    assert "\U0001f4af" not in err


def test_paths_with_brackets_are_printed_as_written(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = empty / "[prod]"
    folder.mkdir()
    (folder / "cloudbalance.yaml").write_text("workloads: {}\n", encoding="utf-8")
    focus_rows(2).to_csv(empty / "export.csv", index=False)
    code, out, _ = run(capsys, "config", "check", "-c", str(folder / "cloudbalance.yaml"))
    assert code == 0
    assert "[prod]/cloudbalance.yaml" in out
    code, out, _ = run(capsys, "ingest", "export.csv", "--store", "[s].duckdb")
    assert code == 0
    assert out.rstrip().endswith("-> [s].duckdb")


def test_tables_print_data_literally(capsys: pytest.CaptureFixture[str]) -> None:
    from cloudbalance.commands._common import emit_frame

    emit_frame(pd.DataFrame({"workload": ["[bold]web[/] :100:"], "amount": [1.5]}), "table")
    assert "[bold]web[/] :100:" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["costs"],
        ["prices"],
        ["report"],
        ["verify"],
        ["forecast", "-n", "3", "-o", "f.csv"],
        ["forecast", "-n", "3", "-o", "f.csv", "--kind", "demand"],
    ],
    ids=lambda argv: " ".join(argv[:3]),
)
def test_commands_that_only_read_never_create_a_store(
    argv: list[str], empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (empty / "infra").mkdir()
    subprocess.run(["git", "init", "-q", str(empty / "infra")], check=True)
    (empty / "cloudbalance.yaml").write_text("git:\n  repo: infra\n", encoding="utf-8")
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert "no store at" in err
    assert "run `cloudbalance ingest`" in err
    assert not (empty / ".cloudbalance").exists()


def test_store_option_is_used_by_every_step(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    focus_rows(3).to_csv(empty / "export.csv", index=False)
    assert run(capsys, "ingest", "export.csv", "--store", "elsewhere/s.duckdb")[0] == 0
    assert (empty / "elsewhere" / "s.duckdb").is_file()
    assert not (empty / ".cloudbalance").exists()
    code, out, _ = run(capsys, "costs", "--store", "elsewhere/s.duckdb", "-f", "csv")
    assert code == 0
    assert "6.91" in out


def test_lists_take_commas_and_repeats_alike(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert comma_list(["a,b", " c ", ""]) == ["a", "b", "c"]
    assert comma_list([Path("x.rego,y.rego")]) == [Path("x.rego"), Path("y.rego")]
    focus_rows(3).to_csv(empty / "export.csv", index=False)
    run(capsys, "ingest", "export.csv")
    _, commas, _ = run(capsys, "costs", "--by", "workload,day", "-f", "csv")
    _, repeats, _ = run(capsys, "costs", "--by", "workload", "--by", "day", "-f", "csv")
    assert commas == repeats
    assert commas.splitlines()[0] == "workload,day,currency,amount,lines"


def test_costs_csv_is_accepted_by_forecast_input(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    focus_rows(40).to_csv(empty / "export.csv", index=False)
    run(capsys, "ingest", "export.csv")
    code, out, _ = run(capsys, "costs", "--by", "workload,day", "-f", "csv")
    (empty / "costs.csv").write_text(out, encoding="utf-8")
    argv = ["forecast", "-i", "costs.csv", "-n", "3", "-o", "f.csv", "--model", "seasonal_naive"]
    code, _, err = run(capsys, *argv)
    assert code == 0, err
    forecast = pd.read_csv(empty / "f.csv")
    assert set(forecast["unique_id"]) == {"checkout"}
    assert set(forecast["kind"]) == {"cost"}


def _prices(observed: str) -> pd.DataFrame:
    rows = [
        {
            "ProviderName": provider,
            "RegionId": region,
            "SkuId": "std-2",
            "vcpus": 2.0,
            "memory_gib": 8.0,
            "unit_price": hourly,
            "price_kind": "on_demand",
            "PricingUnit": "Hours",
            "BillingCurrency": "USD",
            "observed_at": observed,
        }
        for provider, region, hourly in (
            ("AWS", "us-east-1", 0.4),
            ("Google Cloud", "us-central1", 0.3),
        )
    ]
    return pd.DataFrame(rows)


def test_demand_forecast_and_exported_prices_feed_the_planner(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cloudbalance.store import Store

    (empty / "cloudbalance.yaml").write_text(
        "workloads:\n  checkout:\n    match: {tags: [checkout]}\n"
        "    replica: {vcpus: 2, memory_gib: 8}\n"
        "    allowed: ['aws:us-east-1', 'gcp:us-central1']\n",
        encoding="utf-8",
    )
    focus_rows(40).to_csv(empty / "export.csv", index=False)
    run(capsys, "ingest", "export.csv")
    with Store(empty / ".cloudbalance" / "store.duckdb") as store:
        store.ingest_prices(_prices("2025-02-09T00:00:00"), source="test")

    code, _, err = run(capsys, "prices", "-o", "prices.csv")
    assert code == 0, err
    assert list(pd.read_csv(empty / "prices.csv").columns[:3]) == [
        "ProviderName",
        "RegionId",
        "SkuId",
    ]
    demand = ["forecast", "--kind", "demand", "-n", "3", "--model", "seasonal_naive"]
    code, _, err = run(capsys, *demand, "-o", "demand.csv")
    assert code == 0, err
    frame = pd.read_csv(empty / "demand.csv")
    assert set(frame["kind"]) == {"demand"}
    assert frame["yhat"].round(6).eq(1.0).all()  # 24 instance-hours a day: one replica

    code, _, err = run(capsys, "plan", "-d", "demand.csv", "-p", "prices.csv", "-o", "plan.json")
    assert code == 0, err
    assert json.loads((empty / "plan.json").read_text())["plan_id"]

    run(capsys, "forecast", "-n", "3", "--model", "seasonal_naive", "-o", "cost.csv")
    code, _, err = run(capsys, "plan", "-d", "cost.csv", "-p", "prices.csv")
    assert code == 1
    assert "--demand needs a demand forecast (replicas) but this is a cost forecast (money)" in err
    assert "cost.csv, row 1, column 'kind'" in err


def test_demo_refuses_a_folder_holding_a_users_files(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = "# my own configuration\nworkloads: {}\n"
    (empty / "cloudbalance.yaml").write_text(mine, encoding="utf-8")
    code, _, err = run(capsys, "demo", ".")
    assert code == 1
    assert "already holds files the demo did not write (cloudbalance.yaml)" in err
    assert (empty / "cloudbalance.yaml").read_text(encoding="utf-8") == mine
    assert sorted(p.name for p in empty.iterdir()) == ["cloudbalance.yaml"]


def test_demo_folder_may_be_new_empty_or_an_earlier_demo(tmp_path: Path) -> None:
    from cloudbalance.demo.run import DEMO_MARKER, claim_demo_folder
    from cloudbalance.exceptions import ConfigError

    claim_demo_folder(tmp_path / "new")
    assert (tmp_path / "new" / DEMO_MARKER).is_file()
    (tmp_path / "new" / "cloudbalance.yaml").write_text("# demo\n", encoding="utf-8")
    claim_demo_folder(tmp_path / "new")  # its own folder: reused
    old = tmp_path / "old"
    old.mkdir()
    (old / "cloudbalance.yaml").write_text("# Written by `cloudbalance demo`: ...\n")
    claim_demo_folder(old)  # written before the marker existed
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        claim_demo_folder(tmp_path / "file")


def test_config_init_takes_a_folder_or_the_file_itself(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "config", "init", "ops/cloudbalance.yaml")[0] == 0
    assert (empty / "ops" / "cloudbalance.yaml").is_file()
    assert run(capsys, "config", "init", "other")[0] == 0
    assert (empty / "other" / "cloudbalance.yaml").is_file()


def test_apply_says_what_the_configured_mode_will_do_before_doing_it(
    empty: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_plan_command import write_inputs

    files = write_inputs(empty)
    argv = ["plan", "-d", str(files["demand"]), "-p", str(files["prices"])]
    argv += ["--current", str(files["current"]), "-w", str(files["workloads"]), "-o", "plan.json"]
    assert run(capsys, *argv)[0] == 0
    (empty / "infra").mkdir()
    (empty / "cloudbalance.yaml").write_text(
        "git:\n  repo: infra\n  mode: commit\n", encoding="utf-8"
    )
    code, _, err = run(capsys, "apply", "plan.json", "--no-policies")
    assert code == 1  # infra/ is no Git repository: nothing was written
    first, last = err.strip().splitlines()
    assert first.startswith("apply: git.mode is 'commit' in ")
    assert "will commit to the current branch of " in first
    assert "push to origin" in first
    assert "pass --mode dry-run" in first
    assert last.startswith("error: ")
    code, _, err = run(capsys, "apply", "plan.json", "--no-policies", "--mode", "dry-run")
    assert "git.mode" not in err


def test_progress_prints_plain_lines_for_slow_steps_only_off_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Steps(delay=0.05, tty=False) as steps:
        task = steps.add_task("quick")
        steps.update(task, description="slow step")
        time.sleep(0.4)
        steps.update(task, description="another quick one")
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].endswith("s slow step ...")
    assert "quick" not in err


def test_progress_on_a_terminal_is_a_spinner(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    from cloudbalance.commands import _common

    terminal = Console(stderr=True, force_terminal=True)  # stderr is a terminal, stdout a file
    monkeypatch.setattr(_common.err_console, "_console", terminal)
    with Steps(tty=True) as steps:
        task = steps.add_task("reading")
        steps.update(task, description="writing")
        sys.stdout.write("a,b\n1,2\n")
    out, _ = capsys.readouterr()
    assert out == "a,b\n1,2\n"  # data piped to a file stays on stdout, not on the spinner's


_SLOW = [
    "ingest",
    "costs",
    "prices",
    "sync",
    "forecast",
    "anomalies",
    "plan",
    "apply",
    "revert",
    "check",
    "verify",
    "report",
    "run",
    "demo",
]


@pytest.mark.parametrize(
    "path",
    [(name,) for name in _SLOW] + [("providers", "check"), ("policy", "check"), ("policy", "test")],
    ids=" ".join,
)
def test_commands_that_can_take_a_while_show_progress(path: tuple[str, ...]) -> None:
    import inspect

    cmd = dict(TREE)[path]
    callback = cmd.callback
    assert hasattr(callback, "__wrapped__") or "progress()" in inspect.getsource(callback)


def _fresh(code: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


_HEAVY = ("pandas", "numpy", "duckdb", "rich", "pydantic", "ruamel.yaml", "cloudbalance.store")


@pytest.mark.parametrize(
    "argv", [["--help"], ["costs", "--help"], ["forecast", "--help"], ["config", "check", "--help"]]
)
def test_help_loads_no_heavy_module_in_a_fresh_process(argv: list[str]) -> None:
    loaded = _fresh(
        "import contextlib, io, json, sys\n"
        "from cloudbalance.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main({argv!r}) == 0\n"
        f"print(json.dumps([m for m in {_HEAVY!r} if m in sys.modules]))\n"
    )
    assert loaded == []


def test_version_answers_without_the_command_line_framework() -> None:
    loaded = _fresh(
        "import json, sys\n"
        "from cloudbalance.cli import main\n"
        "assert main(['--version']) == 0\n"
        f"print(json.dumps([m for m in {(*_HEAVY, 'typer')!r} if m in sys.modules]))\n"
    )
    assert loaded == []
