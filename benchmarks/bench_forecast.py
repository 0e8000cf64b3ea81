"""Forecast throughput and fidelity: cloudbalance vs the loop a user writes with Prophet.

Workload: N daily series (default 1,000) of 730 days, horizon 30, 80% intervals. Each series has
30 more days held out, to measure interval coverage on data no model saw.

Baseline, measured in this run: for each series ``Prophet().fit(df)`` then
``predict(make_future_dataframe(30))`` in one process (Prophet's defaults, 1,000 uncertainty
samples). Measured for cloudbalance, cold (fresh process pool) and warm (one more day of data,
``warm_start=`` yesterday's result):

- ``model="prophet"``: the same model as the baseline, with 3 backtest windows and conformal
  interval calibration (``windows=3``), and without (``windows=0``, exactly the baseline's work);
- the default pipeline (``model="auto"``): backtests of 5 candidates, choice, calibration.

Printed: series/s of each and the ratio to the baseline; point-forecast agreement with the
baseline (relative L1 difference over the horizon, per series); coverage of the 80% interval on
the held-out 30 days.

Run: ``python benchmarks/bench_forecast.py [--series 1000] [--baseline-series 1000]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings

import numpy as np
import pandas as pd

HORIZON = 30
DAYS = 730


def generate(n_series: int, days: int = DAYS + HORIZON + 1, seed: int = 0) -> pd.DataFrame:
    """Daily cost-like series: level, growth, weekday pattern, yearly cycle, noise, and in some
    series a regime change, month-end billing bumps, runaway-job spikes, credits and zero days.
    """
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2023-01-01", periods=days, freq="D")
    t = np.arange(days)
    dow = ds.day_of_week.to_numpy()
    doy = ds.day_of_year.to_numpy()
    month_end = ds.is_month_end
    frames = []
    for i in range(n_series):
        level = float(np.exp(rng.normal(5, 1.2)))
        growth = rng.normal(0.0004, 0.0008) * level * t
        weekly = level * rng.uniform(0, 0.3) * np.where(dow >= 5, -1.0, 0.4)
        yearly = (
            level * rng.uniform(0, 0.15) * np.sin(2 * np.pi * (doy + rng.uniform(0, 365)) / 365.25)
        )
        noise = rng.normal(0, level * rng.uniform(0.02, 0.12), days)
        y = level + growth + weekly + yearly + noise
        kind = rng.uniform()
        if kind < 0.25:  # regime change: a migration, a new customer
            at = int(rng.integers(days // 3, days - 60))
            y[at:] += level * rng.uniform(-0.4, 0.8)
        if rng.uniform() < 0.3:  # month-end billing artefacts
            y[month_end] += level * rng.uniform(0.2, 1.0)
        if rng.uniform() < 0.2:  # runaway jobs
            for at in rng.integers(0, days, 3):
                y[at] += level * rng.uniform(1, 4)
        if rng.uniform() < 0.1:  # credits
            y[rng.integers(0, days, 2)] = -level * rng.uniform(0.5, 2)
        if rng.uniform() < 0.1:  # zero days (pipeline gaps billed as zero)
            y[rng.integers(0, days, 5)] = 0.0
        frames.append(pd.DataFrame({"unique_id": f"series-{i:04d}", "ds": ds, "y": y}))
    return pd.concat(frames, ignore_index=True)


def _silence() -> None:
    for name in ("prophet", "cmdstanpy"):
        logging.getLogger(name).setLevel(logging.ERROR)
        logging.getLogger(name).propagate = False
        logging.getLogger(name).disabled = True


def baseline(
    train: pd.DataFrame, ids: list[str], params: dict[str, dict[str, np.ndarray]] | None = None
) -> tuple[float, dict[str, pd.DataFrame]]:
    """The user's loop; returns seconds and the 30-day forecast per series."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from prophet import Prophet
    _silence()
    out: dict[str, pd.DataFrame] = {}
    groups = {uid: g[["ds", "y"]] for uid, g in train.groupby("unique_id") if uid in set(ids)}
    start = time.perf_counter()
    for uid in ids:
        m = Prophet()
        m.fit(groups[uid])
        fc = m.predict(m.make_future_dataframe(HORIZON))
        out[uid] = fc.tail(HORIZON)[["ds", "yhat", "yhat_lower", "yhat_upper"]]
        if params is not None:
            params[uid] = {k: np.asarray(v)[0] for k, v in m.params.items()}
    return time.perf_counter() - start, out


def neg_log_posterior(frame: pd.DataFrame, p: dict[str, np.ndarray]) -> float:
    """Prophet's objective (as Stan minimises it, constants dropped) at parameters ``p``."""
    from cloudbalance.forecast.prophet import ProphetForecaster, _features

    ds = frame["ds"].to_numpy(dtype="datetime64[ns]")
    y = frame["y"].to_numpy(dtype=float)
    design = ProphetForecaster()._design(ds, y)
    t = (ds.astype(np.int64) - design.start_ns) / design.t_scale_ns
    x = _features(design, ds)
    k, m = float(np.ravel(p["k"])[0]), float(np.ravel(p["m"])[0])
    delta, beta = np.ravel(p["delta"]), np.ravel(p["beta"])
    sigma = float(np.ravel(p["sigma_obs"])[0])
    cp = design.changepoints_t
    trend = k * t + m + np.maximum(t[:, None] - cp[None, :], 0) @ delta
    r = y / design.y_scale - trend - x @ beta
    return float(
        len(y) * np.log(sigma)
        + r @ r / (2 * sigma**2)
        + (k * k + m * m) / 50
        + np.abs(delta).sum() / 0.05
        + beta @ beta / 200
        + 2 * sigma**2
    )


