"""Guardrails as code: Rego policies evaluated in-process before any change is written.

Policies follow the conftest convention so that files people already write for conftest or OPA
work unchanged: each ``package`` may define ``deny`` and ``warn`` rules (and ``deny_<name>`` /
``warn_<name>`` variants), each a set of messages (a string, or an object with a ``msg`` field).
A ``deny`` stops the change; a ``warn`` is written into the commit message and pull-request body.
Rules named ``test_<name>`` are unit tests, run by :meth:`PolicySet.run_tests`.

Policies are evaluated with regopy (the Python binding of rego-cpp), in the process: no OPA
server, no network. Policies must use Rego v1 syntax (``deny contains msg if { ... }``), the
default of OPA 1.0 and of current conftest.

Every policy sees one input document, whether the change comes from a plan or from a stack-config
diff (a person's pull request), so a single policy covers both. Its shape is versioned
(:data:`POLICY_INPUT_VERSION`) and described by ``schemas/policy-input.schema.json``::

    {
      "version": 1,
      "kind": "plan" | "stack-diff",
      "now": "2026-11-23",               # the day the change would be written (UTC)
      "mode": "commit" | "pr" | "branch" | "check" | "dry-run",
      "changes": [{workload, cloud, region, location, before, after, delta,
                   saving, reason}],            # saving and reason only for a plan
      "workloads": {workload: {allowed, min_locations, max_share, configured,
                               placements: {"cloud:region": replicas}, current: {...}}},
      "placements": {workload: {"cloud:region": replicas}},  # touched workloads, after
      "current": {workload: {"cloud:region": replicas}},     # touched workloads, before
      "summary": {workloads, moves, replicas_before, replicas_after, replicas_moved,
                  share_moved},                # over the touched workloads
      "costs": {"currency", "monthly_by_cloud": {cloud: amount} | null},
      "plan": {plan_id, confidence, saving, expected_cost, baseline_cost, currency, horizon,
               period, period_start, notes, forecast: {workload: {...}}} | null,
      "diff": {files: [..], base, head} | null,
      "settings": {workloads: {name: {allowed, min_locations, max_share}},
                   guardrails: {max_share_moved, max_moves, min_confidence_commit, freeze,
                                max_monthly_cost}}
    }

Why the document is compact (placements as ``{location: replicas}`` maps, each change listed
once): rego-cpp builds one node per value, and a 5,000-move plan must evaluate in under a second.
Why aggregate messages per workload in the starter policies: rego-cpp stores a rule's set of
messages so that inserting ``n`` distinct messages costs about ``n**2`` comparisons; a policy that
yields one message per move of a 5,000-move plan takes seconds, one per workload milliseconds.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cloudbalance.exceptions import PolicyDeniedError, PolicyError
from cloudbalance.models import MODES, Location, Move, Plan, replicas_relocated
from cloudbalance.models import Mode as WriteMode

if TYPE_CHECKING:
    import pandas as pd

    from cloudbalance.config import GuardrailSettings, Settings

__all__ = [
    "POLICY_INPUT_VERSION",
    "STARTER_POLICIES",
    "Mode",
    "PolicyGate",
    "PolicyMessage",
    "PolicyReport",
    "PolicySet",
    "PolicyTestResult",
    "as_mode",
    "check_policies",
    "diff_input",
    "load_policies",
    "plan_input",
    "policy_gate",
    "stack_diff_placements",
    "starter_policy_paths",
]

#: Version of the input document policies receive; bumped on any incompatible change.
POLICY_INPUT_VERSION = 1

#: The starter library shipped in ``cloudbalance/policies`` (file stem -> what it guards).
STARTER_POLICIES: dict[str, str] = {
    "residency": "a workload runs only in its allowed locations (workloads.<name>.allowed)",
    "max_share_moved": "at most guardrails.max_share_moved of the replicas and "
    "guardrails.max_moves moves per change",
    "min_locations": "a workload keeps at least workloads.<name>.min_locations locations (HA)",
    "max_monthly_cost": "estimated monthly cost per cloud stays under guardrails.max_monthly_cost",
    "freeze": "no change during a guardrails.freeze window",
    "confidence": "a direct commit needs a plan confidence of guardrails.min_confidence_commit",
}

#: The write mode the input document describes: a :data:`cloudbalance.models.Mode` once ``auto``
#: has chosen, or ``check`` (a pull request evaluated in CI, written by someone else).
Mode = Literal[WriteMode, "check"]
_MODES: tuple[Mode, ...] = (*(m for m in MODES if m != "auto"), "check")

_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)
_RULE = re.compile(r"^(deny|warn|violation)(_\w+)?\b(?=\s*(contains|if|:=|=|\{|\[))", re.MULTILINE)
_TEST = re.compile(r"^(test_\w+)\b", re.MULTILINE)
_IMPORT = re.compile(r"^import\s+[^\n]+", re.MULTILINE)
_V0_RULE = re.compile(r"^(deny|warn|violation)(_\w+)?\[\w+\]\s*\{", re.MULTILINE)
_REGO_ERROR = re.compile(
    r"\(error \d+:(?P<file>[^|]*)\|(?P<offset>\d+)\|\d+\s*\(errormsg \d+:(?P<msg>[^)]*)\)"
)


# ---------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class PolicyMessage:
    """One message yielded by a ``deny`` or ``warn`` rule.

    Attributes:
        kind: ``deny`` or ``warn``.
        message: What the rule said.
        package: The Rego package (``cloudbalance.starter.residency``).
        rule: The rule name (``deny``, ``warn_budget``...).
        file: The policy file that defines the package.
    """

    kind: Literal["deny", "warn"]
    message: str
    package: str
    rule: str
    file: str

    def to_dict(self) -> dict[str, str]:
        """Plain JSON-ready form."""
        return {
            "kind": self.kind,
            "message": self.message,
            "package": self.package,
            "rule": self.rule,
            "file": self.file,
        }


@dataclass(frozen=True)
class PolicyReport:
    """The outcome of evaluating a policy set on one input document.

    Attributes:
        denies: Messages of ``deny`` rules (the change must not be written).
        warnings: Messages of ``warn`` rules (written into commit message and PR body).
        packages: The packages evaluated.
        files: The policy files evaluated.
    """

    denies: tuple[PolicyMessage, ...] = ()
    warnings: tuple[PolicyMessage, ...] = ()
    packages: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    @property
    def denied(self) -> bool:
        """Whether any ``deny`` rule fired."""
        return bool(self.denies)

    @property
    def deny_messages(self) -> list[str]:
        """The ``deny`` messages, as text."""
        return [m.message for m in self.denies]

    @property
    def warning_messages(self) -> list[str]:
        """The ``warn`` messages, as text."""
        return [m.message for m in self.warnings]

    def raise_for_denies(self) -> None:
        """Raise :class:`PolicyDeniedError` with the messages when a ``deny`` fired."""
        if self.denies:
            raise PolicyDeniedError(self.deny_messages)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "denied": self.denied,
            "denies": [m.to_dict() for m in self.denies],
            "warnings": [m.to_dict() for m in self.warnings],
            "packages": list(self.packages),
            "files": list(self.files),
        }

    def to_markdown(self) -> str:
        """A short Markdown section for a job summary, PR comment or report."""
        lines = [
            f"**Policies**: {len(self.packages)} package(s) evaluated, "
            f"{len(self.denies)} deny, {len(self.warnings)} warn."
        ]
        if self.denies or self.warnings:
            lines.append("")
            lines.append("| Result | Package | Message |")
            lines.append("|---|---|---|")
            for item in [*self.denies, *self.warnings]:
                text = item.message.replace("|", "\\|").replace("\n", " ")
                lines.append(f"| {item.kind} | `{item.package}` | {text} |")
        return "\n".join(lines)


@dataclass(frozen=True)
class PolicyTestResult:
    """One ``test_`` rule's outcome."""

    package: str
    name: str
    file: str
    passed: bool


