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

Finite-size analysis (docs/reference.md §7), for a ratio grid n = round(ratio d):

- per d (`finite_size`), the centre c_d = n50/d and the width w_d = (n90 - n10)/d of the fitted
  logistic, with percentile intervals from the same bootstrap resamples;
- the power law w_d = A d^-a (`width_exponent`), with an interval for the exponent a;
- the collapse (`collapse`): one logistic P = expit(s (n/d - c) d^a) for every d, c and a
  fitted, so that the rate against (n/d - c) d^a is a single curve.
"""
import csv
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats
from scipy.special import expit

from planted import patterns

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


def _binomial_nll(z, k, m):
    """-log of the binomial likelihood of k successes in m trials at p = expit(z), per point:
    -log p = softplus(-z), -log(1 - p) = softplus(z)."""
    return k * np.logaddexp(0, -z) + (m - k) * np.logaddexp(0, z)


def _objective(a, b, x, k, m, ridge=RIDGE):
    """Penalized binomial negative log-likelihood, one value per row of k (a, b: per row)."""
    return _binomial_nll(a[:, None] + b[:, None] * x, k, m).sum(1) + ridge * b**2 / 2


def _newton(x, k, m, iterations=100, ridge=RIDGE):
    """Minimise `_objective` for every row of k at once: damped Newton on a strictly convex
    function of (a, b), with backtracking. Returns a, b (one per row)."""
    a, b = np.zeros(len(k)), np.ones(len(k))
    for _ in range(iterations):
        z = a[:, None] + b[:, None] * x
        p = expit(z)
        r = m * p - k
        ga, gb = r.sum(1), (r * x).sum(1) + ridge * b
        w = m * p * (1 - p)
        haa, hab, hbb = w.sum(1) + 1e-12, (w * x).sum(1), (w * x * x).sum(1) + ridge
        det = haa * hbb - hab**2
        da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        decrement = ga * da + gb * db  # >= 0: the squared Newton decrement
        f0 = _objective(a, b, x, k, m, ridge)
        # rows not yet converged (the rest keep their values): a decrease the objective's
        # rounding cannot show is none (else tiny accepted steps repeat to the last iteration)
        active = decrement > 1e-14 + 16 * np.finfo(float).eps * np.abs(f0)
        if not active.any():
            break
        t = active.astype(float)
        for _ in range(50):  # halve the step where it does not decrease enough (Armijo)
            bad = active & (_objective(a - t * da, b - t * db, x, k, m, ridge) > f0 - 1e-4 * t * decrement)
            if not bad.any():
                break
            t[bad] /= 2
        a, b = a - t * da, b - t * db
    return a, b


def _verdicts(n, k, m, ridge=RIDGE):
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
        a, b = _newton(logn - centre, k[rest], m, ridge=ridge)
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


def fit(nvec, outcomes, ridge=RIDGE):
    """Logistic fit of one d: outcomes has shape (len(nvec), trials), entries 0, 1 or NaN.

    Returns dict(n50, slope, reason); n50 is NaN (with the reason) where no transition can
    be located on the grid.
    """
    n, k, m = _counts(nvec, outcomes)
    n50, slope, reason, _ = _verdicts(n, k[None], m, ridge)
    return dict(n50=float(n50[0]), slope=float(slope[0]), reason=reason[0])


def _resamples(nvec, outcomes, reps, seed, ridge=RIDGE):
    """The raw 50% points (see `_verdicts`) and slopes of `reps` bootstrap resamples: the
    trials of each n drawn with replacement; None without any trial."""
    rng = np.random.default_rng(seed)
    rows = [row[np.isfinite(row)] for row in np.asarray(outcomes, float)]
    keep = [i for i, row in enumerate(rows) if len(row)]
    if not keep:
        return None
    n = np.asarray(nvec, float)[keep]
    m = np.array([len(rows[i]) for i in keep], float)
    k = np.column_stack([rng.choice(rows[i], (reps, len(rows[i]))).sum(1) for i in keep])
    _, slope, _, raw = _verdicts(n, k, m, ridge)
    return raw, slope


def _interval(draws, level):
    """Percentile interval of the draws that are not NaN; an end that is not finite and
    positive is NaN."""
    draws = draws[~np.isnan(draws)]
    if draws.size == 0:
        return np.nan, np.nan
    with np.errstate(invalid="ignore"):  # interpolating between two infinite draws: NaN, as meant
        lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo) if 0 < lo < np.inf else np.nan), (float(hi) if 0 < hi < np.inf else np.nan)


def bootstrap(nvec, outcomes, reps=BOOTSTRAP, seed=0, level=LEVEL):
    """Percentile interval of n50: resample the trials of each n with replacement, refit.

    A resample that is never recovered counts as n50 = +inf, one always recovered as 0, one
    off the grid at its fitted value: leaving them out would narrow the interval. Resamples
    whose rate does not increase locate no transition and are left out. An end of the
    interval that is not finite (or 0) is returned as NaN.
    """
    drawn = _resamples(nvec, outcomes, reps, seed)
    return (np.nan, np.nan) if drawn is None else _interval(drawn[0], level)


def column(values, n, j):
    """The distinct n of column j of a grid and their outcomes (len(n_j) x trials).

    `n`: the grid's n, one list for every column (nvec) or a rows x columns matrix (a ratio
    grid, where two rows may hold the same cell: it counts once)."""
    n = np.asarray(n)
    ncol = n[:, j] if n.ndim == 2 else n
    distinct, first = np.unique(ncol, return_index=True)
    return distinct, np.asarray(values, float)[first, j, :]


def table(values, nvec, dvec, reps=BOOTSTRAP, seed=0, fit_from=0.0):
    """One row per d of a recovery array `values` (len(nvec), len(dvec), trials): d, n50, the
    bootstrap interval (lo, hi), n50/d, Wendel's n = 2d, the fitted slope, trials used, reason.
    nvec: the grid's n, or the rows x columns matrix of n of a ratio grid (see `column`).
    fit_from: fit only the cells with n >= fit_from * d (the others count as undefined)."""
    rows = []
    for j, d in enumerate(dvec):
        nvec_d, outcomes = column(values, nvec, j)
        outcomes[nvec_d < fit_from * d] = np.nan
        result = fit(nvec_d, outcomes)
        lo, hi = bootstrap(nvec_d, outcomes, reps, seed) if np.isfinite(result["n50"]) else (np.nan, np.nan)
        rows.append(dict(d=d, n50=result["n50"], lo=lo, hi=hi, n50_over_d=result["n50"] / d,
                         wendel_n=2 * d, slope=result["slope"],
                         trials=int(np.isfinite(outcomes).sum()), reason=result["reason"]))
    return rows


# ----- finite-size analysis of a ratio grid ------------------------------------------------

LOGIT90 = np.log(9)  # logit(0.9) = -logit(0.1)
FINITE_COLUMNS = ("d", "centre", "centre_lo", "centre_hi", "width", "width_lo", "width_hi", "wendel_width",
                  "slope", "trials", "reason", "width_exponent", "width_exponent_lo", "width_exponent_hi",
                  "width_prefactor", "collapse_c", "collapse_c_lo", "collapse_c_hi", "collapse_a",
                  "collapse_a_lo", "collapse_a_hi", "collapse_scale")


def spread(n50, slope):
    """n90 - n10 of the fitted logistic P = expit(b log(n / n50)): 2 n50 sinh(log 9 / b)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return np.where(np.asarray(slope) > 0, 2 * np.asarray(n50) * np.sinh(LOGIT90 / np.asarray(slope)), np.nan)


