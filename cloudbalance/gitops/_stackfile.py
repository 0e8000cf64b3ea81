"""Pulumi projects and stack files: discovery, validation and surgical round-trip edits.

Why not load, mutate and dump with ruamel.yaml? Its round-trip mode keeps comments, key order,
quoting and tags, but the dumper still re-indents sequences to one global setting, re-wraps long
lines and respaces flow mappings, so a file written by a person comes back with lines changed
that the plan never touched. A reviewer must see only the replicas that move. So ruamel.yaml is
used for what it does exactly (parsing, and the line and column of every key and value), the
new values are spliced into the original text at those positions, and the result is parsed
again and compared with the intended document: every value but the written replicas must be
equal, or the edit is refused. Everything outside the spliced spans stays byte for byte.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from cloudbalance.exceptions import StackConfigError
from cloudbalance.models import Location

__all__ = [
    "WORKLOADS_KEY",
    "PlacementChange",
    "StackFile",
    "discover_stacks",
    "edit_placements",
    "read_placements",
    "validate_stack_config",
]

#: The stack-config key that holds the placements (namespace ``cloudbalance``, key ``workloads``).
WORKLOADS_KEY = "cloudbalance:workloads"

_SKIP_DIRS = frozenset({".git", ".hg", "node_modules", "venv", ".venv", "__pycache__", ".tox"})
_PROPERTIES = re.compile(r"(?:[!&][^\s,}\]]*[ \t]+)+")  # a tag and/or an anchor before a value
_SCALAR = re.compile(r"""'(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|[^\s,}\]#]+""")


@dataclass(frozen=True)
class StackFile:
    """One stack of one Pulumi project found in the working copy.

    Attributes:
        project: The project's ``name`` from ``Pulumi.yaml``.
        stack: The stack name (``prod`` for ``Pulumi.prod.yaml``).
        path: The stack file, relative to the repository root (POSIX separators).
        project_file: ``Pulumi.yaml``, relative to the repository root.
    """

    project: str
    stack: str
    path: str
    project_file: str

    @property
    def ref(self) -> str:
        """``project/stack``, the form used by :attr:`cloudbalance.models.Workload.stack`."""
        return f"{self.project}/{self.stack}"


@dataclass(frozen=True)
class PlacementChange:
    """One placement entry whose replicas a plan changes (``before`` None: a new entry)."""

    workload: str
    location: Location
    before: int | None
    after: int

    @property
    def key(self) -> str:
        """Dotted key of the value, as shown in conflicts and messages."""
        return f"{WORKLOADS_KEY}.{self.workload}.placements[{self.location.key}].replicas"


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    return yaml


def _load(text: str, file: str) -> Any:
    try:
        return _yaml().load(text)
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise StackConfigError(f"not valid YAML: {err}", file=file, line=line) from err


def _walk_projects(root: Path) -> Iterator[Path]:
    for path in sorted(root.iterdir()):
        if path.is_dir():
            if path.name not in _SKIP_DIRS and not path.is_symlink():
                yield from _walk_projects(path)
        elif path.name in ("Pulumi.yaml", "Pulumi.yml"):
            yield path


def discover_stacks(root: str | Path) -> list[StackFile]:
    """Find every Pulumi project under ``root`` and the stack files beside it.

    A project is a directory holding ``Pulumi.yaml`` (or ``Pulumi.yml``); its name is the
    file's ``name``; its stack files are ``Pulumi.<stack>.yaml`` in the project directory, or in
    ``stackConfigDir`` when the project sets one. Several projects and several stacks per
    project are supported; virtualenvs and ``node_modules`` are skipped.

    Raises:
        StackConfigError: When a ``Pulumi.yaml`` cannot be parsed or has no ``name``.
    """
    base = Path(root)
    found: list[StackFile] = []
    for project_file in _walk_projects(base):
        rel_project = project_file.relative_to(base).as_posix()
        data = _load(project_file.read_text(encoding="utf-8"), rel_project)
        if not isinstance(data, Mapping) or not isinstance(data.get("name"), str):
            raise StackConfigError("Pulumi project file has no 'name'", file=rel_project)
        config_dir = project_file.parent
        if isinstance(data.get("stackConfigDir"), str):
            config_dir = (project_file.parent / data["stackConfigDir"]).resolve()
            if not config_dir.is_relative_to(base.resolve()):
                raise StackConfigError(
                    "stackConfigDir points outside the repository", file=rel_project
                )
            config_dir = base / config_dir.relative_to(base.resolve())
        if not config_dir.is_dir():
            continue
        for stack_path in sorted(config_dir.glob("Pulumi.*.y*ml")):
            parts = stack_path.name.split(".")
            if len(parts) < 3 or parts[-1] not in ("yaml", "yml"):
                continue
            stack = ".".join(parts[1:-1])
            found.append(
                StackFile(
                    project=str(data["name"]),
                    stack=stack,
                    path=stack_path.relative_to(base).as_posix(),
                    project_file=rel_project,
                )
            )
    return found


