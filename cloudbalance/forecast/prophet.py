"""Prophet, the default model: the same model, fitted and predicted without the overhead.

The model is Prophet's (``prophet.stan``): a piecewise-linear trend with up to 25 changepoints in
the first 80% of the history, Laplace(0, ``changepoint_prior_scale``) priors on the slope changes,
Fourier seasonalities (yearly order 10, weekly order 3, daily order 4, switched on by the same
rules Prophet uses), optional country holidays, Normal(0, 10) priors on every seasonal weight,
Normal(0, 5) on ``k`` and ``m`` and Normal(0, 0.5) on the noise scale. Prophet finds the maximum a
posteriori point with Stan's L-BFGS through a CmdStan subprocess; that subprocess, its JSON and CSV
files and the pandas bookkeeping around it cost more than the optimisation itself. Here the same
posterior is maximised in-process with SciPy's L-BFGS-B (the L1 term split into two bounded
halves, so the optimiser sees a smooth problem), and prediction is numpy over the fitted
parameters. The point forecasts match the ``prophet`` library's within 1% (see
``benchmarks/bench_forecast.py``); intervals use Prophet's own vectorised simulation of future
trend changes plus observation noise.

``backend="stan"`` fits through the ``prophet`` library itself (with ``uncertainty_samples=0``
and a warm ``init=``) for users who want bit-for-bit Prophet parameters; it is slower.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import optimize

from cloudbalance.exceptions import ForecastError
from cloudbalance.forecast.base import Fitted, Prediction, require_history

__all__ = ["MIN_HISTORY", "FittedProphet", "ProphetForecaster"]

FloatArray = npt.NDArray[np.float64]

#: Prophet needs a trend and at least one full cycle of the shortest seasonality to say anything
#: better than a constant; below this many observations it raises InsufficientHistoryError.
MIN_HISTORY = 10

_DAY_NS = 86_400 * 10**9
#: Floor of the noise scale (in units of the series' largest absolute value): a series the model
#: fits exactly (a constant) would otherwise drive the noise, and the curvature, to infinity.
_MIN_SIGMA = 1e-6


def silence_prophet() -> None:
    """Quiet the loggers Prophet and CmdStanPy write to at INFO level on every fit."""
    for name in ("prophet", "prophet.plot", "cmdstanpy"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)
        logger.propagate = False
    # cmdstanpy resets its own level on first use; disabling is the only switch it respects
    logging.getLogger("cmdstanpy").disabled = True


def _days(ds: npt.NDArray[np.datetime64]) -> FloatArray:
    """Days since the Unix epoch, as Prophet's Fourier features measure time."""
    return ds.astype("datetime64[ns]").astype(np.int64).astype(np.float64) / _DAY_NS


def _fourier(days: FloatArray, period: float, order: int) -> FloatArray:
    x = 2.0 * np.pi * days
    out = np.empty((days.shape[0], 2 * order))
    for i in range(order):
        c = (i + 1) / period * x
        out[:, 2 * i] = np.sin(c)
        out[:, 2 * i + 1] = np.cos(c)
    return out


@dataclass(frozen=True)
class _Design:
    """Everything fixed by the history before optimisation (Prophet's ``setup_dataframe``)."""

    start_ns: int
    t_scale_ns: float
    y_scale: float
    changepoints_t: FloatArray
    seasonalities: tuple[tuple[str, float, int], ...]
    holiday_names: tuple[str, ...]
    holiday_country: str | None