# ---------------------------------------------------------------------------------- modules


@dataclass(frozen=True)
class _TestRule:
    name: str
    line: int
    body: str
    input_term: str | None
    problem: str | None = None


@dataclass(frozen=True)
class _Module:
    """A policy file, parsed.

    ``source`` is what the engine compiles: the file with its ``test_`` rules blanked (lines
    kept, so errors keep their line numbers); the tests are run apart.
    """

    file: str
    source: str
    package: str
    rules: tuple[str, ...]
    tests: tuple[_TestRule, ...]


def starter_policy_paths(names: Iterable[str] | None = None) -> list[Path]:
    """Paths of the starter policies shipped with the package (all, or the ``names`` given).

    Raises:
        PolicyError: When a name is not a starter policy (the message lists them).
    """
    folder = Path(str(resources.files("cloudbalance").joinpath("policies")))
    wanted = list(STARTER_POLICIES) if names is None else list(names)
    unknown = [n for n in wanted if n not in STARTER_POLICIES]
    if unknown:
        raise PolicyError(
            f"no starter policy named {', '.join(unknown)} "
            f"(starter policies: {', '.join(STARTER_POLICIES)})"
        )
    return [folder / f"{name}.rego" for name in wanted]


def _rego_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*.rego") if p.is_file())
    if path.is_file():
        return [path]
    raise PolicyError("policy file or folder not found", file=path)


def _line_at(source: str, offset: int) -> int:
    return source.encode("utf-8")[:offset].decode("utf-8", errors="ignore").count("\n") + 1


def _parse_module(file: str, source: str) -> _Module:
    packages = _PACKAGE.findall(source)
    if not packages:
        raise PolicyError("no `package` declaration", file=file, line=1)
    if len(packages) > 1:
        raise PolicyError("more than one `package` declaration in one file", file=file)
    old = _V0_RULE.search(source)
    if old is not None:
        raise PolicyError(
            f"`{old.group(0).rstrip('{ ')}` is Rego v0 syntax; write "
            f"`{old.group(1)}{old.group(2) or ''} contains msg if {{` (Rego v1)",
            file=file,
            line=_line_at(source, old.start()),
        )
    rules = tuple(dict.fromkeys(m.group(1) + (m.group(2) or "") for m in _RULE.finditer(source)))
    compiled, tests = _split_tests(source)
    return _Module(file, compiled, packages[0], rules, tuple(tests))