@dataclass
class FiniteSize:
    """The transition of one d in units of n/d: centre c_d = n50/d and width w_d = (n90 - n10)/d
    of the logistic fit, each with its percentile bootstrap interval (lo, hi); NaN with the
    reason where no transition is located."""
    d: int
    centre: float
    centre_ci: tuple
    width: float
    width_ci: tuple
    slope: float
    trials: int
    reason: str


def finite_size(nvec, outcomes, d, reps=BOOTSTRAP, seed=0, level=LEVEL):
    """FiniteSize of one d: outcomes (len(nvec), trials) as for `fit`.

    The ridge is RIDGE on the slope of the standardized log n (RIDGE var(log n) on b): a
    ratio grid spans a narrow range of log n, where the fixed ridge of `fit` would flatten
    a sharp transition and widen it. The width's interval comes from the centre's resamples;
    those that locate no transition (never or always recovered, a rate that does not
    increase) have no width and are left out of it."""
    n, _, m = _counts(nvec, outcomes)
    ridge = RIDGE * float(np.average((np.log(n) - np.average(np.log(n), weights=m)) ** 2, weights=m)) \
        if len(n) > 1 else RIDGE
    result = fit(nvec, outcomes, ridge)
    n50, slope = result["n50"], result["slope"]
    trials = int(m.sum())
    if not np.isfinite(n50):
        return FiniteSize(d, np.nan, (np.nan, np.nan), np.nan, (np.nan, np.nan), slope, trials, result["reason"])
    raw, slopes = _resamples(nvec, outcomes, reps, seed, ridge)
    lo, hi = _interval(raw, level)
    width_lo, width_hi = _interval(np.where(np.isfinite(raw) & (raw > 0), spread(raw, slopes), np.nan), level)
    return FiniteSize(d, n50 / d, (lo / d, hi / d), float(spread(n50, slope)) / d, (width_lo / d, width_hi / d),
                      slope, trials, "")


