"""Cost anomaly detection on history: which past points were unusual, and how unusual.

Robust seasonal decomposition, no model fitting: a centred rolling median over two seasons gives a
first level, the seasonal profile is the median of the detrended values per phase (day of week for
daily data, hour of day for hourly data), the level is then re-estimated on the deseasonalised
series (so the edges are not biased by half a season), and the residual is what is left. A point's
score is its residual in robust standard deviations (1.4826 * MAD of all residuals);
``|score| > threshold`` (3.5 by default, Iglewicz & Hoaglin's cut-off for modified z-scores)
flags an anomaly. Medians
everywhere keep the anomalies themselves from bending the expectation they are judged against,
so one huge spike, a credit (negative value) or a zero day stand out instead of hiding.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from cloudbalance.forecast.prepare import Prepared

__all__ = ["DEFAULT_THRESHOLD", "anomaly_scores"]

FloatArray = npt.NDArray[np.float64]

DEFAULT_THRESHOLD = 3.5


def anomaly_scores(prep: Prepared) -> tuple[FloatArray, FloatArray]:
    """Expected value and robust score of every grid point of one series (NaN at gaps)."""
    y = prep.y
    n = y.size
    season = prep.season if prep.observed >= 3 * prep.season else 1
    window = max(2 * season + 1, 7)
    level = pd.Series(y).rolling(window, center=True, min_periods=1).median().to_numpy()
    seasonal = np.zeros(n)
    if season > 1:
        phase = np.arange(n) % season
        detrended = y - level
        # the edges' half-windows see a lopsided season: keep them out of the profile
        half = window // 2
        interior = np.zeros(n, dtype=bool)
        interior[half : n - half] = True
        use = interior if np.isfinite(detrended[interior]).sum() >= season else np.ones(n, bool)
        prof = (
            pd.Series(detrended[use])
            .groupby(phase[use])
            .median()
            .reindex(range(season))
            .fillna(0.0)
            .to_numpy()
        )
        seasonal = prof[phase]
        # second pass: the level of the deseasonalised series is unbiased at the edges too
        level = (
            pd.Series(y - seasonal).rolling(window, center=True, min_periods=1).median().to_numpy()
        )
    expected = level + seasonal
    resid = y - expected
    finite = resid[np.isfinite(resid)]
    if finite.size == 0:
        return expected, np.full(n, np.nan)
    mad = float(np.median(np.abs(finite - np.median(finite))))
    spread = 1.4826 * mad
    if spread <= 0:
        # more than half the residuals are identical (flat series): use the mean deviation,
        # and failing that a tiny share of the level, so a lone jump still scores high
        spread = float(np.mean(np.abs(finite - np.median(finite)))) * 1.253
        if spread <= 0:
            spread = 1e-9 + 1e-6 * float(np.nanmean(np.abs(y)))
    score: FloatArray = resid / spread
    return expected, score