def _scan_end(text: str, start: int, *, stop_at_newline: bool) -> int:
    """Index just past a balanced term or rule starting at ``start`` (strings, comments skipped).

    With ``stop_at_newline`` the scan ends at the first newline outside brackets (a rule's end);
    otherwise it ends after the first balanced bracket group or plain reference (a term's end).
    """
    depth, i, n = 0, start, len(text)
    opened = False
    while i < n:
        ch = text[i]
        if ch in '"`':
            close = text.find(ch, i + 1) if ch == "`" else _string_end(text, i)
            i = (close if close >= 0 else n - 1) + 1
            continue
        if ch == "#":
            i = text.find("\n", i)
            if i < 0:
                return n
            continue
        if ch in "{[(":
            depth += 1
            opened = True
        elif ch in "}])":
            depth -= 1
            if depth == 0 and not stop_at_newline:
                return i + 1
        elif depth == 0 and _ends_here(ch, stop_at_newline=stop_at_newline, opened=opened):
            return i
        i += 1
    return n


def _ends_here(ch: str, *, stop_at_newline: bool, opened: bool) -> bool:
    if stop_at_newline:
        return ch == "\n"
    return not opened and (ch.isspace() or ch == ";")


def _string_end(text: str, start: int) -> int:
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return -1


_WITH_INPUT = re.compile(r"\bwith\s+input\s+as\s+")
_TEST_HEAD = re.compile(r"^test_\w+\s+if\s*", re.DOTALL)


def _split_tests(source: str) -> tuple[str, list[_TestRule]]:
    """Blank the ``test_`` rules out of ``source`` and return them apart.

    Why: rego-cpp 1.5 aborts the whole process when it compiles a module in which a rule that
    calls a built-in function is evaluated under ``with input as``, the way every Rego unit test
    is written. So tests never reach the engine with their ``with``: each test's
    ``with input as X`` is lifted out, ``X`` becomes the input document, and the rest of the
    body is evaluated as a plain rule (see :meth:`PolicySet.run_tests`).
    """
    tests: list[_TestRule] = []
    pieces: list[str] = []
    last = 0
    for match in _TEST.finditer(source):
        start = match.start()
        if start < last:
            continue
        end = _scan_end(source, start, stop_at_newline=True)
        text = source[start:end]
        pieces.append(source[last:start])
        pieces.append("\n" * text.count("\n"))
        last = end
        tests.append(_lift_test(match.group(1), _line_at(source, start), text))
    pieces.append(source[last:])
    return "".join(pieces), tests


def _lift_test(name: str, line: int, text: str) -> _TestRule:
    head = _TEST_HEAD.match(text)
    if head is None:
        return _TestRule(name, line, "", None, "write tests as `test_name if { ... }`")
    rest = text[head.end() :].strip()
    body = rest[1:-1] if rest.startswith("{") and rest.endswith("}") else rest
    terms: list[str] = []
    kept: list[str] = []
    position = 0
    for found in _WITH_INPUT.finditer(body):
        if found.start() < position:
            continue
        term_end = _scan_end(body, found.end(), stop_at_newline=False)
        terms.append(body[found.end() : term_end].strip())
        kept.append(body[position : found.start()])
        position = term_end
    kept.append(body[position:])
    if "with " in "".join(kept).replace("\n", " "):
        return _TestRule(name, line, "", None, "only `with input as ...` is supported in tests")
    distinct = {" ".join(t.split()) for t in terms}
    if len(distinct) > 1:
        return _TestRule(
            name, line, "", None, "a test may give one `with input as` value (split the test)"
        )
    return _TestRule(name, line, "".join(kept), terms[0] if terms else None)


@contextmanager
def _quiet_engine() -> Iterator[None]:
    """Silence rego-cpp's own diagnostic dump (written to the process's stdout and stderr).

    We raise our own error instead, with file and line; the dump would break ``--format json``
    output and the CLI's one-line error contract.
    """
    saved: list[tuple[int, int]] = []
    with tempfile.TemporaryFile() as sink:
        try:
            for stream in (sys.stdout, sys.stderr):
                try:
                    fd = stream.fileno()
                except (AttributeError, OSError, ValueError):
                    continue
                stream.flush()
                saved.append((fd, os.dup(fd)))
                os.dup2(sink.fileno(), fd)
            yield
        finally:
            for fd, copy in reversed(saved):
                os.dup2(copy, fd)
                os.close(copy)


def _rego_error(err: Exception, modules: Mapping[str, _Module], fallback: str) -> PolicyError:
    text = str(err.args[0]) if err.args else str(err)
    match = _REGO_ERROR.search(text)
    if match is None:
        return PolicyError(text.strip() or "cannot compile policy", file=fallback)
    file = match.group("file") or fallback
    module = modules.get(file)
    line = _line_at(module.source, int(match.group("offset"))) if module is not None else None
    return PolicyError(match.group("msg").strip(), file=file, line=line)


