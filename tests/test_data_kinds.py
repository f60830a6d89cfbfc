"""The data kinds optx 4..8 (docs/reference.md §1) and Wendel's formula against Monte Carlo (§2).

`python tests/test_data_kinds.py` prints the departures from Wendel's formula quoted in
docs/reference.md §1 and the README (1000 draws per point, a few minutes).
"""
import sys

import numpy as np
import pytest
from scipy import stats

from cli_helpers import run_script, usage_error
from planted import data, patterns
from utils import experiment_parser

NEW = (4, 5, 6, 7, 8)
BIG = (4000, 100)  # 4e5 entries: standard errors of about 0.002 on the moments below


def draw(optx, n, d, seed=0):
    return data.make_X(n, d, optx, np.random.default_rng(seed))


@pytest.mark.parametrize("optx", NEW)
@pytest.mark.parametrize("n,d", [(30, 10), (10, 30), (1, 1)])
def test_shapes_and_dtype(optx, n, d):
    X = draw(optx, n, d)
    assert X.shape == (n, d) and X.dtype == np.float64 and np.isfinite(X).all()


@pytest.mark.parametrize("optx", range(len(data.OPTX)))
def test_determinism_by_seed(optx):
    assert np.array_equal(draw(optx, 20, 7, seed=3), draw(optx, 20, 7, seed=3))
    assert not np.array_equal(draw(optx, 20, 7, seed=3), draw(optx, 20, 7, seed=4))


@pytest.mark.parametrize("optx", (0, 4, 5, 7, 8))
def test_second_moment_is_the_gaussian_kinds(optx):
    """E ||X||_F^2 / d = 1 as for optx 0 (mean shift: 1 + ||mu||^2 / d). Entries' x^2 have
    variance at most 29 (sparse: E B g^4 / 0.01 - 1), so 4e5 of them give se <= 0.009."""
    n, d = BIG
    X = draw(optx, n, d)
    target = 1 + 1 / d if optx == 8 else 1
    assert abs(np.sum(X**2) / d - target) < 0.05


def test_student_t_scale():
    """t(3) has no fourth moment, so the mean of x^2 converges slowly (deviations above 0.15 in
    about 1% of seeds at this size); its median |x| pins the 1/sqrt(3) exactly."""
    n, d = BIG
    X = draw(6, n, d) * np.sqrt(n)
    assert abs(np.median(np.abs(X)) - stats.t.ppf(0.75, data.T_DOF) / np.sqrt(3)) < 0.01
    assert abs(np.mean(X**2) - 1) < 0.3


@pytest.mark.parametrize("optx", NEW)
def test_sign_symmetry_where_claimed(optx):
    """Sign-symmetric kinds: entries of mean 0, as many positive as negative. The mean shift:
    mean 1/sqrt(d) per entry (se 1/sqrt(4e5) = 0.0016)."""
    n, d = BIG
    X = draw(optx, n, d) * np.sqrt(n)
    mean, positive = X.mean(), (X > 0).sum() / (X != 0).sum()
    if optx in data.SIGN_SYMMETRIC:
        assert abs(mean) < 0.01 and abs(positive - 0.5) < 0.005
    else:
        assert abs(mean - 1 / np.sqrt(d)) < 0.01
        assert abs(positive - stats.norm.cdf(1 / np.sqrt(d))) < 0.005 and positive > 0.53


def test_mean_shift_has_unit_norm_mean():
    n, d = 20000, 10
    mu = draw(8, n, d).mean(0) * np.sqrt(n)
    assert np.allclose(mu, 1 / np.sqrt(d), atol=0.03)  # se 1/sqrt(n) = 0.007
    assert abs(np.linalg.norm(mu) - 1) < 0.03


def test_rademacher_entries():
    n, d = 50, 20
    X = draw(4, n, d)
    assert set(np.unique(X * np.sqrt(n))) == {-1.0, 1.0}


def test_sparse_density():
    n, d = BIG
    X = draw(5, n, d)
    assert abs(np.mean(X != 0) - data.DENSITY) < 0.003  # se sqrt(0.09 / 4e5) = 0.0005


def test_correlated_is_the_gaussian_draw_times_the_cholesky_factor():
    n, d = 30, 6
    i = np.arange(d)
    sigma = data.RHO ** np.abs(i[:, None] - i[None, :])
    L = np.linalg.cholesky(sigma)
    assert np.allclose(draw(7, n, d), draw(0, n, d) @ L.T)
    X = draw(7, 4000, d)
    assert np.allclose(X.T @ X, sigma, atol=0.08)  # entries of X^T X: se <= sqrt(1.25 / 4000) = 0.018


