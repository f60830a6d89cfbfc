"""Where a recovery transition sits: a logistic fit of the recovery rate in n, for each d.

For one d, every trial at sample count n is a 0/1 outcome (recovered or not). The model

    P(recovered | n) = 1 / (1 + exp(-(a + b log n)))

is fitted by maximum likelihood on these Bernoulli outcomes (trials at the same n enter through
their number of successes, which gives the same likelihood), with a weak ridge on the slope b so
that perfectly separated outcomes still have a finite fit (RIDGE below); a damped Newton method
solves all bootstrap resamples at once. n50 = exp(-a / b) is the n where the fitted rate is
1/2. The interval is a percentile bootstrap: the trials of each n are resampled with
replacement (the grid of n is kept), from a fixed seed, and refitted.

Wendel's theorem (docs/reference.md §2) puts the 50% point of "the all-ones pattern is a ReLU
pattern" at exactly n = 2d for Gaussian X, so the relaxed skip program's n50/d is compared
with 2.

A d whose outcomes cannot locate a transition (no trials, one n only, never or always
recovered, a rate that does not increase with n, a 50% point off the grid) gets n50 = NaN and
the reason, never an exception.
"""
import csv

import numpy as np
from scipy.special import expit

# Weak ridge penalty RIDGE * b^2 / 2 on the slope (b in units of log n). Where the outcomes
# separate perfectly (all 0 below some n, all 1 above) the pure likelihood keeps growing with b
# and has no maximiser; the penalty keeps the fit finite and puts n50 inside the gap between
# the last failure and the first success. Elsewhere it is negligible: with 5 trials at each of
# 10 sizes the curvature of the log-likelihood in b is already of order 1.
RIDGE = 1e-2
BOOTSTRAP = 200
LEVEL = 0.95
COLUMNS = ("d", "n50", "lo", "hi", "n50_over_d", "wendel_n", "slope", "trials", "reason")


def _counts(nvec, outcomes):
    """(n, successes, trials) per row of `outcomes` (len(nvec) x trials, NaN = undefined)."""
    outcomes = np.asarray(outcomes, float)
    defined = np.isfinite(outcomes)
    m = defined.sum(axis=1)
    k = np.where(defined, outcomes, 0).sum(axis=1)
    keep = m > 0
    return np.asarray(nvec, float)[keep], k[keep], m[keep]


def _objective(a, b, x, k, m):
    """Penalized binomial negative log-likelihood, one value per row of k (a, b: per row)."""
    z = a[:, None] + b[:, None] * x
    # -log p = softplus(-z), -log(1 - p) = softplus(z)
    return (k * np.logaddexp(0, -z) + (m - k) * np.logaddexp(0, z)).sum(1) + RIDGE * b**2 / 2


def _newton(x, k, m, iterations=100):
    """Minimise `_objective` for every row of k at once: damped Newton on a strictly convex
    function of (a, b), with backtracking. Returns a, b (one per row)."""
    a, b = np.zeros(len(k)), np.ones(len(k))
    for _ in range(iterations):
        z = a[:, None] + b[:, None] * x
        p = expit(z)
        r = m * p - k
        ga, gb = r.sum(1), (r * x).sum(1) + RIDGE * b
        w = m * p * (1 - p)
        haa, hab, hbb = w.sum(1) + 1e-12, (w * x).sum(1), (w * x * x).sum(1) + RIDGE
        det = haa * hbb - hab**2
        da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        decrement = ga * da + gb * db  # >= 0: the squared Newton decrement
        active = decrement > 1e-14  # rows not yet converged (the rest keep their values)
        if not active.any():
            break
        f0, t = _objective(a, b, x, k, m), active.astype(float)
        for _ in range(50):  # halve the step where it does not decrease enough (Armijo)
            bad = active & (_objective(a - t * da, b - t * db, x, k, m) > f0 - 1e-4 * t * decrement)
            if not bad.any():
                break
            t[bad] /= 2
        a, b = a - t * da, b - t * db
    return a, b