@dataclass
class FittedProphet(Fitted):
    """A fitted Prophet model: the parameters (scaled, as Stan reports them) and the design."""

    design: _Design
    k: float
    m: float
    delta: FloatArray
    beta: FloatArray
    sigma_obs: float
    multiplicative: bool
    growth: str
    interval_samples: int
    seed: int
    last_ds: np.datetime64
    step_ns: int
    model: str = "prophet"
    iterations: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        """Parameters in Prophet's naming, usable as ``init`` for the next day's fit."""
        return {
            "k": self.k,
            "m": self.m,
            "delta": self.delta.copy(),
            "beta": self.beta.copy(),
            "sigma_obs": self.sigma_obs,
        }

    def _features(self, ds: npt.NDArray[np.datetime64]) -> FloatArray:
        return _features(self.design, ds)

    def _trend(self, t: FloatArray) -> FloatArray:
        if self.growth == "flat":
            return np.full_like(t, self.m)
        cp = self.design.changepoints_t
        active = cp[None, :] <= t[:, None]
        k_t = self.k + active @ self.delta
        m_t = self.m + active @ (-cp * self.delta)
        out: FloatArray = k_t * t + m_t
        return out

    def predict(self, horizon: int, level: float) -> Prediction:
        """Point forecast and Prophet-style simulated interval for the next ``horizon`` steps."""
        steps = np.arange(1, horizon + 1, dtype=np.int64) * self.step_ns
        ds = (self.last_ds.astype("datetime64[ns]") + steps.astype("timedelta64[ns]")).astype(
            "datetime64[ns]"
        )
        d = self.design
        t = (ds.astype(np.int64) - d.start_ns) / d.t_scale_ns
        x = self._features(ds)
        trend = self._trend(t)
        s_m = x @ self.beta if self.multiplicative else np.zeros(horizon)
        s_a = np.zeros(horizon) if self.multiplicative else x @ self.beta
        yhat = (trend * (1 + s_m) + s_a) * d.y_scale
        lower, upper = self._interval(t, trend, s_m, s_a, level)
        return Prediction(ds=ds, yhat=yhat, lower=lower, upper=upper)

    def in_sample(self, ds: npt.NDArray[np.datetime64]) -> FloatArray:
        """Fitted values on historical timestamps (for anomaly scores and residuals)."""
        d = self.design
        t = (ds.astype("datetime64[ns]").astype(np.int64) - d.start_ns) / d.t_scale_ns
        x = self._features(ds)
        trend = self._trend(t)
        seas = x @ self.beta
        if self.multiplicative:
            out: FloatArray = trend * (1 + seas) * d.y_scale
        else:
            out = (trend + seas) * d.y_scale
        return out

    def _interval(
        self, t: FloatArray, trend: FloatArray, s_m: FloatArray, s_a: FloatArray, level: float
    ) -> tuple[FloatArray, FloatArray]:
        """Prophet's ``predict_uncertainty``, vectorised: trend shifts plus noise, quantiles."""
        n = self.interval_samples
        rng = np.random.default_rng(self.seed)
        horizon = t.shape[0]
        unc = np.zeros((n, horizon))
        if self.growth != "flat" and horizon > 0:
            single_diff = (
                float(np.diff(t).mean()) if horizon > 1 else self.step_ns / (self.design.t_scale_ns)
            )
            likelihood = len(self.design.changepoints_t) * single_diff
            mean_delta = float(np.mean(np.abs(self.delta))) + 1e-8
            change = rng.uniform(size=(n, horizon)) < likelihood
            shifts = rng.laplace(0.0, mean_delta, size=(n, horizon)) * change
            shifted = np.hstack([np.zeros((n, 1)), shifts])[:, :-1]
            mat = (shifted + shifts) / 2
            unc = mat.cumsum(axis=1).cumsum(axis=1) * single_diff
        noise = rng.normal(0.0, self.sigma_obs, size=(n, horizon))
        samples = ((trend[None, :] + unc) * (1 + s_m[None, :]) + s_a[None, :] + noise) * (
            self.design.y_scale
        )
        lo, hi = np.percentile(samples, [100 * (1 - level) / 2, 100 * (1 + level) / 2], axis=0)
        return lo, hi


def _split(
    theta: FloatArray, sigma: float, iters: int, *, flat: bool, s: int
) -> tuple[float, float, FloatArray, FloatArray, float, int]:
    if flat:
        return 0.0, float(theta[0]), np.zeros(s), theta[1:].copy(), sigma, iters
    return (
        float(theta[0]),
        float(theta[1]),
        theta[2 : 2 + s].copy(),
        theta[2 + s :].copy(),
        sigma,
        iters,
    )


