"""Reading plan JSON files: the one door through which a plan written to disk comes back.

``apply`` commits and pushes what a plan file says, so the file is checked completely before
anything reads it: strict JSON (UTF-8 only, no ``NaN``/``Infinity``, no number that overflows to
infinity, no key given twice), then the published schema ``cloudbalance/schemas/plan.schema.json``
(integers are JSON integers, amounts finite and bounded, locations ``cloud:region`` on a known
cloud), then the rules a schema cannot express (real dates, one entry per workload and location in
each period). Nothing is coerced: ``"5"``, ``2.7``, ``true`` or ``1e20`` replicas are refused with
the file and the JSON path of the value, never rounded into a commit.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from cloudbalance.exceptions import Issue, SchemaError
from cloudbalance.models import Plan

__all__ = ["PLAN_SCHEMA_PATH", "load_plan_file", "plan_from_document", "read_json_file"]

#: The published schema of plan files.
PLAN_SCHEMA_PATH = Path(__file__).parent / "schemas" / "plan.schema.json"

#: Larger files are not plans a person should apply (and would be slow to validate).
MAX_BYTES = 64 * 1024 * 1024


class _Refused(ValueError):
    """Raised inside the JSON decoder's hooks; turned into an issue by the caller."""


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"{text} is too large to be a number")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def _decode_text(data: bytes) -> str:
    """UTF-8 text (a UTF-8 BOM is tolerated); anything else is refused with what it looks like."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) > 1 and b"\x00" in data[:4]):
        raise _Refused("is UTF-16 (or binary) text; save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _Refused(f"is not UTF-8 text (byte {err.start + 1})") from err


def read_json_file(path: Path, *, what: str = "plan") -> Any:
    """Read a JSON file strictly.

    Args:
        path: The file.
        what: What the file should hold, for the error's frame name.

    Raises:
        SchemaError: The file cannot be read, is not UTF-8, is not JSON, or holds a number JSON
            does not allow, a key twice or nesting deeper than the parser can follow. The issue
            names the file and, for syntax errors, the line and column.
    """
    file = str(path)

    def refuse(message: str) -> SchemaError:
        return SchemaError(what, [Issue(message, file=file)])

    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as err:
        raise refuse(f"cannot be read: {err.strerror or err}") from err
    if len(data) > MAX_BYTES:
        raise refuse(f"is larger than {MAX_BYTES // (1024 * 1024)} MiB")
    try:
        text = _decode_text(data)
    except _Refused as err:
        raise refuse(str(err)) from err
    if not text.strip():
        raise refuse("is empty")
    try:
        return json.loads(
            text,
            parse_constant=_no_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as err:
        raise refuse(f"line {err.lineno}, column {err.colno}: not valid JSON: {err.msg}") from err
    except _Refused as err:
        raise refuse(f"not valid JSON: {err}") from err
    except RecursionError as err:
        raise refuse("not valid JSON: nested too deeply") from err
    except ValueError as err:  # e.g. an integer with more digits than Python converts
        reason = "a number has thousands of digits" if "digits" in str(err) else str(err)
        raise refuse(f"not valid JSON: {reason}") from err


@cache
def _validator() -> Any:
    import jsonschema

    schema = json.loads(PLAN_SCHEMA_PATH.read_text(encoding="utf-8"))
    base = jsonschema.validators.validator_for(schema)
    # JSON Schema calls 2.0 an integer; a plan file may not: replicas are written as integers.
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    )
    strict = jsonschema.validators.extend(base, type_checker=checker)  # type: ignore[no-untyped-call]
    base.check_schema(schema)
    return strict(schema)


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


#: Messages for the schema keywords whose own wording repeats the (possibly huge) value.
_MESSAGES = {
    "type": "must be of type {}",
    "minimum": "must be at least {}",
    "maximum": "must be at most {}",
    "pattern": "does not match {!r}",
    "maxItems": "has more than {} items",
    "maxLength": "is longer than {} characters",
}


def _schema_issues(document: Any, file: str | None) -> list[Issue]:
    errors = sorted(
        _validator().iter_errors(document), key=lambda e: [str(p) for p in e.absolute_path]
    )
    issues = []
    for error in errors:
        where = list(error.absolute_path)
        template = _MESSAGES.get(str(error.validator))
        message = template.format(error.validator_value) if template else error.message
        described = error.schema.get("description") if isinstance(error.schema, dict) else None
        if error.validator == "pattern" and described:
            message = f"is not {described}"
        value: str | None = _short(error.instance)
        if error.validator == "required":  # name the missing key itself
            missing = re.match(r"'(.+)' is a required property", error.message)
            where.append(missing.group(1) if missing else "?")
            message, value = "is missing", None
        elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
            where.append(sorted(k for k in error.instance if k not in known)[0])
            message, value = "is not a key of a plan", None
        issues.append(Issue(message, column=_path(where), file=file, value=value))
    return issues


def _rule_issues(document: Mapping[str, Any], file: str | None) -> list[Issue]:
    """What the schema cannot say: real timestamps and no location twice in one period."""
    issues = []
    for name in ("created_at", "period_start"):
        try:
            datetime.fromisoformat(document[name])
        except ValueError as err:
            issues.append(Issue(f"is not a real date/time ({err})", column=name, file=file))
    lists: list[tuple[str, list[Mapping[str, Any]]]] = [
        ("current", document["current"]),
        ("moves", document["moves"]),
        *((f"schedule[{t}]", period) for t, period in enumerate(document["schedule"])),
    ]
    for where, items in lists:
        seen: set[tuple[str, str]] = set()
        for i, item in enumerate(items):
            key: tuple[str, str] = (item["workload"], item["location"])
            if key in seen:
                issues.append(
                    Issue(
                        "workload and location appear twice in one period",
                        column=f"{where}[{i}]",
                        file=file,
                        value=f"{key[0]} @ {key[1]}",
                    )
                )
            seen.add(key)
    return issues


def plan_from_document(document: Any, *, file: str | Path | None = None) -> Plan:
    """Validate a decoded plan document against the schema and rules, then build the Plan.

    Raises:
        SchemaError: With an issue per problem (file, JSON path, value).
    """
    where = str(file) if file is not None else None
    issues = _schema_issues(document, where)
    if not issues:
        issues = _rule_issues(document, where)
    if issues:
        raise SchemaError("plan", issues)
    try:
        return Plan.from_dict(document)
    except (KeyError, TypeError, ValueError) as err:  # pragma: no cover - the schema forbids it
        raise SchemaError("plan", [Issue(f"not a plan ({err})", file=where)]) from err


def load_plan_file(path: Path) -> Plan:
    """Read, validate and build the plan in ``path`` (``apply`` and ``policy check`` use this).

    Raises:
        SchemaError: The file is not a valid plan (file, JSON path, value).
    """
    return plan_from_document(read_json_file(path), file=path)