def _verdicts(n, k, m):
    """n50, slope and reason for every row of counts k (rows: resamples; n, m shared)."""
    rows = len(k)
    n50, slope, reason = np.full(rows, np.nan), np.full(rows, np.nan), np.full(rows, "", dtype=object)
    if m.sum() == 0:
        reason[:] = "no defined trials"
        return n50, slope, reason, n50.copy()
    if len(n) < 2:
        reason[:] = f"one value of n only ({n[0]:g})"
        return n50, slope, reason, n50.copy()
    total = k.sum(1)
    never, always = total == 0, total == m.sum()
    reason[never] = f"rate 0 on the whole grid (n50 > {n.max():g})"
    reason[always] = f"rate 1 on the whole grid (n50 < {n.min():g})"
    # the raw 50% point, for the bootstrap: +inf never recovered, 0 always, else the fit
    raw = np.where(never, np.inf, np.where(always, 0.0, np.nan))
    rest = ~(never | always)
    if rest.any():
        logn = np.log(n)
        centre = logn.mean()  # centred log n: a well-conditioned problem
        a, b = _newton(logn - centre, k[rest], m)
        slope[rest] = b
        with np.errstate(divide="ignore", over="ignore"):
            fitted = np.where(b > 0, np.exp(centre - a / np.where(b > 0, b, 1)), np.nan)
        on_grid = (fitted >= n.min()) & (fitted <= n.max())
        n50[np.flatnonzero(rest)[on_grid]] = fitted[on_grid]
        raw[rest] = fitted
        for i, value, up in zip(np.flatnonzero(rest), fitted, b > 0):
            if not up:
                reason[i] = "rate does not increase with n"
            elif not n.min() <= value <= n.max():
                reason[i] = f"50% point off the grid (fit at n = {value:.3g})"
    return n50, slope, reason, raw


def fit(nvec, outcomes):
    """Logistic fit of one d: outcomes has shape (len(nvec), trials), entries 0, 1 or NaN.

    Returns dict(n50, slope, reason); n50 is NaN (with the reason) where no transition can
    be located on the grid.
    """
    n, k, m = _counts(nvec, outcomes)
    n50, slope, reason, _ = _verdicts(n, k[None], m)
    return dict(n50=float(n50[0]), slope=float(slope[0]), reason=reason[0])


def bootstrap(nvec, outcomes, reps=BOOTSTRAP, seed=0, level=LEVEL):
    """Percentile interval of n50: resample the trials of each n with replacement, refit.

    A resample that is never recovered counts as n50 = +inf, one always recovered as 0, one
    off the grid at its fitted value: leaving them out would narrow the interval. An end of
    the interval that is not finite (or 0) is returned as NaN.
    """
    rng = np.random.default_rng(seed)
    rows = [row[np.isfinite(row)] for row in np.asarray(outcomes, float)]
    keep = [i for i, row in enumerate(rows) if len(row)]
    if not keep:
        return np.nan, np.nan
    n = np.asarray(nvec, float)[keep]
    m = np.array([len(rows[i]) for i in keep], float)
    k = np.column_stack([rng.choice(rows[i], (reps, len(rows[i]))).sum(1) for i in keep])
    raw = _verdicts(n, k, m)[3]
    raw = raw[~np.isnan(raw)]  # resamples whose rate does not increase locate no transition
    if raw.size == 0:
        return np.nan, np.nan
    with np.errstate(invalid="ignore"):  # interpolating between two infinite draws: NaN, as meant
        lo, hi = np.quantile(raw, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo) if 0 < lo < np.inf else np.nan), (float(hi) if 0 < hi < np.inf else np.nan)


def table(values, nvec, dvec, reps=BOOTSTRAP, seed=0, fit_from=0.0):
    """One row per d of a recovery array `values` (len(nvec), len(dvec), trials): d, n50, the
    bootstrap interval (lo, hi), n50/d, Wendel's n = 2d, the fitted slope, trials used, reason.
    fit_from: fit only the cells with n >= fit_from * d (the others count as undefined)."""
    rows = []
    for j, d in enumerate(dvec):
        outcomes = np.array(values[:, j, :], float)
        outcomes[np.asarray(nvec) < fit_from * d] = np.nan
        result = fit(nvec, outcomes)
        lo, hi = bootstrap(nvec, outcomes, reps, seed) if np.isfinite(result["n50"]) else (np.nan, np.nan)
        rows.append(dict(d=d, n50=result["n50"], lo=lo, hi=hi, n50_over_d=result["n50"] / d,
                         wendel_n=2 * d, slope=result["slope"],
                         trials=int(np.isfinite(outcomes).sum()), reason=result["reason"]))
    return rows


def write_csv(path, rows, extra=()):
    """Rows of `table` (with `extra` leading columns, e.g. the result file) as CSV; NaN is empty."""
    def text(v):
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.6g}"
        return v
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(extra) + list(COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: text(v) for k, v in row.items()})


def read_csv(path):
    """The rows of a CSV written by `write_csv`; the numeric columns as floats (empty = NaN)."""
    numeric = set(COLUMNS) - {"reason"}
    with open(path, newline="") as f:
        return [{k: (float(v) if v else np.nan) if k in numeric else v for k, v in row.items()}
                for row in csv.DictReader(f)]