def _map_additive(
    gram: FloatArray,
    dty: FloatArray,
    yty: float,
    n: int,
    prior: FloatArray,
    l1: npt.NDArray[np.bool_],
    lam: float,
    theta0: FloatArray,
    *,
    max_outer: int = 50,
    tol: float = 1e-10,
) -> tuple[FloatArray, float, int]:
    """MAP of the additive model: an exact lasso step for the weights, then the noise scale.

    For a fixed ``sigma`` the negative log posterior is ``1/2 theta' H theta - b' theta +
    lam * |delta|_1`` with ``H = X'X / sigma^2 + P``: a small lasso, solved exactly by
    feature-sign search. For fixed weights, ``sigma^2`` solves ``4 s^2 + n s - RSS = 0``.
    """
    theta = theta0.copy()
    rss = max(yty - 2 * float(theta @ dty) + float(theta @ gram @ theta), 1e-12)
    sig2 = max((-n + np.sqrt(n * n + 16 * rss)) / 8, _MIN_SIGMA**2)
    prev = np.inf
    total = 0
    for _ in range(max_outer):
        h = gram / sig2 + np.diag(prior)
        b = dty / sig2
        theta, its = _feature_sign(h, b, l1, lam, theta)
        total += its
        rss = max(yty - 2 * float(theta @ dty) + float(theta @ gram @ theta), 1e-12)
        sig2 = max((-n + np.sqrt(n * n + 16 * rss)) / 8, _MIN_SIGMA**2)
        obj = (
            0.5 * n * np.log(sig2)
            + rss / (2 * sig2)
            + 0.5 * float(theta @ (prior * theta))
            + lam * float(np.abs(theta[l1]).sum())
            + 2 * sig2
        )
        if abs(prev - obj) <= tol * max(1.0, abs(obj)):
            break
        prev = obj
    return theta, float(np.sqrt(sig2)), total


def _map_multiplicative(
    trend_cols: FloatArray,
    x: FloatArray,
    y: FloatArray,
    prior_t: FloatArray,
    prior_b: FloatArray,
    l1_t: npt.NDArray[np.bool_],
    lam: float,
    theta0: FloatArray,
    *,
    max_rounds: int = 200,
    tol: float = 1e-9,
) -> tuple[FloatArray, float, int]:
    """MAP of ``y = trend * (1 + X beta)`` by exact block steps.

    With ``beta`` fixed the mean is linear in the trend parameters (design ``T * (1 + X beta)``);
    with the trend fixed it is linear in ``beta`` (design ``X * trend``, offset ``trend``). Each
    block is solved exactly by :func:`_map_additive` (noise scale included), so the posterior
    never decreases and the rounds stop when it no longer moves.
    """
    n = y.shape[0]
    nt = trend_cols.shape[1]
    no_l1 = np.zeros(x.shape[1], dtype=bool)
    theta_t = theta0[:nt].copy()
    beta = theta0[nt:].copy()
    prev = np.inf
    total = 0
    sigma = 1.0
    for _ in range(max_rounds):
        d1 = trend_cols * (1 + x @ beta)[:, None]
        theta_t, sigma, its = _map_additive(
            d1.T @ d1, d1.T @ y, float(y @ y), n, prior_t, l1_t, lam, theta_t
        )
        trend = trend_cols @ theta_t
        d2 = x * trend[:, None]
        r = y - trend
        beta, sigma, its2 = _map_additive(
            d2.T @ d2, d2.T @ r, float(r @ r), n, prior_b, no_l1, lam, beta
        )
        total += its + its2
        resid = y - trend * (1 + x @ beta)
        sig2 = sigma * sigma
        obj = (
            n * np.log(sigma)
            + float(resid @ resid) / (2 * sig2)
            + 0.5 * float(theta_t @ (prior_t * theta_t) + beta @ (prior_b * beta))
            + lam * float(np.abs(theta_t[l1_t]).sum())
            + 2 * sig2
        )
        if abs(prev - obj) <= tol * max(1.0, abs(obj)):
            break
        prev = obj
    return np.concatenate([theta_t, beta]), sigma, total


