"""Plan JSON files mangled every way a hand edit, another tool or a truncated copy can mangle them.

Each variant is generated from one valid plan and given to ``cloudbalance apply --mode commit``
and ``cloudbalance policy check``: the plan is refused with exit 1 and one line naming the file
and the JSON path of the value, before anything reads it; a refused plan changes nothing in Git
(HEAD, the working tree). ``"5"``, ``2.7``, ``true`` or ``1e20`` replicas are refused, never
rounded into a commit.
"""

from __future__ import annotations

import copy
import json
import random
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cloudbalance.models import Location, Move, Placement, Plan
from tests.conftest import git
from tests.fuzz.conftest import Cli

STACK = """\
config:
  cloudbalance:workloads:
    checkout:
      placements:
        - {cloud: aws, region: us-east-1, replicas: 6}
        - {cloud: gcp, region: us-central1, replicas: 2}
"""


def _valid() -> dict[str, Any]:
    aws, gcp = Location("aws", "us-east-1"), Location("gcp", "us-central1")
    plan = Plan(
        plan_id="p-20261124-a1",
        created_at=datetime(2026, 11, 24, 6),
        period_start=datetime(2026, 11, 25),
        period="1D",
        horizon=7,
        current=(Placement("checkout", aws, 6), Placement("checkout", gcp, 2)),
        schedule=((Placement("checkout", aws, 4), Placement("checkout", gcp, 4)),),
        moves=(
            Move("checkout", aws, 6, 4, 10.0, 0.9, "cheaper at gcp"),
            Move("checkout", gcp, 2, 4, 10.0, 0.9, "cheaper at gcp"),
        ),
        expected_cost=100.0,
        baseline_cost=120.0,
        confidence=0.87,
    )
    document: dict[str, Any] = json.loads(plan.to_json())
    return document


@dataclass(frozen=True)
class Variant:
    """One mangled plan file and the JSON path its refusal must name (None: the file)."""

    id: str
    data: bytes
    path: str | None = None


Edit = Callable[[dict[str, Any]], None]


def _set(where: str, value: Any) -> Edit:
    """Set the value at a dotted path with ``[i]`` indices (``schedule[0][1].replicas``)."""
    parts = [p for p in where.replace("]", "").replace("[", ".").split(".") if p]

    def edit(doc: dict[str, Any]) -> None:
        node: Any = doc
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def _drop(key: str) -> Edit:
    def edit(doc: dict[str, Any]) -> None:
        del doc[key]

    return edit


def _mutated(edit: Edit, **dump: Any) -> bytes:
    doc = copy.deepcopy(_valid())
    edit(doc)
    return json.dumps(doc, **dump).encode()


REPLICA_PATHS = ("schedule[0][1].replicas", "current[0].replicas", "moves[1].after")
BAD_REPLICAS: tuple[Any, ...] = (1e20, 2.7, 4.0, "5", True, None, -1, [4], {"n": 4}, 10**30)
VALUES: list[tuple[str, Any]] = [
    *((path, value) for path in REPLICA_PATHS for value in BAD_REPLICAS),
    ("plan_id", 5), ("plan_id", ["p"]), ("plan_id", ""), ("plan_id", None),
    ("plan_id", "../../etc"), ("plan_id", "a b"), ("plan_id", "x" * 500),
    ("schedule[0][1].workload", None), ("schedule[0][1].workload", 5),
    ("schedule[0][1].workload", ""), ("schedule[0][1].location", "mars:olympus-1"),
    ("schedule[0][1].location", "gcp"), ("schedule[0][1].location", 5),
    ("schedule[0][1].extra", 1), ("schedule[0][1]", 5), ("schedule[0]", {}),
    ("schedule", None), ("current", {}), ("moves", "none"),
    ("moves[0].confidence", 5), ("moves[0].confidence", -0.1), ("moves[0].saving", "10"),
    ("moves[0].saving", 1e300), ("moves[0].reason", 5),
    ("confidence", 5), ("confidence", -1), ("confidence", "high"), ("confidence", None),
    ("expected_cost", "100"), ("expected_cost", None), ("baseline_cost", 1e300),
    ("horizon", 0), ("horizon", 7.5), ("horizon", "7"), ("horizon", 10**9),
    ("period", "fortnight"), ("period", 1), ("currency", "usd"), ("currency", 5),
    ("created_at", "yesterday"), ("created_at", "2026-13-45T00:00:00"),
    ("created_at", "0000-01-01T00:00:00"), ("created_at", "-2025-01-01"),
    ("period_start", 20261125), ("period_start", "2026-02-30"),
    ("inputs", []), ("notes", "n"), ("notes", [1]), ("bogus", 1),
]  # fmt: skip