def finite_size_table(values, n, dvec, reps=BOOTSTRAP, seed=0):
    """FiniteSize of every d of a recovery array `values` (len(rows), len(dvec), trials) on a
    grid with the n of `column` (a ratio grid's rows x columns matrix)."""
    return [finite_size(*column(values, n, j), d, reps, seed) for j, d in enumerate(dvec)]


def wendel_width(d):
    """(n90 - n10)/d of Wendel's P(all-ones pattern absent | n, d) = 1 - wendel_probability
    (§2), the n where it crosses 0.1 and 0.9 interpolated linearly between integers. Its
    centre is n = 2d exactly."""
    def absent(n):
        return 1 - patterns.wendel_probability(n, d)

    def crossing(p):  # absent(lo) < p <= absent(hi): 0 at n = d, 1 - 2^-(7d+15) at 8d + 16
        lo, hi = d, 8 * d + 16
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if absent(mid) < p else (lo, mid)
        return lo + (p - absent(lo)) / (absent(hi) - absent(lo))
    return (crossing(0.9) - crossing(0.1)) / d


@dataclass
class PowerLaw:
    """w_d = A d^-a: the exponent a with its interval (lo, hi) and the prefactor A, fitted on
    the d listed in `dims`; NaN with the reason where it cannot be fitted."""
    a: float
    a_ci: tuple
    A: float
    dims: list
    reason: str = ""

    def __call__(self, d):
        return self.A * np.asarray(d, float) ** -self.a