class PolicySet:
    """A set of Rego modules, compiled once per evaluation by rego-cpp.

    Example:
        >>> policies = PolicySet.load(["policies/"], starter=True)  # doctest: +SKIP
        >>> report = policies.evaluate(plan_input(plan, settings=settings))  # doctest: +SKIP
        >>> report.raise_for_denies()  # doctest: +SKIP
    """

    def __init__(self, modules: Sequence[_Module], data: Mapping[str, Any] | None = None) -> None:
        self._modules = list(modules)
        self._data = dict(data or {})
        by_file = {m.file: m for m in self._modules}
        if len(by_file) != len(self._modules):
            raise PolicyError("the same policy file was given twice")
        self._by_file = by_file
        self._input_fields = _input_fields(self._modules)
        # Compile once now so a syntax error is reported when the policies are loaded.
        self._interpreter()

    @classmethod
    def load(
        cls,
        paths: Iterable[str | Path] = (),
        *,
        starter: bool | Iterable[str] = False,
        data: Mapping[str, Any] | None = None,
    ) -> PolicySet:
        """Read policy files and folders (folders: every ``*.rego`` below them).

        Args:
            paths: Policy files or folders.
            starter: ``True`` adds the whole starter library, a list of names adds those.
            data: A base document merged into ``data`` (conftest's ``--data``).

        Raises:
            PolicyError: A path does not exist, or a file does not compile (file and line).
        """
        files: list[Path] = []
        if starter:
            names = None if starter is True else list(starter)
            files.extend(starter_policy_paths(names))
        for path in paths:
            files.extend(_rego_files(Path(path)))
        modules = []
        for file in files:
            try:
                source = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise PolicyError(f"cannot read policy: {err}", file=file) from err
            modules.append(_parse_module(str(file), source))
        return cls(modules, data)

    @classmethod
    def from_sources(
        cls, sources: Mapping[str, str], *, data: Mapping[str, Any] | None = None
    ) -> PolicySet:
        """Build from ``{file name: Rego source}`` held in memory."""
        return cls([_parse_module(name, text) for name, text in sources.items()], data)

    @property
    def packages(self) -> tuple[str, ...]:
        """The packages defined, in load order."""
        return tuple(dict.fromkeys(m.package for m in self._modules))

    @property
    def files(self) -> tuple[str, ...]:
        """The policy files, in load order."""
        return tuple(m.file for m in self._modules)

    def _interpreter(self) -> Any:
        import regopy

        interpreter = regopy.Interpreter()
        interpreter.log_level = regopy.LogLevel.NONE
        if self._data:
            interpreter.add_data_json(json.dumps(self._data, default=str))
        for module in self._modules:
            try:
                with _quiet_engine():
                    interpreter.add_module(module.file, module.source)
            except regopy.RegoError as err:
                raise _rego_error(err, self._by_file, module.file) from err
        return interpreter

    def _query(self, interpreter: Any, query: str, file: str) -> Any:
        import regopy

        try:
            with _quiet_engine():
                output = interpreter.query(query)
        except regopy.RegoError as err:
            raise _rego_error(err, self._by_file, file) from err
        except json.JSONDecodeError as err:
            # rego-cpp 1.5 formats a string built by concat() with %s in sprintf with its
            # quotes and without escaping them, which makes its result unreadable.
            raise PolicyError(
                f"the result of {query} cannot be decoded ({err.msg}); if a message uses "
                "sprintf with %s on a computed string, use %v instead",
                file=file,
            ) from err
        if not output.ok():
            raise PolicyError(f"evaluating {query} failed: {str(output).strip()}", file=file)
        return output

    def _gather(self, interpreter: Any, targets: Sequence[tuple[_Module, str]]) -> list[list[Any]]:
        """Values of ``data.<package>.<rule>`` for each target, in one query.

        One query compiles the modules once (a query per rule would compile them per rule).
        ``[v | v := data.p.r]`` is ``[]`` when the rule is undefined, so one undefined rule does
        not make the whole query undefined. When the combined query fails, each rule is queried
        alone so the error names the file it comes from.
        """
        if not targets:
            return []
        names = [f"r{i}" for i in range(len(targets))]
        query = "; ".join(
            f"{name} := [v | v := data.{module.package}.{rule}]"
            for name, (module, rule) in zip(names, targets, strict=True)
        )
        try:
            output = self._query(interpreter, query, targets[0][0].file)
        except PolicyError:
            for module, rule in targets:
                self._query(
                    interpreter, f"x := [v | v := data.{module.package}.{rule}]", module.file
                )
            raise
        bindings = output.results[0].bindings if output.results else {}
        return [list(bindings.get(name) or []) for name in names]

    def evaluate(self, document: Mapping[str, Any]) -> PolicyReport:
        """Evaluate every ``deny``/``warn`` rule of every package on ``document``.

        Raises:
            PolicyError: A rule fails at evaluation time (file named).
        """
        interpreter = self._interpreter()
        if self._input_fields is not None:
            # Fields no policy reads are not handed to the engine: building engine values is
            # most of the cost of a large plan (5,000 change objects take ~0.5 s of CPU).
            document = {k: v for k, v in document.items() if k in self._input_fields}
        interpreter.set_input(_engine_input(document))
        targets: list[tuple[_Module, str]] = []
        seen: set[tuple[str, str]] = set()
        for module in self._modules:
            for rule in module.rules:
                if (module.package, rule) not in seen:  # a package split over several files
                    seen.add((module.package, rule))
                    targets.append((module, rule))
        denies: list[PolicyMessage] = []
        warnings: list[PolicyMessage] = []
        for (module, rule), values in zip(targets, self._gather(interpreter, targets), strict=True):
            kind: Literal["deny", "warn"] = "warn" if rule.startswith("warn") else "deny"
            target = warnings if kind == "warn" else denies
            for value in values:
                for text in _messages(value, module.file, rule):
                    target.append(PolicyMessage(kind, text, module.package, rule, module.file))
        return PolicyReport(tuple(denies), tuple(warnings), self.packages, self.files)

    def run_tests(self) -> list[PolicyTestResult]:
        """Run every ``test_`` rule; a test passes when it evaluates to ``true``.

        Each test runs in an interpreter of its own holding every module (tests blanked) plus
        one generated module in the test's package: the test's body as a rule, and its
        ``with input as`` value as the input document.
        """
        results = []
        for module in self._modules:
            for test in module.tests:
                if test.problem is not None:
                    raise PolicyError(
                        f"{test.name}: {test.problem}", file=module.file, line=test.line
                    )
                results.append(
                    PolicyTestResult(
                        module.package, test.name, module.file, self._run_test(module, test)
                    )
                )
        return results

    def _run_test(self, module: _Module, test: _TestRule) -> bool:
        import regopy

        interpreter = self._interpreter()
        generated = f"{module.file}#{test.name}"
        # Pad with blank lines so an error in the body points at the test's own line.
        imports = [
            line for line in _IMPORT.findall(module.source) if line.strip() != "import rego.v1"
        ]
        header = [f"package {module.package}", "import rego.v1", *imports]
        source = (
            "\n".join(header)
            + "\n" * max(1, test.line - len(header))
            + f"__test_body if {{\n{test.body}\n}}\n"
        )
        if test.input_term is not None:
            source += f"__test_input := {test.input_term}\n"
        modules = {**self._by_file, generated: _Module(generated, source, module.package, (), ())}
        try:
            with _quiet_engine():
                interpreter.add_module(generated, source)
        except regopy.RegoError as err:
            raise _rego_error(err, modules, module.file) from err
        ref = f"data.{module.package}"
        if test.input_term is not None:
            value = self._query(interpreter, f"x := [v | v := {ref}.__test_input]", module.file)
            values = value.results[0].bindings.get("x") if value.results else None
            if not values:
                raise PolicyError(
                    f"{test.name}: the `with input as` value is undefined",
                    file=module.file,
                    line=test.line,
                )
            interpreter.set_input(_engine_input(values[0]))
        output = self._query(interpreter, f"x := [v | v := {ref}.__test_body]", module.file)
        bindings = output.results[0].bindings if output.results else {}
        return list(bindings.get("x") or []) == [True]


