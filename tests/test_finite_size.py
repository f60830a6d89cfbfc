"""Finite-size analysis (planted.transition): the per-d centre and width, the power law of the
widths, the collapse, and Wendel's width, on synthetic Bernoulli outcomes of known laws."""
import numpy as np
import pytest
from scipy.special import expit

import utils
from planted import patterns, transition

DIMS = [25, 50, 100, 200, 400]
RATIOS = np.round(np.arange(1.5, 2.5 + 0.025, 0.05), 10)
N = np.array([[utils.ratio_n(r, d) for d in DIMS] for r in RATIOS])  # the ratio grid's n


def draw(P, trials, seed):
    """0/1 outcomes, `trials` per cell of the probabilities P (rows x dims)."""
    rng = np.random.default_rng(seed)
    return (rng.random(P.shape + (trials,)) < P[..., None]).astype(float)


def logistic_in_log_n(centre, widths):
    """P(n, d) of the per-d model of transition.fit, P = expit(b_d log(n / (centre d))), with
    the slope b_d that makes (n90 - n10)/d = widths[d] (2 centre sinh(log 9 / b) = w)."""
    d = np.array(DIMS)
    b = np.log(9) / np.arcsinh(np.asarray(widths) / (2 * centre))
    return expit(b * np.log(N / (centre * d)))


def test_spread_is_the_10_to_90_distance_of_the_fitted_logistic():
    n50, b = 40.0, 7.0
    n = np.linspace(20, 80, 600001)
    p = expit(b * np.log(n / n50))
    n10, n90 = n[np.searchsorted(p, 0.1)], n[np.searchsorted(p, 0.9)]
    assert transition.spread(n50, b) == pytest.approx(n90 - n10, abs=1e-3)
    assert np.isnan(transition.spread(n50, -1.0))  # a falling fit has no width


def test_width_exponent_is_recovered_within_its_interval():
    """w_d = 3 d^-1/2 and the centre 2 at every d, 10 trials per cell: in 20 repetitions the
    true exponent lies in the 95% interval of the fitted one in most (18 here); the estimates
    scatter around 1/2."""
    P = logistic_in_log_n(2.0, 3 * np.array(DIMS) ** -0.5)
    inside, estimates = 0, []
    for seed in range(20):
        sizes = transition.finite_size_table(draw(P, 10, seed), N, DIMS)
        law = transition.width_exponent(DIMS, [f.width for f in sizes], [f.width_ci for f in sizes])
        inside += law.a_ci[0] <= 0.5 <= law.a_ci[1]
        estimates.append(law.a)
        assert all(f.centre_ci[0] < f.centre < f.centre_ci[1] and f.width_ci[0] < f.width < f.width_ci[1]
                   for f in sizes)
    assert inside >= 15, inside
    assert abs(np.mean(estimates) - 0.5) < 0.1


def test_width_exponent_of_an_exact_power_law():
    law = transition.width_exponent(DIMS, 2.5 * np.array(DIMS, float) ** -0.7)
    assert law.a == pytest.approx(0.7) and law.A == pytest.approx(2.5)
    assert law.a_ci[0] == pytest.approx(0.7) and law.a_ci[1] == pytest.approx(0.7)  # no scatter
    assert law(100) == pytest.approx(2.5 * 100**-0.7)
    two = transition.width_exponent([10, 20], [1.0, 0.5])  # a line through two points, no interval
    assert two.a == pytest.approx(1.0) and np.isnan(two.a_ci).all()
    none = transition.width_exponent([10, 20, 40], [np.nan, 0.3, np.nan])
    assert np.isnan(none.a) and "needs 2" in none.reason


def test_finite_size_of_a_grid_without_a_transition():
    values = np.ones((len(RATIOS), len(DIMS), 3))
    values[:, 0] = 0
    sizes = transition.finite_size_table(values, N, DIMS)
    assert [np.isnan(f.width) for f in sizes] == [True] * len(DIMS)
    assert "rate 0" in sizes[0].reason and "rate 1" in sizes[1].reason