@cache
def _schema() -> dict[str, Any]:
    text = resources.files("cloudbalance").joinpath("schemas/stack-config.schema.json")
    loaded: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return loaded


def _line_of(document: Any, path: Sequence[str | int]) -> int | None:
    """1-based line of the node at ``path`` in a round-trip document (deepest one known)."""
    node = document
    line: int | None = None
    for part in path:
        try:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
            elif isinstance(node, CommentedSeq) and isinstance(part, int):
                line = node.lc.item(part)[0] + 1
            node = node[part]
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return line


def validate_stack_config(source: str | Path, *, text: str | None = None) -> None:
    """Validate a stack file against ``cloudbalance/schemas/stack-config.schema.json``.

    Besides the JSON Schema (placements of ``aws|azure|gcp``, a region, integer replicas >= 0),
    a location may appear only once per workload. cloudbalance calls it before and after every
    edit; stack templates and tests can call it on any stack file.

    Args:
        source: The stack file's path (read unless ``text`` is given; named in errors).
        text: The file's content, when already in memory.

    Raises:
        StackConfigError: With file and line of the first problem in the file.
    """
    file = str(source)
    if text is None:
        try:
            with open(source, encoding="utf-8", newline="") as stream:
                text = stream.read()
        except OSError as err:
            raise StackConfigError(f"cannot read stack file: {err.strerror}", file=file) from err
    _validated(text, file)


@lru_cache(maxsize=64)
def _validated(text: str, file: str) -> Any:
    """Parse and validate ``text``; the round-trip document, shared: callers never mutate it.

    Cached because one run reads the same stack file several times (discovery, conflict
    check, edit) and parsing is the cost of an edit.
    """
    import jsonschema

    document = _load(text, file)
    if document is None:
        document = CommentedMap()
    plain = json.loads(json.dumps(document, default=str))
    validator = jsonschema.Draft202012Validator(_schema())
    errors = [(_line_of(document, list(e.path)) or 0, e) for e in validator.iter_errors(plain)]
    if errors:
        line, first = min(errors, key=lambda pair: pair[0])
        where = ".".join(str(p) for p in first.absolute_path) or "(document)"
        raise StackConfigError(f"{where}: {first.message}", file=file, line=line or None)
    workloads = (plain.get("config") or {}).get(WORKLOADS_KEY) or {}
    for name, settings in workloads.items():
        seen: set[tuple[str, str]] = set()
        for index, entry in enumerate(settings["placements"]):
            loc = (entry["cloud"], entry["region"])
            if loc in seen:
                raise StackConfigError(
                    f"{WORKLOADS_KEY}.{name}.placements: {loc[0]}:{loc[1]} appears twice",
                    file=file,
                    line=_line_of(document, ["config", WORKLOADS_KEY, name, "placements", index]),
                )
            seen.add(loc)
    return document


def _workloads_node(document: Any) -> CommentedMap | None:
    config = document.get("config") if isinstance(document, CommentedMap) else None
    if not isinstance(config, CommentedMap):
        return None
    node = config.get(WORKLOADS_KEY)
    return node if isinstance(node, CommentedMap) else None


def read_placements(text: str, *, file: str = "<stack>") -> dict[str, dict[Location, int]]:
    """The placements of every workload in a stack file's text (validated first).

    Raises:
        StackConfigError: When the text is not a valid stack file.
    """
    document = _validated(text, file)
    node = _workloads_node(document)
    result: dict[str, dict[Location, int]] = {}
    for name, settings in (node or {}).items():
        result[str(name)] = {
            Location(str(e["cloud"]), str(e["region"])): int(e["replicas"])
            for e in settings["placements"]
        }
    return result


