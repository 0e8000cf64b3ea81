"""Fuzz corpora helpers: run the CLI in-process and judge how it refused an input."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main

from cloudbalance.cli import main


@dataclass(frozen=True)
class Outcome:
    """What one CLI call did."""

    code: int
    out: str
    err: str

    def assert_user_error_or_ok(self) -> None:
        """Exit 0 or 1, never an internal error, never a traceback."""
        assert self.code in (0, 1), self.err
        assert "Traceback" not in self.err + self.out
        assert "internal error" not in self.err

    def assert_refused(self, *needles: str) -> None:
        """Exit 1 with one error message that names each of ``needles``."""
        self.assert_user_error_or_ok()
        assert self.code == 1, f"accepted: {self.out}"
        for needle in needles:
            assert needle in self.err, f"{needle!r} not in {self.err!r}"


Cli = Callable[..., Outcome]

_BUILD_COMMAND = typer.main.get_command
_COMMANDS: dict[int, Any] = {}


def _cached_command(app: typer.Typer) -> Any:
    """Typer rebuilds the whole click command tree on every call (~0.2 s); hundreds of in-process
    calls reuse one tree (click commands hold no state between invocations)."""
    if id(app) not in _COMMANDS:
        _COMMANDS[id(app)] = _BUILD_COMMAND(app)
    return _COMMANDS[id(app)]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run ``cloudbalance ARGS`` in-process from an empty folder (no config found by accident)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "400")  # one error line stays one line
    monkeypatch.setattr(typer.main, "get_command", _cached_command)

    def run(*args: str | Path) -> Outcome:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return run
