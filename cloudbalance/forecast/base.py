"""The contract every model meets: fit one regular series, predict a horizon with an interval.

Models work on numpy arrays of one series at a time (timestamps, values with NaN for gaps and a
step in nanoseconds), never on frames: the frame bookkeeping happens once, in
:mod:`cloudbalance.forecast.api`, and the per-series inner loop stays cheap enough to run
thousands of times in a process pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from cloudbalance.exceptions import InsufficientHistoryError

__all__ = ["Fitted", "Forecaster", "Prediction", "require_history"]


@dataclass(frozen=True)
class Prediction:
    """A point forecast and its central interval, one value per future step."""

    ds: npt.NDArray[np.datetime64]
    yhat: npt.NDArray[np.float64]
    lower: npt.NDArray[np.float64]
    upper: npt.NDArray[np.float64]


class Fitted(Protocol):
    """A model fitted to one series."""

    model: str

    @property
    def params(self) -> dict[str, Any]:
        """What a later fit can warm-start from (may be empty)."""
        ...

    def predict(self, horizon: int, level: float) -> Prediction:
        """Forecast ``horizon`` steps after the last observation with a ``level`` interval."""
        ...


@runtime_checkable
class Forecaster(Protocol):
    """A forecasting model for one regular series.

    Implement ``name``, ``min_history`` and ``fit``; :func:`cloudbalance.forecast` runs it over
    many series, backtests it and calibrates its intervals. Example::

        class Mean:
            name = "mean"
            min_history = 1

            def fit(self, ds, y, *, step_ns, unique_id=None, init=None):
                return MeanFitted(float(np.nanmean(y)), ds[-1], step_ns)
    """

    @property
    def name(self) -> str:
        """The model name reported in forecast and accuracy frames."""
        ...

    @property
    def min_history(self) -> int:
        """Fewest observed points ``fit`` accepts."""
        ...

    def fit(
        self,
        ds: npt.NDArray[np.datetime64],
        y: npt.NDArray[np.float64],
        *,
        step_ns: int,
        unique_id: str | None = None,
        init: dict[str, Any] | None = None,
    ) -> Fitted:
        """Fit on a regular series (``y`` may hold NaN for gaps).

        Raises:
            InsufficientHistoryError: The series is shorter than ``min_history``.
        """
        ...


def future_ds(last: np.datetime64, step_ns: int, horizon: int) -> npt.NDArray[np.datetime64]:
    """The ``horizon`` timestamps after ``last``, ``step_ns`` apart."""
    steps = (np.arange(1, horizon + 1, dtype=np.int64) * step_ns).astype("timedelta64[ns]")
    out: npt.NDArray[np.datetime64] = last.astype("datetime64[ns]") + steps
    return out


def require_history(y: npt.NDArray[np.float64], minimum: int, unique_id: str | None) -> None:
    """Raise InsufficientHistoryError when ``y`` has fewer than ``minimum`` observed values."""
    observed = int((~np.isnan(y)).sum())
    if observed < minimum:
        raise InsufficientHistoryError(unique_id=unique_id, points=observed, minimum=minimum)