def _variants() -> Iterator[Variant]:
    for where, value in VALUES:
        yield Variant(f"{where}={value!r}"[:80], _mutated(_set(where, value)), where)
    for key in ("plan_id", "created_at", "schedule", "moves", "current", "horizon"):
        yield Variant(f"no-{key}", _mutated(_drop(key)), key)
    duplicated = _valid()
    duplicated["schedule"][0].append(dict(duplicated["schedule"][0][0]))
    yield Variant("duplicated-location", json.dumps(duplicated).encode(), "schedule[0][2]")
    text = json.dumps(_valid(), indent=2)
    yield Variant("Infinity", text.replace('"replicas": 4', '"replicas": Infinity', 1).encode())
    yield Variant("NaN", text.replace('"confidence": 0.87', '"confidence": NaN').encode())
    yield Variant("1e400", text.replace('"replicas": 4', '"replicas": 1e400', 1).encode())
    twice = text.replace('"horizon": 7', '"horizon": 7, "horizon": 8')
    yield Variant("duplicate-key", twice.encode())
    yield Variant("utf16", text.encode("utf-16"))
    yield Variant("utf16-be", text.encode("utf-16-be"))
    yield Variant("latin-1", text.replace("cheaper", "g\xfcnstiger").encode("latin-1"))
    yield Variant("empty", b"")
    yield Variant("spaces", b" \n ")
    yield Variant("null", b"null")
    yield Variant("list", b"[]")
    yield Variant("number", b"5")
    yield Variant("string", b'"plan"')
    yield Variant("empty-object", b"{}")
    yield Variant("nested-5000", b"[" * 5000 + b"]" * 5000)
    yield Variant("nested-5000-object", b'{"a":' * 5000 + b"1" + b"}" * 5000)
    huge = text.replace('"horizon": 7', '"horizon": ' + "9" * 5000)
    yield Variant("int-5000-digits", huge.encode())
    for cut in (1, 10, len(text) // 3, len(text) // 2, len(text) - 2):
        yield Variant(f"truncated-{cut}", text[:cut].encode())
    rng = random.Random(3)
    for size in (1, 100, 2000):
        yield Variant(f"junk-{size}", bytes(rng.randrange(256) for _ in range(size)))
    yield Variant("trailing-garbage", (text + "\n}").encode())
    yield Variant("yaml-not-json", b"plan_id: p1\nhorizon: 7\n")


VARIANTS = list(_variants())


def test_the_corpus_is_large_enough() -> None:
    assert len(VARIANTS) >= 90
    assert len({v.id for v in VARIANTS}) == len(VARIANTS)


def _make_infra(root: Path) -> Path:
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "Pulumi.yaml").write_text("name: shop\nruntime: python\n", encoding="utf-8")
    (root / "shop" / "Pulumi.prod.yaml").write_text(STACK, encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    identity = ("-c", "user.name=Operator", "-c", "user.email=ops@example.com")
    git(root, *identity, "-c", "commit.gpgsign=false", "commit", "-q", "-m", "initial")
    return root


@pytest.fixture
def infra(tmp_path: Path, git_identity: Path) -> Path:
    """A repository of one's own, for a plan that is applied."""
    return _make_infra(tmp_path / "infra")


@pytest.fixture(scope="module")
def shared_infra(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One repository for every refused plan: none of them may change it."""
    return _make_infra(tmp_path_factory.mktemp("shared") / "infra")


def _state(root: Path) -> tuple[str, str, str]:
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    stack = (root / "shop" / "Pulumi.prod.yaml").read_text(encoding="utf-8")
    return git(root, "rev-parse", "HEAD"), status, stack


def test_the_valid_plan_is_applied(cli: Cli, infra: Path, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(_valid()), encoding="utf-8")
    assert cli("policy", "check", path, "--no-starter").code == 0
    outcome = cli("apply", path, "--repo", infra, "--mode", "commit", "--no-policies")
    assert outcome.code == 0, outcome.err
    assert "replicas: 4" in (infra / "shop" / "Pulumi.prod.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.id for v in VARIANTS])
def test_a_mangled_plan_is_refused_before_anything_reads_it(
    variant: Variant, cli: Cli, shared_infra: Path, tmp_path: Path
) -> None:
    infra = shared_infra
    path = tmp_path / "plan.json"
    path.write_bytes(variant.data)
    before = _state(infra)
    for args in (
        ("apply", path, "--repo", infra, "--mode", "commit", "--no-policies"),
        ("policy", "check", path, "--no-starter"),
    ):
        outcome = cli(*args)
        outcome.assert_refused("plan.json")
        assert len(outcome.err.strip().splitlines()) == 1, outcome.err
        if variant.path is not None:
            assert variant.path in outcome.err, outcome.err
    assert _state(infra) == before


@pytest.mark.parametrize(
    "data", [b"\xff\xfe\x00\x01junk", "{}".encode("utf-16"), b"[1]", b'{"a": NaN}', b"{" * 5000]
)
def test_a_mangled_policy_data_file_is_refused_naming_it(
    data: bytes, cli: Cli, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(_valid()), encoding="utf-8")
    extra = tmp_path / "extra.json"
    extra.write_bytes(data)
    cli("policy", "check", plan, "--no-starter", "--data", extra).assert_refused("extra.json")