@dataclass
class _Splice:
    start: int
    end: int
    text: str


@dataclass
class _Editor:
    """Collects text splices at line/column positions and applies them in one pass."""

    text: str
    splices: list[_Splice] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._starts = [0]
        for match in re.finditer("\n", self.text):
            self._starts.append(match.end())

    def offset(self, line: int, col: int) -> int:
        return self._starts[line] + col

    def line_end(self, line: int) -> int:
        """Offset just past the newline ending 0-based ``line`` (or the end of the text)."""
        return self._starts[line + 1] if line + 1 < len(self._starts) else len(self.text)

    def line_text(self, line: int) -> str:
        return self.text[self._starts[line] : self.line_end(line)]

    def add(self, start: int, end: int, text: str) -> None:
        self.splices.append(_Splice(start, end, text))

    def result(self) -> str:
        out = self.text
        for splice in sorted(self.splices, key=lambda s: (s.start, s.end), reverse=True):
            out = out[: splice.start] + splice.text + out[splice.end :]
        return out


def _newline(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _last_line(node: Any) -> int:
    """0-based line of the last key or value inside a round-trip node."""
    line = 0
    if isinstance(node, CommentedMap):
        for key in node:
            kl, _kc, vl, _vc = node.lc.data[key]
            line = max(line, kl, vl, _last_line(node[key]))
    elif isinstance(node, CommentedSeq):
        for index, item in enumerate(node):
            line = max(line, node.lc.item(index)[0], _last_line(item))
    return line


_PLAIN_SAFE = re.compile(r"[A-Za-z][A-Za-z0-9._/-]*")


def _scalar(value: str) -> str:
    """``value`` as a YAML scalar: plain when that reads back as the same string, else quoted."""
    if _PLAIN_SAFE.fullmatch(value) and value.lower() not in ("true", "false", "null", "yes", "no"):
        return value
    return json.dumps(value)  # a JSON string is a valid double-quoted YAML scalar


def _flow_entry(location: Location, replicas: int) -> str:
    return (
        f"{{cloud: {_scalar(location.cloud)}, region: {_scalar(location.region)}, "
        f"replicas: {replicas}}}"
    )


def _append_entries(
    editor: _Editor, settings: CommentedMap, additions: list[tuple[Location, int]], file: str
) -> None:
    """Add new placement entries after the last one, in the style of their neighbours."""
    nl = _newline(editor.text)
    seq = settings["placements"]
    if isinstance(seq, CommentedSeq) and len(seq) > 0 and not seq.fa.flow_style():
        last = len(seq) - 1
        dash_line, item_col = seq.lc.item(last)
        dash_line_text = editor.line_text(dash_line)
        dash_col = dash_line_text.rfind("-", 0, item_col + 1)
        if dash_col < 0:
            raise StackConfigError(
                f"cannot find the list marker of {WORKLOADS_KEY} placements",
                file=file,
                line=dash_line + 1,
            )
        indent = dash_line_text[:dash_col]
        gap = " " * (item_col - dash_col - 1)
        item = seq[last]
        lines: list[str] = []
        for location, replicas in additions:
            if isinstance(item, CommentedMap) and not item.fa.flow_style():
                inner = indent + " " * (item_col - len(indent))
                lines.append(f"{indent}-{gap}cloud: {_scalar(location.cloud)}")
                lines.append(f"{inner}region: {_scalar(location.region)}")
                lines.append(f"{inner}replicas: {replicas}")
            else:
                lines.append(f"{indent}-{gap}{_flow_entry(location, replicas)}")
        at = editor.line_end(_last_line(item) if len(item) else dash_line)
        prefix = "" if editor.text[:at].endswith(("\n", "\r")) or at == 0 else nl
        editor.add(at, at, prefix + nl.join(lines) + nl)
        return
    key_line, _kc, value_line, value_col = settings.lc.data["placements"]
    start = editor.offset(value_line, value_col)
    if isinstance(seq, CommentedSeq) and editor.text.startswith("[", start):
        # A flow sequence (``[]`` included): insert before its closing bracket.
        depth, end = 0, -1
        for pos in range(start, len(editor.text)):
            char = editor.text[pos]
            if char == "[":
                depth += 1
            elif char == "]":
                depth -= 1
                if depth == 0:
                    end = pos
                    break
        if end < 0:
            raise StackConfigError(
                "unterminated flow sequence in placements", file=file, line=key_line + 1
            )
        joined = ", ".join(_flow_entry(loc, n) for loc, n in additions)
        editor.add(end, end, (", " if len(seq) else "") + joined)
        return
    raise StackConfigError(
        f"{WORKLOADS_KEY} placements must be a list", file=file, line=_last_line(settings) + 1
    )


def edit_placements(
    text: str,
    targets: Mapping[str, Mapping[Location, int]],
    *,
    file: str = "<stack>",
) -> tuple[str, list[PlacementChange]]:
    """Write target replicas into a stack file's text, changing only the values that differ.

    For each workload in ``targets``: an entry whose location is in the target gets that many
    replicas; an entry whose location is not gets ``replicas: 0`` (it stays, so the stack
    scales that cloud's part to nothing and the diff stays one line); a target location with
    no entry yet is appended after the last entry, in the style of its neighbours.

    Args:
        text: The stack file's content.
        targets: Workload -> location -> replicas. Workloads absent here are left untouched.
        file: The file's name, for errors.

    Returns:
        The new text and the changes made (empty when nothing differs: then the text is
        returned unchanged).

    Raises:
        StackConfigError: When the file is invalid before or after the edit, or a workload of
            ``targets`` is not in it.
    """
    document = _validated(text, file)
    node = _workloads_node(document)
    editor = _Editor(text)
    changes: list[PlacementChange] = []
    for workload, target in targets.items():
        if node is None or workload not in node:
            raise StackConfigError(f"workload {workload!r} is not under {WORKLOADS_KEY}", file=file)
        settings = node[workload]
        seen: set[Location] = set()
        for entry in settings["placements"]:
            location = Location(str(entry["cloud"]), str(entry["region"]))
            seen.add(location)
            want = int(target.get(location, 0))
            have = int(entry["replicas"])
            if want == have:
                continue
            line, col = entry.lc.value("replicas")
            start = editor.offset(line, col)
            properties = _PROPERTIES.match(editor.text, start)
            if properties is not None:
                start = properties.end()  # keep `!!int` or `&anchor`, change the value
            match = _SCALAR.match(editor.text, start)
            if match is None:
                raise StackConfigError(
                    f"cannot locate replicas of {workload} at {location}", file=file, line=line + 1
                )
            editor.add(start, match.end(), str(want))
            changes.append(PlacementChange(workload, location, have, want))
        additions = [(loc, int(n)) for loc, n in target.items() if loc not in seen and n > 0]
        if additions:
            _append_entries(editor, settings, additions, file)
            changes.extend(PlacementChange(workload, loc, None, n) for loc, n in additions)
    if not changes:
        return text, []
    new_text = editor.result()
    _verify(document, new_text, targets, file)
    return new_text, changes


def _plain(document: Any) -> Any:
    return json.loads(json.dumps(document, default=str))


def _verify(
    before: Any, new_text: str, targets: Mapping[str, Mapping[Location, int]], file: str
) -> None:
    """Re-parse the edited text: it must equal the old document with only the targets applied."""
    try:
        after = _validated(new_text, file)
    except StackConfigError as err:
        raise StackConfigError(
            f"refusing to write: the edit would leave the file invalid ({err}); "
            "please report this with the stack file",
            file=file,
            line=err.line,
        ) from err
    expected = _plain(before)
    workloads = expected["config"][WORKLOADS_KEY]
    for workload, target in targets.items():
        entries = workloads[workload]["placements"]
        seen = set()
        for entry in entries:
            location = Location(entry["cloud"], entry["region"])
            seen.add(location)
            entry["replicas"] = int(target.get(location, 0))
        for location, replicas in target.items():
            if location not in seen and replicas > 0:
                entries.append(
                    {"cloud": location.cloud, "region": location.region, "replicas": replicas}
                )
    if _plain(after) != expected:
        raise StackConfigError(
            "refusing to write: the edited file would differ from the intended change "
            "beyond the replicas (please report this with the stack file)",
            file=file,
        )