def _feature_sign(
    h: FloatArray,
    b: FloatArray,
    l1: npt.NDArray[np.bool_],
    lam: float,
    theta0: FloatArray,
    *,
    max_iter: int = 500,
) -> tuple[FloatArray, int]:
    """Minimise ``1/2 x'Hx - b'x + lam * sum_{j in l1} |x_j|`` exactly (feature-sign search).

    Unpenalised coordinates are always active. Each step solves the quadratic on the active set
    with the current signs, then walks from the old point toward that solution, stopping at the
    best point where a coefficient crosses zero; it ends when the KKT conditions hold.
    """
    x = theta0.copy()
    eps = 1e-12

    active = ~l1 | (x != 0)
    tol = 1e-9 * (1.0 + lam + float(np.max(np.abs(b), initial=0.0)))
    for it in range(max_iter):
        grad = h @ x - b
        # optimality of the non-zero coefficients
        sign = np.where(l1, np.sign(x), 0.0)
        nz_ok = np.all(np.abs(grad[active] + lam * sign[active]) <= tol)
        if nz_ok:
            zero = l1 & (x == 0)
            viol = np.where(zero, np.abs(grad) - lam, -np.inf)
            j = int(np.argmax(viol))
            if viol[j] <= tol:
                return x, it
            active[j] = True
            sign[j] = -np.sign(grad[j])
        idx = np.flatnonzero(active)
        s_a = sign[idx]
        try:
            x_new_a = np.linalg.solve(h[np.ix_(idx, idx)], b[idx] - lam * s_a)
        except np.linalg.LinAlgError:
            x_new_a = np.linalg.lstsq(h[np.ix_(idx, idx)], b[idx] - lam * s_a, rcond=None)[0]
        x_old_a = x[idx]
        # candidate points: the end and every zero crossing of a penalised coordinate
        pen = l1[idx]
        cross = pen & (np.sign(x_new_a) != s_a) & (s_a != 0)
        ts = [1.0]
        with np.errstate(divide="ignore", invalid="ignore"):
            for k in np.flatnonzero(cross):
                den = x_old_a[k] - x_new_a[k]
                if abs(den) > eps:
                    tk = x_old_a[k] / den
                    if 0 < tk < 1:
                        ts.append(float(tk))
        steps = np.asarray(ts)
        cands = np.repeat(x[None, :], steps.size, axis=0)
        cands[:, idx] = x_old_a[None, :] + steps[:, None] * (x_new_a - x_old_a)[None, :]
        cands[:, l1] = np.where(np.abs(cands[:, l1]) < eps, 0.0, cands[:, l1])
        values = (
            0.5 * np.einsum("ij,jk,ik->i", cands, h, cands)
            - cands @ b
            + lam * np.abs(cands[:, l1]).sum(axis=1)
        )
        best = cands[int(np.argmin(values))].copy()
        x = best
        active = ~l1 | (x != 0)
    return x, max_iter


def _shaped(value: Any, size: int) -> FloatArray:
    arr = np.zeros(size) if value is None else np.asarray(value, dtype=np.float64).ravel()
    return arr if arr.shape == (size,) else np.full(size, np.nan)


def _features(design: _Design, ds: npt.NDArray[np.datetime64]) -> FloatArray:
    days = _days(ds)
    blocks = [_fourier(days, period, order) for _, period, order in design.seasonalities]
    if design.holiday_names:
        blocks.append(_holiday_features(ds, design.holiday_country, design.holiday_names))
    if not blocks:
        return np.zeros((ds.shape[0], 0))
    return np.hstack(blocks)


def _holiday_features(
    ds: npt.NDArray[np.datetime64], country: str | None, names: tuple[str, ...]
) -> FloatArray:
    """One indicator column per holiday name (Prophet's holiday features, window 0)."""
    days = ds.astype("datetime64[D]")
    calendar = _holiday_calendar(country, days)
    out = np.zeros((ds.shape[0], len(names)))
    index = {name: j for j, name in enumerate(names)}
    for i, day in enumerate(days.tolist()):
        name = calendar.get(day)
        if name is not None and name in index:
            out[i, index[name]] = 1.0
    return out