_COMMENT = re.compile(r"#[^\n]*")
_INPUT_FIELD = re.compile(r"\binput\.([A-Za-z_]\w*)")
_INPUT_WHOLE = re.compile(r"\binput\b(?!\.[A-Za-z_])")


def _input_fields(modules: Sequence[_Module]) -> frozenset[str] | None:
    """Top-level input fields the modules read, or ``None`` when one uses ``input`` whole."""
    fields: set[str] = set()
    for module in modules:
        code = _COMMENT.sub("", module.source)
        if _INPUT_WHOLE.search(code):
            return None
        fields.update(_INPUT_FIELD.findall(code))
    return frozenset(fields)


def _engine_input(document: Any) -> Any:
    """The document as an engine value, converted from Python objects (not parsed from text).

    Why: rego-cpp parses a JSON text input as a Rego term, about twice as slow as building the
    same value from Python objects, which matters for a plan of thousands of moves.
    """
    import regopy

    return regopy.Input(json.loads(json.dumps(document, default=str)))


def _messages(value: Any, file: str, rule: str) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if isinstance(value, bool):
        # A boolean ``deny`` (``deny if {...}``) says no without a message.
        return [f"{rule} in {file}"] if value else []
    texts = []
    for item in items:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, Mapping) and "msg" in item:
            texts.append(str(item["msg"]))
        else:
            texts.append(json.dumps(item, sort_keys=True))
    return sorted(texts)


def load_policies(
    settings: Settings | None = None,
    *,
    paths: Iterable[str | Path] = (),
    starter: bool | Iterable[str] = True,
    data: Mapping[str, Any] | None = None,
) -> PolicySet:
    """The policy set a run uses: the starter library plus ``guardrails.policies`` and ``paths``.

    Paths in the settings are relative to the configuration file's folder.
    """
    configured: list[str | Path] = []
    if settings is not None:
        configured.extend(settings.resolve(p) for p in settings.guardrails.policies)
    return PolicySet.load([*configured, *paths], starter=starter, data=data)


# ---------------------------------------------------------------------------------- inputs


def _settings_doc(settings: Settings | None) -> dict[str, Any]:
    if settings is None:
        return {"workloads": {}, "guardrails": _guardrails_doc(None)}
    return {
        "workloads": {
            name: {
                "allowed": [loc.key for loc in ws.allowed],
                "min_locations": ws.min_locations,
                "max_share": ws.max_share,
            }
            for name, ws in settings.workloads.items()
        },
        "guardrails": _guardrails_doc(settings.guardrails),
    }


