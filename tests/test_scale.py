"""Past the paper's grid: the cheap all-ones certificates, implicit normalization blocks, and
bench_solvers.py's input checks (docs/solver.md, "Scale")."""
import numpy as np
import pytest

from planted import data, patterns


def _check(decision, X):
    """The certificate proves what it claims, on X itself."""
    if decision.how == "direction":
        Xu = X @ decision.vector
        assert Xu.min() >= 0 and Xu.max() > 0
    elif decision.how == "stiemke":
        lam = decision.vector
        assert lam.min() > 0
        smin = np.linalg.svd(X, compute_uv=False)
        smin = smin[smin > smin.max(initial=0) * max(X.shape) * 1e-15]
        assert len(smin) == 0 or np.linalg.norm(X.T @ lam) < smin.min() * lam.min()


@pytest.mark.parametrize("optx", data.OPTX)
def test_cheap_all_ones_certificates_agree_with_the_lp(optx):
    rng = np.random.default_rng(100 + optx)
    hows = set()
    for _ in range(60):
        n = int(rng.integers(4, 90))
        d = int(rng.integers(2, 40))
        X = data.make_X(n, d, optx, rng)
        decision = patterns.all_ones_decision(X)
        assert decision.feasible == patterns._all_ones_lp(X).feasible, (n, d)
        _check(decision, X)
        hows.add(decision.how)
    assert {"direction", "stiemke"} <= hows  # both certificates occur (n above and below 2d)


def _degenerate(rng):
    X0 = rng.standard_normal((30, 6))
    return {
        "rank 3, n < d": rng.standard_normal((20, 3)) @ rng.standard_normal((3, 8)),
        "rank 3, n > 2 rank": rng.standard_normal((40, 3)) @ rng.standard_normal((3, 8)),
        "rank 3, n < 2 rank": rng.standard_normal((5, 3)) @ rng.standard_normal((3, 8)),
        "n < d": rng.standard_normal((5, 9)),
        "repeated rows": np.vstack([X0, X0[:10]]),
        "rows X, -X": np.vstack([X0, -X0]),
        "a zero row": np.vstack([X0[:8], np.zeros((1, 6))]),
        "a zero column": np.column_stack([X0, np.zeros(30)]),
        "a row and its negative": np.vstack([rng.standard_normal((5, 6)), X0[:1], -X0[:1]]),
        "a positive column": np.column_stack([np.abs(X0[:, 0]), X0[:, 1:]]),
        "X = 0": np.zeros((5, 3)),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_ones_certificates_on_degenerate_X(seed):
    for name, X in _degenerate(np.random.default_rng(seed)).items():
        decision = patterns.all_ones_decision(X)
        assert decision.feasible == patterns._all_ones_lp(X).feasible, name
        _check(decision, X)


def test_semi_strict_cases_go_to_the_lp():
    # X u >= 0 only with zeros (a row and its negative): neither strict certificate exists
    rng = np.random.default_rng(4)
    r = rng.standard_normal((1, 6))
    X = np.vstack([rng.standard_normal((5, 6)), r, -r])
    decision = patterns.all_ones_decision(X)
    assert decision.how == "lp" and decision.feasible
    Xu = X @ decision.vector
    assert Xu.min() >= -1e-9 and Xu.max() > 0


def test_decided_patterns_keep_the_decision():
    rng = np.random.default_rng(5)
    for n, d in [(40, 20), (60, 20), (12, 8), (100, 10)]:
        X = data.make_X(n, d, 0, rng)
        M, decision = patterns.decided_skip_patterns(X, np.random.default_rng(n))
        assert np.array_equal(M, patterns.skip_patterns(X, np.random.default_rng(n)))
        assert patterns.has_all_ones(M) == decision.feasible
        if decision.how == "sampled":
            assert (X @ decision.vector >= 0).all()