COLLAPSING = expit(1.5 * (N / np.array(DIMS) - 2.0) * np.array(DIMS) ** 0.5)  # c = 2, a = 1/2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_collapse_recovers_c_and_a(seed):
    """P = expit(1.5 (n/d - c) d^a) with c = 2, a = 1/2, 40 trials per cell: the fit finds c
    within 0.02 and a within 0.12 (their standard errors are about 0.004 and 0.035)."""
    fold = transition.collapse(N / np.array(DIMS), DIMS, draw(COLLAPSING, 40, seed))
    assert fold.reason == ""
    assert abs(fold.c - 2.0) < 0.02 and abs(fold.a - 0.5) < 0.12
    assert fold.scale == pytest.approx(1.5, rel=0.3)
    assert fold.rate(fold.scaled(fold.c, 100)) == 0.5
    assert fold.rms < 0.1


def test_collapse_intervals_hold_the_truth_in_most_repetitions():
    """10 trials per cell, 20 repetitions: the 95% intervals of c and of a hold 2 and 1/2 in
    most (19 and 19 here)."""
    folds = [transition.collapse(N / np.array(DIMS), DIMS, draw(COLLAPSING, 10, seed)) for seed in range(20)]
    assert sum(f.c_ci[0] <= 2.0 <= f.c_ci[1] for f in folds) >= 15
    assert sum(f.a_ci[0] <= 0.5 <= f.a_ci[1] for f in folds) >= 15


def test_collapse_needs_two_dims_and_a_transition():
    assert "one d" in transition.collapse(RATIOS, [25], np.zeros((len(RATIOS), 1, 2))).reason
    assert "rate 1" in transition.collapse(RATIOS, [25, 50], np.ones((len(RATIOS), 2, 2))).reason


def test_shared_cells_count_once():
    """Two ratios that round to the same n (small d) are one cell: doubling it changes nothing."""
    nvec = np.array([[4, 8], [4, 9], [5, 10], [6, 12]])  # d = 2, 4: rows 0 and 1 share n = 4 at d = 2
    values = draw(expit(3 * (nvec / np.array([2, 4]) - 2.2)), 6, 0)
    values[1, 0] = values[0, 0]  # as the harness writes it: the same cell at both places
    n, outcomes = transition.column(values, nvec, 0)
    assert n.tolist() == [4, 5, 6] and outcomes.shape == (3, 6)
    x, d, k, m = transition._points(nvec / np.array([2, 4]), [2, 4], values)
    assert len(x) == 7 and m.sum() == 7 * 6


def test_wendel_width():
    """The 10-90 width of 1 - Wendel's formula, against a brute-force scan of every n, and its
    scaling: d^-1/2 (the binomial's spread)."""
    d = 12
    n = np.arange(d, 8 * d)
    absent = np.array([1 - patterns.wendel_probability(int(k), d) for k in n])

    def crossing(p):
        i = np.argmax(absent >= p)
        return n[i - 1] + (p - absent[i - 1]) / (absent[i] - absent[i - 1])
    assert transition.wendel_width(d) == pytest.approx((crossing(0.9) - crossing(0.1)) / d)
    law = transition.width_exponent(DIMS, [transition.wendel_width(d) for d in DIMS])
    assert law.a == pytest.approx(0.5, abs=0.01)


def test_collapse_refuses_rates_without_a_transition_on_the_grid():
    """A rate that falls with n has no rising logistic to collapse onto; a rate 0 but for one
    success at the grid's edge puts the fitted centre off the grid: both are refused with
    their reason instead of returning a meaningless c."""
    falling = transition.collapse(N / np.array(DIMS), DIMS, draw(1 - COLLAPSING, 10, 0))
    assert np.isnan(falling.c) and "does not increase" in falling.reason
    edge = np.zeros((len(RATIOS), len(DIMS), 3))
    edge[-1, 0, 0] = 1
    off = transition.collapse(N / np.array(DIMS), DIMS, edge)
    assert np.isnan(off.c) and "outside the grid" in off.reason