def _guardrails_doc(guardrails: GuardrailSettings | None) -> dict[str, Any]:
    if guardrails is None:
        from cloudbalance.config import GuardrailSettings

        guardrails = GuardrailSettings()
    return {
        "max_share_moved": guardrails.max_share_moved,
        "max_moves": guardrails.max_moves,
        "min_confidence_commit": guardrails.min_confidence_commit,
        "freeze": [
            {"start": w.start.isoformat(), "end": w.end.isoformat(), "reason": w.reason}
            for w in guardrails.freeze
        ],
        "max_monthly_cost": dict(getattr(guardrails, "max_monthly_cost", {}) or {}),
    }


def _changes_and_summary(
    before: Mapping[str, Mapping[Location, int]],
    after: Mapping[str, Mapping[Location, int]],
    moves: Mapping[tuple[str, Location], Move] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """The changed placement values, the change's summary and the changed workloads."""
    changes = []
    for workload in sorted(set(before) | set(after)):
        old, new = before.get(workload, {}), after.get(workload, {})
        for location in sorted(set(old) | set(new)):
            b, a = int(old.get(location, 0)), int(new.get(location, 0))
            if a == b:
                continue
            change: dict[str, Any] = {
                "workload": workload,
                "cloud": location.cloud,
                "region": location.region,
                "location": location.key,
                "before": b,
                "after": a,
                "delta": a - b,
            }
            if moves is not None:
                move = moves.get((workload, location))
                change["saving"] = move.saving if move is not None else None
                change["reason"] = move.reason if move is not None else ""
            changes.append(change)
    touched = sorted({c["workload"] for c in changes})
    replicas_before = sum(sum(before.get(w, {}).values()) for w in touched)
    moved = sum(replicas_relocated(before.get(w, {}), after.get(w, {})) for w in touched)
    summary = {
        "workloads": len(touched),
        "moves": len(changes),
        "replicas_before": replicas_before,
        "replicas_after": sum(sum(after.get(w, {}).values()) for w in touched),
        "replicas_moved": moved,
        "share_moved": moved / replicas_before if moved else 0.0,
    }
    return changes, summary, touched


def stack_diff_placements(
    diff: Any,
) -> tuple[dict[str, dict[Location, int]], dict[str, dict[Location, int]]]:
    """Placements before and after a :class:`~cloudbalance.gitops.StackDiff` (changed workloads).

    Duck-typed on ``diff.files[*].previous`` and ``.changes`` so this module does not import
    gitops at load time.
    """
    before: dict[str, dict[Location, int]] = {}
    after: dict[str, dict[Location, int]] = {}
    for file in diff.files:
        for workload, locations in file.previous.items():
            before.setdefault(workload, {}).update(locations)
            after.setdefault(workload, {}).update(locations)
        for change in file.changes:
            after.setdefault(change.workload, {})[change.location] = int(change.after)
            if change.before is not None:
                before.setdefault(change.workload, {})[change.location] = int(change.before)
    return before, after


def _workloads_doc(
    settings: Settings | None,
    before: Mapping[str, Mapping[Location, int]],
    after: Mapping[str, Mapping[Location, int]],
    workloads: Sequence[str],
) -> dict[str, dict[str, Any]]:
    """Everything about each touched workload in one object: its limits and placements.

    Why joined here rather than looked up in Rego: rego-cpp looks a key up in an object
    of the input in time linear in its size, so ``input.settings.workloads[name]`` for each of
    1,000 workloads costs seconds, while iterating one object costs milliseconds.
    """
    configured = settings.workloads if settings is not None else {}
    result: dict[str, dict[str, Any]] = {}
    for name in workloads:
        ws = configured.get(name)
        result[name] = {
            "allowed": [loc.key for loc in ws.allowed] if ws is not None else [],
            "min_locations": ws.min_locations if ws is not None else 1,
            "max_share": ws.max_share if ws is not None else 1.0,
            "configured": ws is not None,
            "placements": {loc.key: int(n) for loc, n in sorted(after.get(name, {}).items())},
            "current": {loc.key: int(n) for loc, n in sorted(before.get(name, {}).items())},
        }
    return result


def _placements_doc(
    placements: Mapping[str, Mapping[Location, int]], workloads: Sequence[str]
) -> dict[str, dict[str, int]]:
    return {
        w: {loc.key: int(n) for loc, n in sorted(placements.get(w, {}).items())} for w in workloads
    }


def _periods_per_month(period: str) -> float:
    import pandas as pd

    from cloudbalance.units import period_length

    try:
        length = period_length(period)
    except ValueError:
        return 30.0
    return pd.Timedelta(days=30) / length


def _monthly_by_cloud(
    placements: Mapping[str, Mapping[Location, int]],
    unit_costs: Mapping[str, float] | None,
    periods_per_month: float,
) -> dict[str, float] | None:
    """Monthly cost per cloud of ``placements`` from per-replica, per-period unit costs.

    ``unit_costs`` keys are ``workload@cloud:region`` or ``cloud:region``; ``None`` when a
    placed location has no cost (a cap cannot then be checked, the policy says so).
    """
    if not unit_costs:
        return None
    totals: dict[str, float] = {}
    for workload, locations in placements.items():
        for location, replicas in locations.items():
            if replicas <= 0:
                continue
            unit = unit_costs.get(f"{workload}@{location.key}", unit_costs.get(location.key))
            if unit is None:
                return None
            totals[location.cloud] = totals.get(location.cloud, 0.0) + (
                float(unit) * replicas * periods_per_month
            )
    return {cloud: round(amount, 2) for cloud, amount in sorted(totals.items())}


def _forecast_summary(forecast: pd.DataFrame | None) -> dict[str, Any]:
    if forecast is None or len(forecast) == 0:
        return {}
    summary: dict[str, Any] = {}
    for uid, group in forecast.groupby("unique_id", sort=True):
        entry: dict[str, Any] = {
            "start": str(group["ds"].min()),
            "end": str(group["ds"].max()),
            "mean": round(float(group["yhat"].mean()), 4),
            "peak": round(float(group["yhat"].max()), 4),
            "peak_upper": round(float(group["yhat_upper"].max()), 4),
        }
        if "spike" in group:
            entry["spike"] = bool(group["spike"].fillna(False).astype(bool).any())
        summary[str(uid)] = entry
    return summary


def _today(now: date | datetime | None) -> str:
    if now is None:
        return datetime.now(UTC).date().isoformat()
    return (now.date() if isinstance(now, datetime) else now).isoformat()


def _problem_unit_costs(plan: Plan) -> dict[str, float] | None:
    """First-period cost of one replica per ``workload@cloud:region`` from the planner's problem.

    Read from the problem the plan carries (:meth:`cloudbalance.plan.Problem.unit_costs`).
    """
    from cloudbalance.plan.problem import Problem

    problem = Problem.of(plan)
    return None if problem is None else problem.unit_costs()


def plan_input(
    plan: Plan,
    *,
    settings: Settings | None = None,
    mode: Mode = "pr",
    now: date | datetime | None = None,
    forecast: pd.DataFrame | None = None,
    unit_costs: Mapping[str, float] | None = None,
    diff: Any = None,
) -> dict[str, Any]:
    """The policy input document for a plan about to be written (see the module docstring).

    Args:
        plan: The plan.
        settings: Workload and guardrail settings the starter policies read.
        mode: How the change would be written (``commit`` is a direct commit).
        now: The day of the change (default: today, UTC).
        forecast: A forecast frame to summarise per series (default: none).
        unit_costs: Cost of one replica for one period per ``workload@cloud:region`` or
            ``cloud:region``; default ``plan.inputs["unit_costs"]``, else the first period of
            the cost matrix of the problem the plan carries (``Problem.of(plan)``).
        diff: The :class:`~cloudbalance.gitops.StackDiff` gitops computed for the plan; when
            given, the changes are read from it (what the stack files would really get) rather
            than from the plan's moves.
    """
    current: dict[str, dict[Location, int]] = {}
    after: dict[str, dict[Location, int]] = {}
    if diff is not None:
        current, after = stack_diff_placements(diff)
    else:
        for p in plan.current:
            current.setdefault(p.workload, {})[p.location] = p.replicas
        after = {w: dict(v) for w, v in current.items()}
        for p in plan.first_period:
            after.setdefault(p.workload, {})[p.location] = p.replicas
        for move in plan.moves:
            after.setdefault(move.workload, {})[move.location] = move.after
            current.setdefault(move.workload, {}).setdefault(move.location, move.before)
    moves = {(m.workload, m.location): m for m in plan.moves}
    changes, summary, touched = _changes_and_summary(current, after, moves)
    costs = unit_costs if unit_costs is not None else plan.inputs.get("unit_costs")
    if costs is None:
        costs = _problem_unit_costs(plan)
    return {
        "version": POLICY_INPUT_VERSION,
        "kind": "plan",
        "now": _today(now),
        "mode": mode,
        "changes": changes,
        "workloads": _workloads_doc(settings, current, after, touched),
        "placements": _placements_doc(after, touched),
        "current": _placements_doc(current, touched),
        "summary": summary,
        "costs": {
            "currency": plan.currency,
            "monthly_by_cloud": _monthly_by_cloud(
                after,
                costs if isinstance(costs, Mapping) else None,
                _periods_per_month(plan.period),
            ),
        },
        "diff": None if diff is None else {"files": list(diff.paths), "base": None, "head": None},
        "plan": {
            "plan_id": plan.plan_id,
            "confidence": plan.confidence,
            "saving": plan.saving,
            "expected_cost": plan.expected_cost,
            "baseline_cost": plan.baseline_cost,
            "currency": plan.currency,
            "horizon": plan.horizon,
            "period": plan.period,
            "period_start": plan.period_start.isoformat(),
            "notes": list(plan.notes),
            "forecast": _forecast_summary(forecast),
        },
        "settings": _settings_doc(settings),
    }


def diff_input(
    before: Mapping[str, Mapping[Location, int]],
    after: Mapping[str, Mapping[Location, int]],
    *,
    files: Sequence[str] = (),
    base: str | None = None,
    head: str | None = None,
    settings: Settings | None = None,
    mode: Mode = "check",
    now: date | datetime | None = None,
    unit_costs: Mapping[str, float] | None = None,
    currency: str = "USD",
    period: str = "1D",
) -> dict[str, Any]:
    """The policy input document for a stack-config change (placements before and after).

    ``before``/``after`` map workload -> location -> replicas, as
    ``cloudbalance.gitops`` reads them from ``Pulumi.<stack>.yaml``. Workloads of several
    stack files are merged (a workload lives in one stack).
    """
    changes, summary, touched = _changes_and_summary(before, after)
    return {
        "version": POLICY_INPUT_VERSION,
        "kind": "stack-diff",
        "now": _today(now),
        "mode": mode,
        "changes": changes,
        "workloads": _workloads_doc(settings, before, after, touched),
        "placements": _placements_doc(after, touched),
        "current": _placements_doc(before, touched),
        "summary": summary,
        "costs": {
            "currency": currency,
            "monthly_by_cloud": _monthly_by_cloud(after, unit_costs, _periods_per_month(period)),
        },
        "plan": None,
        "diff": {"files": list(files), "base": base, "head": head},
        "settings": _settings_doc(settings),
    }


# ---------------------------------------------------------------------------------- entry points


def check_policies(
    document: Mapping[str, Any] | Plan,
    *,
    settings: Settings | None = None,
    policies: PolicySet | None = None,
    mode: Mode = "pr",
    raise_on_deny: bool = False,
) -> PolicyReport:
    """Evaluate the configured policies on a plan or an input document.

    Args:
        document: A :class:`~cloudbalance.models.Plan` (turned into its input document) or an
            input document built by :func:`plan_input` / :func:`diff_input`.
        settings: Settings for the input document and ``guardrails.policies``.
        policies: The policy set (default: :func:`load_policies` of ``settings``).
        mode: For a plan, how it would be written.
        raise_on_deny: Raise :class:`PolicyDeniedError` instead of returning a denied report.
    """
    if isinstance(document, Plan):
        document = plan_input(document, settings=settings, mode=mode)
    policy_set = policies if policies is not None else load_policies(settings)
    report = policy_set.evaluate(document)
    if raise_on_deny:
        report.raise_for_denies()
    return report


@dataclass
class PolicyGate:
    """The hook ``cloudbalance.gitops.apply(..., policy_check=...)`` calls before writing.

    gitops calls it with the plan and the :class:`~cloudbalance.gitops.StackDiff` it is about to
    write; the input document is built from that diff (what would really change in the stack
    files), with the plan's confidence, saving and forecast. It returns a
    :class:`~cloudbalance.gitops.PolicyResult`: gitops raises
    :class:`~cloudbalance.exceptions.PolicyDeniedError` on its ``denies`` and writes its
    ``warnings`` into the commit message and pull-request body. The last report is kept for the
    audit log (:attr:`last_report`).

    Attributes:
        settings: Workload and guardrail settings.
        mode: How the change will be written (``commit`` engages the confidence policy).
        policies: The policy set (default: loaded from ``settings`` on first call).
        forecast: A forecast frame summarised into the input document.
        unit_costs: Per-replica, per-period costs for the monthly-cost policy.
        now: Override of today's date (tests).
    """

    settings: Settings | None = None
    mode: str = "pr"
    policies: PolicySet | None = None
    forecast: pd.DataFrame | None = None
    unit_costs: Mapping[str, float] | None = None
    now: date | datetime | None = None
    last_report: PolicyReport | None = field(default=None, init=False)

    def __call__(self, plan: Plan, diff: Any = None) -> Any:
        """Evaluate the policies on the change; return ``PolicyResult(denies, warnings)``."""
        from cloudbalance.gitops import PolicyResult

        report = self.evaluate(plan, diff)
        return PolicyResult(tuple(report.deny_messages), tuple(report.warning_messages))

    def evaluate(self, plan: Plan, diff: Any = None) -> PolicyReport:
        """The full report for ``plan`` (and the stack diff gitops computed, when given)."""
        if self.policies is None:
            self.policies = load_policies(self.settings)
        document = plan_input(
            plan,
            settings=self.settings,
            mode=as_mode(self.mode),
            now=self.now,
            forecast=self.forecast,
            unit_costs=self.unit_costs,
            diff=diff,
        )
        self.last_report = self.policies.evaluate(document)
        return self.last_report


def as_mode(text: str) -> Mode:
    """``text`` as a write mode for the input document (anything unknown counts as ``pr``)."""
    for known in _MODES:
        if text == known:
            return known
    return "pr"


def policy_gate(
    settings: Settings | None = None,
    *,
    mode: str = "pr",
    policies: PolicySet | None = None,
    forecast: pd.DataFrame | None = None,
    unit_costs: Mapping[str, float] | None = None,
) -> PolicyGate:
    """A :class:`PolicyGate` for ``settings``: pass it as ``apply(..., policy_check=...)``.

    Example:
        >>> from cloudbalance.gitops import apply  # doctest: +SKIP
        >>> apply(plan, repo, mode="pr", policy_check=policy_gate(settings))  # doctest: +SKIP
    """
    return PolicyGate(settings, mode, policies, forecast, unit_costs)
