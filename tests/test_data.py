"""Planted data (docs/reference.md §1) and arrangement patterns (§2)."""
import numpy as np
import pytest

import utils
from planted import data, patterns


@pytest.mark.parametrize("n,d", [(30, 10), (10, 30), (20, 20)])
@pytest.mark.parametrize("optx", [0, 1, 2, 3])
def test_make_X_shapes_and_whitening(n, d, optx):
    X = data.make_X(n, d, optx, np.random.default_rng(1))
    assert X.shape == (n, d)
    if optx in (2, 3):
        gram = X.T @ X if n >= d else X @ X.T
        assert np.allclose(gram, np.eye(min(n, d)), atol=1e-10)


def test_cubic_is_cube_of_the_gaussian_draw():
    n, d = 40, 7
    G = np.random.default_rng(3).standard_normal((n, d))
    assert np.allclose(data.make_X(n, d, 0, np.random.default_rng(3)), G / np.sqrt(n))
    assert np.allclose(data.make_X(n, d, 1, np.random.default_rng(3)), G**3 / np.sqrt(15 * n))
    U = np.linalg.svd(G**3, full_matrices=False)[0]
    X3 = data.make_X(n, d, 3, np.random.default_rng(3))
    assert np.allclose(np.abs(X3.T @ U), np.eye(d), atol=1e-8)  # same column space, whitened


def test_cubic_data_is_heavy_tailed():
    X = data.make_X(2000, 5, 1, np.random.default_rng(0)).ravel()
    kurtosis = np.mean(X**4) / np.mean(X**2) ** 2
    assert kurtosis > 20  # Gaussian: 3; cube of a Gaussian: 10395/225 = 46.2


@pytest.mark.parametrize("n,d", [(50, 10), (10, 50)])
def test_optw1_is_the_hardest_direction(n, d):
    rng = np.random.default_rng(5)
    X = data.make_X(n, d, 0, rng)
    w = data.planted_linear(X, 1, rng)
    s = np.linalg.svd(X, compute_uv=False)
    assert np.isclose(np.linalg.norm(w), 1)
    assert np.isclose(np.linalg.norm(X @ w), s.min())


def test_skip_instance_labels_and_noise():
    n, d = 400, 20
    clean = data.skip_instance(n, d, 0, 0, 0.0, utils.cell_rng(0, n, d, 0))
    assert np.isclose(np.linalg.norm(clean["w"]), 1)
    assert np.allclose(clean["y"], clean["X"] @ clean["w"])
    assert np.allclose(clean["y_test"], clean["X_test"] @ clean["w"])
    assert not np.allclose(clean["X_test"], clean["X"])
    noisy = data.skip_instance(n, d, 0, 0, 0.3, utils.cell_rng(0, n, d, 0))
    z = noisy["y"] - noisy["X"] @ noisy["w"]
    assert 0.25 < np.linalg.norm(z) < 0.35  # ||z|| about sigma


def test_patterns_distinct_nonzero_and_sized():
    rng = np.random.default_rng(0)
    X = data.make_X(60, 5, 0, rng)
    M = patterns.skip_patterns(X, rng)
    assert M.shape[0] == 60 and 1 <= M.shape[1] <= 60 + 1
    assert np.unique(M, axis=1).shape[1] == M.shape[1]
    assert M.any(0).all()


def test_planted_patterns_come_first():
    rng = np.random.default_rng(2)
    X = data.make_X(30, 4, 0, rng)
    U = rng.standard_normal((4, 2))
    M = patterns.sample_patterns(X, 50, rng, first=U.T)
    assert (M[:, 0] == (X @ U[:, 0] >= 0)).all() and (M[:, 1] == (X @ U[:, 1] >= 0)).all()


def test_all_ones_lp_exact_cases():
    X = np.random.default_rng(0).standard_normal((30, 4))
    assert not patterns.all_ones_feasible(np.vstack([X, -X]))  # X u >= 0 and -X u >= 0: only 0
    X[:, 0] = np.abs(X[:, 0])
    assert patterns.all_ones_feasible(X)  # u = e_1


def test_stiemke_alternative_agrees_with_the_lp():
    rng = np.random.default_rng(11)
    for n, d in [(6, 3), (8, 4), (12, 6), (20, 10), (30, 10)] * 4:
        X = rng.standard_normal((n, d))
        assert patterns.stiemke_infeasible(X) == (not patterns.all_ones_feasible(X))


@pytest.mark.parametrize("n,d", [(4, 3), (6, 3), (8, 3), (12, 4)])
def test_all_ones_lp_matches_wendel(n, d):
    rng = np.random.default_rng(n * 100 + d)
    trials = 400
    hits = sum(patterns.all_ones_feasible(rng.standard_normal((n, d))) for _ in range(trials))
    p = patterns.wendel_probability(n, d)
    assert abs(hits / trials - p) < 4 * np.sqrt(p * (1 - p) / trials) + 0.01


def test_wendel_values():
    assert patterns.wendel_probability(6, 3) == 0.5  # exactly 1/2 at n = 2d
    assert patterns.wendel_probability(3, 5) == 1.0
    assert patterns.wendel_probability(400, 100) < 1e-20