def width_exponent(dims, widths, cis=None, level=LEVEL):
    """Fit log w_d = log A - a log d by least squares over the d with a width.

    With intervals `cis` [(lo, hi) per d], weighted: log w_d has the standard error
    (log hi - log lo) / (2 z) of a normal interval, and the interval of a is â ± z se(a) from
    the fit's covariance, inflated by the reduced chi^2 (and z by Student's t on k - 2 degrees
    of freedom) where the widths scatter more than their intervals say. Without intervals (or
    where one is missing), unweighted, se(a) from the residuals, Student's t. With two widths
    only, the unweighted fit has no interval.
    """
    dims, widths = np.asarray(dims, float), np.asarray(widths, float)
    keep = np.isfinite(widths) & (widths > 0)
    if keep.sum() < 2:
        return PowerLaw(np.nan, (np.nan, np.nan), np.nan, dims[keep].astype(int).tolist(),
                        f"{int(keep.sum())} width(s) located, a power law needs 2")
    x, y = np.log(dims[keep]), np.log(widths[keep])
    k = len(x)
    z = stats.norm.ppf((1 + level) / 2)
    sigma = None
    if cis is not None:
        lo, hi = (np.asarray(v, float)[keep] for v in zip(*cis))
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma = (np.log(hi) - np.log(lo)) / (2 * z)
        if not (np.isfinite(sigma) & (sigma > 0)).all():
            sigma = None
    weight = np.ones(k) if sigma is None else sigma**-2
    design = np.column_stack([np.ones(k), x])
    cov = np.linalg.inv(design.T @ (weight[:, None] * design))
    beta = cov @ design.T @ (weight * y)
    chi2 = float((weight * (y - design @ beta) ** 2).sum())
    dof = k - 2
    if sigma is not None and (dof == 0 or chi2 <= dof):
        scale, q = 1.0, z
    elif dof > 0:
        scale, q = chi2 / dof, stats.t.ppf((1 + level) / 2, dof)
    else:
        scale, q = np.nan, np.nan
    a, se = -beta[1], np.sqrt(scale * cov[1, 1])
    return PowerLaw(float(a), (float(a - q * se), float(a + q * se)), float(np.exp(beta[0])),
                    dims[keep].astype(int).tolist())


@dataclass
class Collapse:
    """rate = expit(scale (n/d - c) d^a) for every d: the centre c and the exponent a with
    their intervals (lo, hi), the scale, and the root-mean-square distance of the measured
    rates from the curve (`rms`); NaN with the reason where it cannot be fitted."""
    c: float
    c_ci: tuple
    a: float
    a_ci: tuple
    scale: float
    rms: float
    reason: str = ""

    def scaled(self, ratio, d):
        """The scaled variable (n/d - c) d^a."""
        return (np.asarray(ratio, float) - self.c) * np.asarray(d, float) ** self.a

    def rate(self, x):
        """The one curve, at scaled values x."""
        return expit(self.scale * np.asarray(x, float))


def _points(ratios, dims, outcomes):
    """The distinct (n/d, d) points of a grid with their successes and trials, flattened."""
    outcomes = np.asarray(outcomes, float)
    ratios = np.broadcast_to(np.asarray(ratios, float).reshape(outcomes.shape[0], -1), outcomes.shape[:2])
    defined = np.isfinite(outcomes)
    k, m = np.where(defined, outcomes, 0).sum(2), defined.sum(2)
    x, d = ratios.ravel(), np.broadcast_to(np.asarray(dims, float), outcomes.shape[:2]).ravel()
    _, first = np.unique(np.column_stack([x, d]), axis=0, return_index=True)
    first = first[m.ravel()[first] > 0]
    return x[first], d[first], k.ravel()[first], m.ravel()[first].astype(float)


