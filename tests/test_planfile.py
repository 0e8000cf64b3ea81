from __future__ import annotations

import json

from cloudbalance.models import WORKLOAD_NAME
from cloudbalance.planfile import PLAN_SCHEMA_PATH


def test_the_plan_schema_names_workloads_by_the_one_workload_name_rule() -> None:
    schema = json.loads(PLAN_SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$defs"]["workload"]["pattern"] == WORKLOAD_NAME.pattern
