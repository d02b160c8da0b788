"""How sure a benchmark figure is: percentile-bootstrap intervals over the units a figure is made of.

The units are what was drawn at random and run independently: the forks of action following, the seeds of the
autoregressive rollouts. Frames within one fork are not independent (a world that faces a wall does so for the whole
fork), so resampling frames would claim a precision the benchmark does not have; resampling forks does not.

Two reports of the same benchmark configuration ran the same forks and seeds (same keys, same start frames), so a
difference between two worlds is resampled paired: each draw takes the same units from both. That interval is
much narrower than the two separate ones, because most of what varies between forks varies for both worlds.
"""

from __future__ import annotations

import numpy as np

DRAWS = 4000  # bootstrap resamples; the interval's ends move by well under its width from one seed to another
LEVEL = 0.95


def _draws(units: int, draws: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, units, size=(draws, units))  # [draws, units] unit indices


def _ratio(num: np.ndarray, den: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """sum(num)/sum(den) for each resample; NaN where a resample drew no denominator at all."""
    n, d = num[idx].sum(-1), den[idx].sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(d > 0, n / np.where(d > 0, d, 1), np.nan)


def _ends(values: np.ndarray, level: float) -> list[float] | None:
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return None
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def ratio_interval(num, den, draws: int = DRAWS, level: float = LEVEL, seed: int = 0) -> list[float] | None:
    """Interval of sum(num) / sum(den) (an agreement rate: right / compared; a spread: world / real), resampling units.

    num, den: one value per unit. None with fewer than two units that have a denominator."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    if (den > 0).sum() < 2:
        return None
    return _ends(_ratio(num, den, _draws(len(num), draws, seed)), level)


def paired_ratio_difference(num_a, den_a, num_b, den_b, draws: int = DRAWS, level: float = LEVEL, seed: int = 0) -> dict | None:
    """B's ratio minus A's, and its interval, each resample taking the same units from both."""
    num_a, den_a, num_b, den_b = (np.asarray(x, float) for x in (num_a, den_a, num_b, den_b))
    if not (len(num_a) == len(den_a) == len(num_b) == len(den_b)) or ((den_a > 0) & (den_b > 0)).sum() < 2:
        return None
    idx = _draws(len(num_a), draws, seed)
    point = num_b.sum() / den_b.sum() - num_a.sum() / den_a.sum()
    return {"difference": float(point), "interval": _ends(_ratio(num_b, den_b, idx) - _ratio(num_a, den_a, idx), level)}


def paired_mean_difference(a, b, draws: int = DRAWS, level: float = LEVEL, seed: int = 0) -> dict | None:
    """mean(b - a) over the units both measured (None: not measured, e.g. the game had ended), and its interval."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    if len(pairs) < 2:
        return None
    diff = np.array([y - x for x, y in pairs], float)
    idx = _draws(len(diff), draws, seed)
    return {"difference": float(diff.mean()), "interval": _ends(diff[idx].mean(-1), level), "units": len(diff)}


def mean_interval(values, draws: int = DRAWS, level: float = LEVEL, seed: int = 0) -> list[float] | None:
    """Interval of the mean over units (None entries skipped)."""
    v = np.array([x for x in values if x is not None], float)
    if len(v) < 2:
        return None
    return _ends(v[_draws(len(v), draws, seed)].mean(-1), level)


def two_sample_interval(a, b, statistic, draws: int = DRAWS, level: float = LEVEL, seed: int = 0) -> list[float] | None:
    """Interval of statistic(a, b) for a figure made of two independent samples of units (a world's rollouts and the
    real runs that set its ceiling), resampling each on its own. a [Ua, ...], b [Ub, ...]; statistic maps
    ([draws, Ua, ...], [draws, Ub, ...]) -> [draws]. None with fewer than two units on either side."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return None
    return _ends(statistic(a[_draws(len(a), draws, seed)], b[_draws(len(b), draws, seed + 1)]), level)


def paired_statistic_difference(a, b, statistic, draws: int = DRAWS, level: float = LEVEL, seed: int = 0) -> dict | None:
    """statistic(b) - statistic(a) and its interval, each resample taking the same units from both (a, b: [U, ...];
    statistic maps [draws, U, ...] -> [draws])."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or len(a) < 2:
        return None
    idx = _draws(len(a), draws, seed)
    point = float(statistic(b[None])[0] - statistic(a[None])[0])
    return {"difference": point, "interval": _ends(statistic(b[idx]) - statistic(a[idx]), level)}