def collapse(ratios, dims, outcomes, level=LEVEL):
    """Fit c and a so that the rates of every d lie on one logistic in x = (n/d - c) d^a:

        P(recovered | n, d) = expit(s (n/d - c) (d / d0)^a),   d0 the geometric mean of dims,

    by maximum likelihood on the Bernoulli outcomes (len(ratios), len(dims), trials; entries
    0, 1 or NaN) over (c, a, log s), from the pooled fit at a = 0. `ratios`: the n/d of every
    row, or the rows x columns matrix of the actual n/d (n rounded). Intervals: c and a ± z
    se from the inverse Fisher information at the optimum. d0 only keeps a and s apart in the
    fit; the result's scale is that of the variable (n/d - c) d^a: s d0^-a.
    """
    nan2 = (np.nan, np.nan)
    x, d, k, m = _points(ratios, dims, outcomes)

    def failed(reason):
        return Collapse(np.nan, nan2, np.nan, nan2, np.nan, np.nan, reason)
    if len(np.unique(d)) < 2:
        return failed("one d only: the exponent a needs two")
    if k.sum() == 0 or k.sum() == m.sum():
        return failed("rate 0 everywhere" if k.sum() == 0 else "rate 1 everywhere")
    d0 = float(np.exp(np.log(np.unique(d)).mean()))
    logd = np.log(d / d0)
    x0 = x.mean()
    a_, b_ = _newton(x - x0, k[None], m)  # the pooled logistic in n/d: the start
    if b_[0] <= 0:  # as in `fit`: a falling rate has no rising logistic to collapse onto
        return failed("the rate does not increase with n/d")
    start = np.array([x0 - a_[0] / b_[0], 0.0, np.log(max(b_[0], 1e-3))])

    def nll(theta):
        c, a, logs = theta
        g = np.exp(a * logd)
        z = np.exp(logs) * (x - c) * g
        p = expit(z)
        value = _binomial_nll(z, k, m).sum()
        r = m * p - k  # d nll / dz
        dz = np.array([-np.exp(logs) * g, z * logd, z])  # dz / d(c, a, log s)
        return value, dz @ r

    best = optimize.minimize(nll, start, jac=True, method="L-BFGS-B",
                             bounds=[(None, None), (-5, 5), (-30, 30)])
    c, a, logs = best.x
    if not x.min() <= c <= x.max():  # a rate flat at 0 or 1, or falling: the logistic runs off the grid
        return failed(f"the collapsed centre c = {c:.3g} lies outside the grid's n/d: no transition inside it")
    s = np.exp(logs)
    g = np.exp(a * logd)
    z = s * (x - c) * g
    p = expit(z)
    grads = np.array([-s * g, s * (x - c) * g * logd, (x - c) * g])  # dz / d(c, a, s)
    info = (grads * (m * p * (1 - p))) @ grads.T
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.diag(np.linalg.pinv(info)))
    q = stats.norm.ppf((1 + level) / 2)
    rms = float(np.sqrt((m * (k / m - p) ** 2).sum() / m.sum()))
    reason = "" if best.success else f"the fit did not converge ({best.message})"
    return Collapse(float(c), (float(c - q * se[0]), float(c + q * se[0])), float(a),
                    (float(a - q * se[1]), float(a + q * se[1])), float(s * d0**-a), rms, reason)


def finite_rows(sizes, law, fold, wendel=False):
    """Rows for `write_csv(..., columns=FINITE_COLUMNS)`: one per FiniteSize, the power law
    and the collapse repeated on each; wendel: with Wendel's width of each d (where the
    all-ones pattern decides, else NaN)."""
    shared = dict(width_exponent=law.a, width_exponent_lo=law.a_ci[0], width_exponent_hi=law.a_ci[1],
                  width_prefactor=law.A, collapse_c=fold.c, collapse_c_lo=fold.c_ci[0],
                  collapse_c_hi=fold.c_ci[1], collapse_a=fold.a, collapse_a_lo=fold.a_ci[0],
                  collapse_a_hi=fold.a_ci[1], collapse_scale=fold.scale)
    return [dict(d=f.d, centre=f.centre, centre_lo=f.centre_ci[0], centre_hi=f.centre_ci[1], width=f.width,
                 width_lo=f.width_ci[0], width_hi=f.width_ci[1],
                 wendel_width=wendel_width(f.d) if wendel else np.nan, slope=f.slope, trials=f.trials,
                 reason=f.reason, **shared) for f in sizes]


def write_csv(path, rows, extra=(), columns=COLUMNS):
    """Rows of `table` (or of `finite_rows`, columns=FINITE_COLUMNS), with `extra` leading
    columns (e.g. the result file), as CSV; NaN is empty."""
    def text(v):
        if isinstance(v, float):
            return "" if np.isnan(v) else f"{v:.6g}"
        return v
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(extra) + list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: text(v) for k, v in row.items()})


def read_csv(path, columns=COLUMNS):
    """The rows of a CSV written by `write_csv`; the numeric columns as floats (empty = NaN)."""
    numeric = set(columns) - {"reason"}
    with open(path, newline="") as f:
        return [{k: (float(v) if v else np.nan) if k in numeric else v for k, v in row.items()}
                for row in csv.DictReader(f)]
