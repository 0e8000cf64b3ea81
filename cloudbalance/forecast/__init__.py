"""Forecasting: Prophet with calibrated intervals, baselines, model choice, spikes, anomalies.

The public surface::

    from cloudbalance.forecast import forecast, backtest, detect_anomalies

    fc = forecast(series, horizon=30)                       # the forecast frame
    res = forecast(series, horizon=30, return_accuracy=True)  # + accuracy, spikes, state
    tomorrow = forecast(series_plus_one_day, horizon=30, warm_start=res, return_accuracy=True)

See ``docs/forecasting.md`` for the pipeline, the CLI, limits and the Spark route.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from cloudbalance.forecast.api import (
    ANOMALY_COLUMNS,
    ForecastResult,
    anomaly_events,
    backtest,
    detect_anomalies,
    forecast,
)
from cloudbalance.forecast.base import Fitted, Forecaster, Prediction
from cloudbalance.forecast.baseline import SeasonalNaive, Theta
from cloudbalance.forecast.core import AUTO_CANDIDATES, MIN_HISTORY, MODELS, confidence_score
from cloudbalance.forecast.feedback import AnomalyFeedback, Label
from cloudbalance.forecast.prepare import infer_step
from cloudbalance.forecast.prophet import ProphetForecaster
from cloudbalance.forecast.spikes import SpikeRule, SpikeWarning

__all__ = [
    "ANOMALY_COLUMNS",
    "AUTO_CANDIDATES",
    "MIN_HISTORY",
    "MODELS",
    "AnomalyFeedback",
    "Fitted",
    "ForecastResult",
    "Forecaster",
    "Label",
    "Prediction",
    "ProphetForecaster",
    "SeasonalNaive",
    "SpikeRule",
    "SpikeWarning",
    "Theta",
    "anomaly_events",
    "backtest",
    "confidence_score",
    "detect_anomalies",
    "forecast",
    "infer_step",
]


class _CallableModule(types.ModuleType):
    """``cloudbalance.forecast`` is both this package and the function ``forecast``.

    Importing the package (``import cloudbalance.forecast``) binds the package to the name
    ``cloudbalance.forecast``; making the package callable keeps ``cloudbalance.forecast(...)``
    working whichever of the two got there first.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return forecast(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
