from __future__ import annotations

import numpy as np

from cloudbalance.forecast.anomalies import _incidents


def test_alert_budget_keeps_the_incidents_with_the_largest_impact() -> None:
    # two incidents, a budget of one: the sharper one in score costs less than the other (and
    # is below twice the bar, which would pass the escalating bar)
    score = np.zeros(100)
    score[20], score[60] = 11.0, 8.0
    expected = np.full(100, 10.0)
    y = expected.copy()
    y[20], y[60] = 15.0, 110.0
    kept = _incidents(score, y, expected, threshold=6, low=4, cooldown=0, weeks=1.0)
    assert [(inc.start, inc.impact) for inc in kept] == [(60, 100.0)]