def test_existing_kinds_unchanged():
    G = np.random.default_rng(9).standard_normal((12, 5))
    assert np.array_equal(draw(0, 12, 5, seed=9), G / np.sqrt(12))
    assert np.array_equal(draw(1, 12, 5, seed=9), G**3 / np.sqrt(15 * 12))


def test_optx_flag_lists_every_kind(tmp_path, monkeypatch, capsys):
    text = experiment_parser("x").format_help()
    assert all(f"{k} {name}" in " ".join(text.split()) for k, name in data.OPTX.items())
    monkeypatch.chdir(tmp_path)
    err = usage_error(capsys, "rec_rate_skip.py", "--optx", str(len(data.OPTX)), "--save_folder", "out")
    assert "--optx" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("optx", NEW)
def test_tiny_sweep(optx, tmp_path, capsys):
    main = run_script(capsys, "rec_rate_skip.py", "--n", "10", "--d", "5", "--step", "5", "--sample", "2",
                      "--optx", str(optx), "--save_folder", str(tmp_path))
    rec = np.load(main)
    assert f"_X{optx}_" in main and rec.shape == (2, 1, 2) and np.isin(rec, (0, 1)).all()


# ----- Wendel's formula against Monte Carlo ----------------------------------------------------


def all_ones_rate(optx, n, d, draws, decide=patterns.all_ones_feasible):
    """Fraction of `draws` X of kind optx for which D = I is a ReLU pattern, and the binomial
    standard error of Wendel's value there. Seeded by (n, d) alone, so that every kind sees the
    same Gaussian draws where it starts from one."""
    rng = np.random.default_rng((n, d))
    p = patterns.wendel_probability(n, d)
    hits = sum(decide(data.make_X(n, d, optx, rng)) for _ in range(draws))
    return hits / draws, p, np.sqrt(p * (1 - p) / draws)


def lp_feasible(X):
    """The LP of §2 itself: on the discrete kinds the cheap certificates rarely settle the
    question and all_ones_feasible spends its 1000 steps before the same LP
    (test_scale checks that both agree on every kind)."""
    return patterns._all_ones_lp(X).feasible


@pytest.mark.parametrize("optx", (0, 6, 7))
@pytest.mark.parametrize("n", (8, 10, 12))
def test_wendel_holds_for_symmetric_kinds_in_general_position(optx, n):
    rate, p, se = all_ones_rate(optx, n, 5, 400)
    assert abs(rate - p) < 4 * se, (rate, p)


def test_correlated_kind_has_the_gaussian_patterns_draw_by_draw():
    """X L^T u >= 0 iff X v >= 0 with v = L^T u: the same draws decide alike."""
    rng0, rng7 = np.random.default_rng(1), np.random.default_rng(1)
    for _ in range(50):
        assert patterns.all_ones_feasible(data.make_X(10, 5, 0, rng0)) == \
            patterns.all_ones_feasible(data.make_X(10, 5, 7, rng7))


@pytest.mark.parametrize("optx", (4, 5, 8))
def test_other_kinds_lie_in_a_half_space_more_often(optx):
    """Ties and repeated rows (Rademacher), zero rows and coordinate structure (sparse) and a
    common mean (shifted) all make D = I more likely than Wendel's 1/2 at n = 2d, d = 5."""
    rate, p, se = all_ones_rate(optx, 10, 5, 150, decide=lp_feasible)
    assert rate > p + 4 * se, (rate, p)


POINTS = ((5, (8, 10, 12)), (20, (36, 40, 44)))

if __name__ == "__main__":
    draws = int(sys.argv[1]) if sys.argv[1:] else 1000
    print(f"P(D = I is a pattern), {draws} draws per point; Wendel's value in brackets")
    for d, ns in POINTS:
        for optx in (0, 4, 5, 6, 7, 8):
            cells = [all_ones_rate(optx, n, d, draws, decide=lp_feasible) for n in ns]
            print(f"d={d:<3} optx {optx} {data.OPTX[optx]:<26}"
                  + "  ".join(f"n={n}: {r:.3f} ({p:.3f})" for n, (r, p, _) in zip(ns, cells)))