def _holiday_calendar(country: str | None, days: npt.NDArray[np.datetime64]) -> dict[Any, str]:
    if country is None or days.size == 0:
        return {}
    import holidays

    years = range(int(str(days.min())[:4]), int(str(days.max())[:4]) + 1)
    try:
        cal = holidays.country_holidays(country, years=list(years))
    except NotImplementedError as err:
        raise ForecastError(f"unknown holiday country {country!r}") from err
    return {day: str(name).split(";")[0].strip() for day, name in cal.items()}


class ProphetForecaster:
    """Prophet behind the :class:`~cloudbalance.forecast.base.Forecaster` protocol.

    Args:
        changepoint_prior_scale: Prophet's ``changepoint_prior_scale`` (flexibility of the trend).
        seasonality_prior_scale: Prior scale of every seasonal and holiday weight.
        seasonality_mode: ``additive`` (Prophet's default) or ``multiplicative``.
        growth: ``linear`` (default) or ``flat``.
        yearly, weekly, daily: ``"auto"`` (Prophet's rules) or a bool.
        holidays_country: ISO country code whose public holidays become features (``US``).
        n_changepoints, changepoint_range: As in Prophet.
        interval_samples: Draws for the simulated interval (Prophet's ``uncertainty_samples``).
        backend: ``numpy`` (in-process MAP, the fast default) or ``stan`` (the prophet library).
        name: The model name reported in forecast frames.
        seed: Seed for the interval simulation, so a forecast is reproducible.
    """

    min_history = MIN_HISTORY

    def __init__(
        self,
        *,
        changepoint_prior_scale: float = 0.05,
        seasonality_prior_scale: float = 10.0,
        seasonality_mode: Literal["additive", "multiplicative"] = "additive",
        growth: Literal["linear", "flat"] = "linear",
        yearly: bool | Literal["auto"] = "auto",
        weekly: bool | Literal["auto"] = "auto",
        daily: bool | Literal["auto"] = "auto",
        holidays_country: str | None = None,
        n_changepoints: int = 25,
        changepoint_range: float = 0.8,
        interval_samples: int = 1000,
        backend: Literal["numpy", "stan"] = "numpy",
        name: str = "prophet",
        seed: int = 0,
    ) -> None:
        if seasonality_mode not in ("additive", "multiplicative"):
            raise ForecastError(
                f"seasonality_mode must be additive or multiplicative, got {seasonality_mode!r}"
            )
        if backend not in ("numpy", "stan"):
            raise ForecastError(f"backend must be 'numpy' or 'stan', got {backend!r}")
        self.changepoint_prior_scale = changepoint_prior_scale
        self.seasonality_prior_scale = seasonality_prior_scale
        self.seasonality_mode = seasonality_mode
        self.growth = growth
        self.yearly = yearly
        self.weekly = weekly
        self.daily = daily
        self.holidays_country = holidays_country
        self.n_changepoints = n_changepoints
        self.changepoint_range = changepoint_range
        self.interval_samples = interval_samples
        self.backend = backend
        self.name = name
        self.seed = seed

    def __repr__(self) -> str:
        return (
            f"ProphetForecaster(name={self.name!r}, changepoint_prior_scale="
            f"{self.changepoint_prior_scale}, seasonality_mode={self.seasonality_mode!r}, "
            f"backend={self.backend!r})"
        )

    # -- design ---------------------------------------------------------------------------------
    def _seasonalities(self, ds: npt.NDArray[np.datetime64]) -> tuple[tuple[str, float, int], ...]:
        first, last = ds[0], ds[-1]
        span = (last - first).astype("timedelta64[ns]").astype(np.int64)
        diffs = np.diff(ds.astype("datetime64[ns]").astype(np.int64))
        min_dt = int(diffs.min()) if diffs.size else 0
        out: list[tuple[str, float, int]] = []

        def on(arg: bool | str, auto: bool) -> bool:
            return auto if arg == "auto" else bool(arg)

        if on(self.yearly, span >= 730 * _DAY_NS):
            out.append(("yearly", 365.25, 10))
        if on(self.weekly, span >= 14 * _DAY_NS and min_dt < 7 * _DAY_NS):
            out.append(("weekly", 7.0, 3))
        if on(self.daily, span >= 2 * _DAY_NS and min_dt < _DAY_NS):
            out.append(("daily", 1.0, 4))
        return tuple(out)

    def _design(self, ds: npt.NDArray[np.datetime64], y: FloatArray) -> _Design:
        ns = ds.astype("datetime64[ns]").astype(np.int64)
        start = int(ns[0])
        t_scale = float(ns[-1] - ns[0]) or 1.0
        y_scale = float(np.max(np.abs(y))) or 1.0
        hist_size = int(np.floor(len(ds) * self.changepoint_range))
        n_cp = min(self.n_changepoints, hist_size - 1)
        if n_cp > 0:
            idx = np.linspace(0, hist_size - 1, n_cp + 1).round().astype(int)[1:]
            cps = np.sort((ns[idx] - start) / t_scale)
        else:
            cps = np.array([0.0])
        names: tuple[str, ...] = ()
        if self.holidays_country:
            cal = _holiday_calendar(self.holidays_country, ds.astype("datetime64[D]"))
            names = tuple(sorted(set(cal.values())))
        return _Design(
            start_ns=start,
            t_scale_ns=t_scale,
            y_scale=y_scale,
            changepoints_t=cps.astype(np.float64),
            seasonalities=self._seasonalities(ds),
            holiday_names=names,
            holiday_country=self.holidays_country,
        )

    # -- fit ------------------------------------------------------------------------------------
    def fit(
        self,
        ds: npt.NDArray[np.datetime64],
        y: FloatArray,
        *,
        step_ns: int,
        unique_id: str | None = None,
        init: dict[str, Any] | None = None,
    ) -> FittedProphet:
        """Fit on one regular series; missing ``y`` (NaN) are left out of the likelihood.

        Raises:
            InsufficientHistoryError: Fewer than :data:`MIN_HISTORY` observed values.
            ForecastError: The optimiser failed.
        """
        require_history(y, MIN_HISTORY, unique_id)
        observed = ~np.isnan(y)
        ds_obs, y_obs = ds[observed], y[observed]
        design = self._design(ds_obs, y_obs)
        if self.backend == "stan":
            if self.holidays_country:
                raise ForecastError("holidays are supported by the numpy backend only")
            return self._fit_stan(ds_obs, y_obs, design, step_ns=step_ns, init=init, uid=unique_id)
        t = (ds_obs.astype("datetime64[ns]").astype(np.int64) - design.start_ns) / (
            design.t_scale_ns
        )
        x = _features(design, ds_obs)
        ys = y_obs / design.y_scale
        k, m, delta, beta, sigma, iters = self._map(t, ys, x, design, init)
        return FittedProphet(
            design=design,
            k=k,
            m=m,
            delta=delta,
            beta=beta,
            sigma_obs=sigma,
            multiplicative=self.seasonality_mode == "multiplicative",
            growth=self.growth,
            interval_samples=self.interval_samples,
            seed=self.seed,
            last_ds=ds[-1],
            step_ns=step_ns,
            model=self.name,
            iterations=iters,
        )

    def _map(
        self,
        t: FloatArray,
        y: FloatArray,
        x: FloatArray,
        design: _Design,
        init: dict[str, Any] | None,
    ) -> tuple[float, float, FloatArray, FloatArray, float, int]:
        """Maximise Prophet's posterior (Stan drops the same constants) with L-BFGS-B.

        The variables are ``k, m, delta, beta`` and ``log sigma``; ``delta = p - q`` with
        ``p, q >= 0`` turns the Laplace prior into a smooth bounded problem. Two things make it
        converge in tens rather than hundreds of iterations: each variable is scaled by the square
        root of its curvature (the changepoint columns are nearly collinear), and the start is the
        ridge solution of the same model (or yesterday's parameters), not Prophet's straight line.
        For additive models the objective is evaluated through the Gram matrix, so an iteration
        costs O(p^2) instead of O(n p).
        """
        n = t.shape[0]
        cp = design.changepoints_t
        s = cp.shape[0]
        kx = x.shape[1]
        flat = self.growth == "flat"
        mult = self.seasonality_mode == "multiplicative"
        tau = self.changepoint_prior_scale
        inv_s2 = 1.0 / self.seasonality_prior_scale**2
        if flat:
            trend_cols = np.ones((n, 1))
        else:
            trend_cols = np.column_stack([t, np.ones(n), np.maximum(t[:, None] - cp[None, :], 0)])
        d = np.hstack([trend_cols, x])  # design of the additive mean
        nt = trend_cols.shape[1]
        p = d.shape[1]
        prior = np.concatenate(
            [
                [0.0] if flat else [1 / 25.0, 1 / 25.0],
                np.zeros(0 if flat else s),
                np.full(kx, inv_s2),
            ]
        )
        if flat:
            prior[0] = 1 / 25.0
        l1 = np.zeros(p, dtype=bool)
        if not flat:
            l1[2 : 2 + s] = True
        gram = d.T @ d
        dty = d.T @ y
        yty = float(y @ y)

        if init is not None and not flat:
            theta0 = np.concatenate(
                [
                    [float(init.get("k", 0.0)), float(init.get("m", 0.0))],
                    _shaped(init.get("delta"), s),
                    _shaped(init.get("beta"), kx),
                ]
            )
            sig0 = float(init.get("sigma_obs", 0.0))
        else:
            theta0 = np.zeros(p)
            sig0 = 0.0
        if init is None or flat or not np.all(np.isfinite(theta0)):
            # Ridge start: the L1 prior replaced by a quadratic one of similar strength.
            ridge = prior.copy()
            ridge[l1] = 1.0 / (tau * 0.05)
            resid0 = y - y.mean()
            sig2 = max(float(resid0 @ resid0) / n, 1e-8)
            theta0 = np.linalg.solve(gram / sig2 + np.diag(ridge + 1e-10), dty / sig2)
            r = y - d @ theta0
            sig0 = float(np.sqrt(max(float(r @ r) / n, 1e-12)))
        if mult and kx and not flat and init is None:
            # Start from the additive fit: same trend, seasonal weights relative to its level.
            theta0, sig0, _ = _map_additive(gram, dty, yty, n, prior, l1, 1.0 / tau, theta0)
            level = float(np.mean(trend_cols @ theta0[:nt])) or 1.0
            theta0[nt:] = theta0[nt:] / level
        sig0 = max(sig0, 1e-6)
        # curvature-based scaling of each variable
        scale = 1.0 / np.sqrt(np.diag(gram) / sig0**2 + prior + 1e-12)
        u0 = theta0 / scale
        x0 = np.concatenate(
            [u0[~l1], np.maximum(u0[l1], 0), np.maximum(-u0[l1], 0), [np.log(sig0)]]
        )
        nf = int((~l1).sum())
        nl = int(l1.sum())
        free_idx = np.flatnonzero(~l1)
        l1_idx = np.flatnonzero(l1)
        l1_weight = scale[l1] / tau
        xm = x

        def unpack(v: FloatArray) -> FloatArray:
            u = np.empty(p)
            u[free_idx] = v[:nf]
            u[l1_idx] = v[nf : nf + nl] - v[nf + nl : nf + 2 * nl]
            out: FloatArray = u * scale
            return out

        def objective(v: FloatArray) -> tuple[float, FloatArray]:
            theta = unpack(v)
            log_sig = v[-1]
            sig2 = np.exp(2 * log_sig)
            if mult:
                trend = trend_cols @ theta[:nt]
                xb = xm @ theta[nt:]
                r = y - trend * (1 + xb)
                rss = float(r @ r)
                w = -r / sig2
                g_theta = np.concatenate([trend_cols.T @ (w * (1 + xb)), xm.T @ (w * trend)])
            else:
                gt = gram @ theta
                rss = yty - 2 * float(theta @ dty) + float(theta @ gt)
                g_theta = (gt - dty) / sig2
            g_theta = g_theta + prior * theta
            f = (
                n * log_sig
                + rss / (2 * sig2)
                + 0.5 * float(theta @ (prior * theta))
                + float(np.sum(v[nf : nf + 2 * nl] * np.tile(l1_weight, 2)))
                + 2.0 * sig2
            )
            gu = g_theta * scale
            g = np.empty_like(v)
            g[:nf] = gu[free_idx]
            g[nf : nf + nl] = gu[l1_idx] + l1_weight
            g[nf + nl : nf + 2 * nl] = -gu[l1_idx] + l1_weight
            g[-1] = n - rss / sig2 + 4.0 * sig2
            return f, g

        if not mult:
            theta, sigma, iters = _map_additive(gram, dty, yty, n, prior, l1, 1.0 / tau, theta0)
            return _split(theta, sigma, iters, flat=flat, s=s)
        if kx and not flat:
            theta, sigma, iters = _map_multiplicative(
                trend_cols, x, y, prior[:nt], prior[nt:], l1[:nt], 1.0 / tau, theta0
            )
            return _split(theta, sigma, iters, flat=flat, s=s)
        bounds = [(None, None)] * nf + [(0.0, None)] * (2 * nl) + [(np.log(1e-9), None)]
        res = optimize.minimize(
            objective,
            x0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 10_000, "maxcor": 30, "ftol": 1e-12, "gtol": 1e-7},
        )
        if not np.all(np.isfinite(res.x)):
            raise ForecastError(f"Prophet optimisation did not converge: {res.message}")
        theta = unpack(res.x)
        return _split(theta, float(np.exp(res.x[-1])), int(res.nit), flat=flat, s=s)

    def _fit_stan(
        self,
        ds: npt.NDArray[np.datetime64],
        y: FloatArray,
        design: _Design,
        *,
        step_ns: int,
        init: dict[str, Any] | None,
        uid: str | None,
    ) -> FittedProphet:
        """Fit through the prophet library (CmdStan), keeping only its MAP parameters."""
        import pandas as pd

        silence_prophet()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from prophet import Prophet

            model = Prophet(
                growth=self.growth,
                changepoint_prior_scale=self.changepoint_prior_scale,
                seasonality_prior_scale=self.seasonality_prior_scale,
                seasonality_mode=self.seasonality_mode,
                yearly_seasonality=self.yearly,
                weekly_seasonality=self.weekly,
                daily_seasonality=self.daily,
                n_changepoints=self.n_changepoints,
                changepoint_range=self.changepoint_range,
                uncertainty_samples=0,
            )
            frame = pd.DataFrame({"ds": ds.astype("datetime64[ns]"), "y": y})
            kwargs: dict[str, Any] = {}
            if init is not None:
                kwargs["init"] = {
                    "k": float(init["k"]),
                    "m": float(init["m"]),
                    "delta": np.asarray(init["delta"], dtype=np.float64),
                    "beta": np.asarray(init["beta"], dtype=np.float64),
                    "sigma_obs": float(init["sigma_obs"]),
                }
            try:
                model.fit(frame, **kwargs)
            except RuntimeError as err:
                raise ForecastError(f"Prophet (Stan) failed: {err}", unique_id=uid) from err
        p = model.params
        return FittedProphet(
            design=design,
            k=float(p["k"][0, 0]),
            m=float(p["m"][0, 0]),
            delta=np.asarray(p["delta"][0], dtype=np.float64),
            beta=np.asarray(p["beta"][0], dtype=np.float64),
            sigma_obs=float(p["sigma_obs"][0, 0]),
            multiplicative=self.seasonality_mode == "multiplicative",
            growth=self.growth,
            interval_samples=self.interval_samples,
            seed=self.seed,
            last_ds=ds[-1],
            step_ns=step_ns,
            model=self.name,
        )