def coverage(fc: pd.DataFrame, truth: pd.DataFrame) -> float:
    joined = fc.merge(truth, on=["unique_id", "ds"])
    inside = (joined["y"] >= joined["yhat_lower"]) & (joined["y"] <= joined["yhat_upper"])
    return float(inside.mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument(
        "--baseline-series",
        type=int,
        default=None,
        help="Series the (slow) baseline loop runs on; default: all.",
    )
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()

    from cloudbalance.forecast import ForecastResult, forecast

    data = generate(args.series)
    days = np.sort(data["ds"].unique())
    train = data[data["ds"] <= days[DAYS - 1]]  # 730 days
    train_plus1 = data[data["ds"] <= days[DAYS]]  # one more day
    truth = data[(data["ds"] > days[DAYS - 1]) & (data["ds"] <= days[DAYS - 1 + HORIZON])]
    ids = sorted(data["unique_id"].unique())
    nb = args.baseline_series or len(ids)
    cores = len(os.sched_getaffinity(0))
    print(f"{len(ids)} daily series x {DAYS} days, horizon {HORIZON}, 80% intervals, {cores} cores")

    stan_params: dict[str, dict[str, np.ndarray]] = {}
    base_s, base_fc = baseline(train, ids[:nb], stan_params)
    base_rate = nb / base_s
    print(
        f"baseline Prophet loop (cold)  : {nb} series in {base_s:7.1f} s = {base_rate:7.2f} "
        "series/s"
    )
    nbw = min(nb, 100)
    warm_s, _ = baseline(train_plus1, ids[:nbw])
    base_warm_rate = nbw / warm_s
    print(
        f"baseline Prophet loop (+1 day): {nbw} series in {warm_s:7.1f} s = "
        f"{base_warm_rate:7.2f} series/s"
    )

    def run(label: str, frame: pd.DataFrame, ref: float, **kwargs: object) -> ForecastResult:
        start = time.perf_counter()
        res = forecast(
            frame, horizon=HORIZON, interval=0.8, return_accuracy=True, n_jobs=args.jobs, **kwargs
        )  # type: ignore[arg-type]
        secs = time.perf_counter() - start
        assert isinstance(res, ForecastResult)
        rate = len(ids) / secs
        print(
            f"{label:34s}: {len(ids)} series in {secs:7.1f} s = {rate:7.2f} series/s "
            f"= {rate / ref:5.1f}x baseline"
        )
        return res

    p3 = run("prophet, windows=3 (cold start)", train, base_rate, model="prophet")
    run(
        "prophet, windows=3 (warm, +1 day)",
        train_plus1,
        base_warm_rate,
        model="prophet",
        warm_start=p3,
    )
    p0 = run("prophet, windows=0 (pool up)", train, base_rate, model="prophet", windows=0)
    auto = run("default pipeline (pool up)", train, base_rate)
    run("default pipeline (warm, +1 day)", train_plus1, base_warm_rate, warm_start=auto)
    print("(cold start = includes starting the worker pool; later runs reuse it)")

    # fidelity: point forecasts vs the baseline's, same series
    rel = []
    for uid in ids[:nb]:
        ours = p0.forecast[p0.forecast["unique_id"] == uid]["yhat"].to_numpy()
        theirs = base_fc[uid]["yhat"].to_numpy()
        rel.append(np.abs(ours - theirs).sum() / max(np.abs(theirs).sum(), 1e-9))
    rel_a = np.asarray(rel)
    print(
        f"point forecast vs baseline (relative L1 over 30 days): median {np.median(rel_a):.4%}, "
        f"p95 {np.quantile(rel_a, 0.95):.4%}, max {rel_a.max():.4%}; "
        f"within 1%: {np.mean(rel_a <= 0.01):.1%} of series"
    )
    # where they differ, which one found the better posterior? (lower is better)
    ours_better = 0
    differing = [uid for uid, r in zip(ids[:nb], rel_a, strict=True) if r > 0.002]
    for uid in differing:
        frame = train[train["unique_id"] == uid]
        mine = p0.state[uid]["params"]
        if neg_log_posterior(frame, mine) <= neg_log_posterior(frame, stan_params[uid]) + 1e-6:
            ours_better += 1
    print(
        f"series differing by more than 0.2%: {len(differing)}; in {ours_better} of them our "
        "parameters reach a higher posterior than Stan's L-BFGS stopping point"
    )

    base_frame = pd.concat([f.assign(unique_id=u) for u, f in base_fc.items()])
    sub = truth[truth["unique_id"].isin(ids[:nb])]
    print("coverage of the 80% interval on the 30 held-out days (target 0.80):")
    print(f"  baseline Prophet                 : {coverage(base_frame, sub):.3f}")
    for label, res in (
        ("prophet, uncalibrated (windows=0)", p0),
        ("prophet, calibrated (windows=3)", p3),
        ("default pipeline, calibrated", auto),
    ):
        fc = res.forecast[res.forecast["unique_id"].isin(ids[:nb])]
        print(f"  {label:33s}: {coverage(fc, sub):.3f}")
    chosen = auto.accuracy["model"].value_counts().to_dict()
    print(f"default pipeline chose: {chosen}")


if __name__ == "__main__":
    main()
