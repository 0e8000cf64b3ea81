"""Which workload a cost line belongs to, as one SQL expression evaluated inside DuckDB.

Attribution runs inside the ingest query (and again on ``Store.reattribute`` after the
configuration changes) so that millions of rows are labelled at columnar speed, never row by row
in Python. The rules, first match wins:

1. each configured workload in file order: its tag values (under the workload tag key), its
   ``ResourceId`` globs, its ``ServiceName`` list;
2. otherwise the raw value of the workload tag, so tagged but unconfigured workloads still show
   up in ``cloudbalance costs --by workload``;
3. otherwise ``NULL`` (unattributed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cloudbalance.models import Workload
from cloudbalance.provider import CLOUD_IDS, cloud_id

__all__ = ["Attribution", "cloud_case_sql", "exact_cloud_case_sql", "sql_literal"]


def sql_literal(value: str) -> str:
    """A SQL string literal (single quotes doubled), for values that come from our own config."""
    return "'" + value.replace("'", "''") + "'"


def _tag_path(key: str) -> str:
    return sql_literal('$."' + key.replace('"', '\\"') + '"')


@dataclass(frozen=True)
class Attribution:
    """Attribution rules: the workload tag key and the configured workloads.

    Attributes:
        tag_key: The tag whose value names the workload (``workload`` by default).
        workloads: Configured workloads, in configuration order.
    """

    tag_key: str = "workload"
    workloads: Sequence[Workload] = ()

    def tag_sql(self, tags: str = "Tags") -> str:
        """The workload tag's value, from the JSON ``Tags`` text (validated at ingest).

        AWS writes user-defined cost-allocation tags as ``user:<key>`` in its FOCUS and CUR
        exports (and ``<key>`` through Cost Explorer), so both spellings are read.
        """
        keys = [self.tag_key]
        if not self.tag_key.startswith("user:"):
            keys.append(f"user:{self.tag_key}")
        found = ", ".join(f"json_extract_string({tags}, {_tag_path(k)})" for k in keys)
        return f"coalesce({found})"

    def sql(
        self,
        tags: str = "Tags",
        resource: str = "ResourceId",
        service: str = "ServiceName",
        *,
        tag_value: str | None = None,
    ) -> str:
        """The ``CASE`` expression giving ``x_Workload`` from the named columns.

        Args:
            tags: The JSON tags column.
            resource: The resource id column.
            service: The service name column.
            tag_value: A column already holding :meth:`tag_sql`, so the JSON is parsed once
                per row rather than once per rule.
        """
        value = tag_value or self.tag_sql(tags)
        branches: list[str] = []
        for workload in self.workloads:
            tests: list[str] = []
            match = workload.match
            if match.tag_values:
                values = ", ".join(sql_literal(v) for v in match.tag_values)
                tests.append(f"{value} IN ({values})")
            tests += [f"{resource} GLOB {sql_literal(p)}" for p in match.resource_patterns]
            if match.services:
                values = ", ".join(sql_literal(v) for v in match.services)
                tests.append(f"{service} IN ({values})")
            if not tests:  # no rule: the workload's own name as tag value
                tests.append(f"{value} = {sql_literal(workload.name)}")
            branches.append(f"WHEN {' OR '.join(tests)} THEN {sql_literal(workload.name)}")
        if not branches:
            return value
        return "CASE " + " ".join(branches) + f" ELSE {value} END"


def cloud_case_sql(provider: str = "ProviderName") -> str:
    """The ``CASE`` expression mapping FOCUS provider names to our cloud ids (``x_Cloud``)."""
    whens = " ".join(
        f"WHEN {sql_literal(name)} THEN {sql_literal(cloud)}" for name, cloud in CLOUD_IDS.items()
    )
    return f"CASE lower(trim({provider})) {whens} ELSE NULL END"


def exact_cloud_case_sql(names: Sequence[str], provider: str = "ProviderName") -> str:
    """Like :func:`cloud_case_sql` for a known set of provider names, by exact match."""
    whens = " ".join(
        f"WHEN {sql_literal(name)} THEN {sql_literal(cloud)}"
        for name in names
        if (cloud := cloud_id(name)) is not None
    )
    return f"CASE {provider} {whens} ELSE NULL END" if whens else "NULL::VARCHAR"
