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


def test_zero_rows_leave_the_decision_to_the_cheap_certificates():
    # a zero row rules out z > 0 in range(X) but constrains nothing: both verdicts are still
    # found without the LP, and their certificates hold on the whole X (sparse data, optx 5)
    rng = np.random.default_rng(5)
    for n, feasible in ((8, True), (60, False)):
        X = np.vstack([rng.standard_normal((n, 6)), np.zeros((3, 6))])[rng.permutation(n + 3)]
        decision = patterns.all_ones_decision(X)
        assert decision.feasible == feasible == patterns._all_ones_lp(X).feasible
        assert decision.how == ("direction" if feasible else "stiemke") and decision.vector.shape == (
            (6,) if feasible else (n + 3,))
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


def _both_ways(monkeypatch, X, M):
    """The NormBlocks of (X, M) held dense and held as factors."""
    from planted import normblocks
    dense = normblocks.norm_blocks(X, M)
    monkeypatch.setattr(normblocks, "DENSE_MEMORY", 0)
    implicit = normblocks.norm_blocks(X, M)
    assert dense.dense and not implicit.dense
    return dense, implicit


def test_implicit_normalization_blocks_give_the_dense_products(monkeypatch):
    from planted import normblocks
    rng = np.random.default_rng(0)
    X = data.make_X(30, 6, 0, rng)
    X[12], X[13] = X[10] + X[11], X[10] - X[11]  # rank-deficient patterns: SVD-factored
    rows = np.arange(30)[:, None]
    M = np.column_stack([patterns.sample_patterns(X, 40, rng), rows < 4,  # a wide pattern
                         (rows >= 10) & (rows < 14), (rows >= 10) & (rows < 18)])
    dense, implicit = _both_ways(monkeypatch, X, M)
    assert set(implicit.kind) == {normblocks.TALL, normblocks.WIDE, normblocks.EXPLICIT}
    assert np.array_equal(dense.M, implicit.M) and np.array_equal(dense.rank, implicit.rank)
    assert np.array_equal(dense.T, implicit.T)
    assert np.allclose(implicit.U, dense.U, rtol=0, atol=1e-12)
    assert np.allclose(implicit.S, dense.S, rtol=0, atol=1e-10)
    lam = rng.standard_normal(30)
    Z = rng.standard_normal((dense.P, dense.r))
    assert np.allclose(implicit.adjoint(lam), dense.adjoint(lam), rtol=0, atol=1e-12)
    assert np.allclose(implicit.apply(Z), dense.apply(Z), rtol=0, atol=1e-12)
    idx = np.array([0, 3, dense.P - 1])
    assert np.allclose(implicit.apply(Z[idx], idx), dense.apply(Z[idx], idx), rtol=0, atol=1e-12)
    assert np.allclose(normblocks.norm_cone_matrices(implicit), normblocks.norm_cone_matrices(dense))


@pytest.mark.parametrize("form,beta", [("relaxed", None), ("exact", None), ("exact", 1e-3)])
def test_implicit_normalization_blocks_solve_the_same_programs(monkeypatch, form, beta):
    from planted import recovery, solve
    for n, d, seed in [(40, 8, 1), (60, 10, 2)]:
        rng = np.random.default_rng(seed)
        inst = data.norm_instance(n, d, 2, 0, 0, 0.0, rng)
        M = patterns.relu_patterns(inst["X"], inst["W"], rng)
        with monkeypatch.context() as m:
            dense, implicit = _both_ways(m, inst["X"], M)
        sols = [solve.solve_norm(B, inst["y"], form=form, beta=beta) for B in (dense, implicit)]
        assert abs(sols[0].objective - sols[1].objective) <= 1e-8 * sols[0].objective
        cols = patterns.planted_columns(dense.M, inst["X"], inst["W"])
        recs = [recovery.blocks_recovered(s, recovery.planted_norm_solution(B, inst["W"], cols))
                for s, B in zip(sols, (dense, implicit))]
        assert recs[0] == recs[1]
        assert np.allclose(recovery.norm_fitted(implicit, sols[1]), recovery.norm_fitted(dense, sols[1]), atol=1e-12)


@pytest.mark.parametrize("flags", [["--sizes", "abc"], ["--sizes", "10x"], ["--sizes", "3.5x2"],
                                   ["--sizes", "10x-5"], ["--sizes", "0x10"], ["--sizes", "10x10,x"],
                                   ["--seeds", "0"], ["--seeds", "-1"]])
def test_bench_rejects_bad_sizes_and_seeds(capsys, flags):
    import bench_solvers
    with pytest.raises(SystemExit) as e:
        bench_solvers.main(flags)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err and "Traceback" not in err
    assert flags[0] in err


def test_bench_scale_targets_line():
    import bench_solvers
    row = dict(n=2000, d=500, setup=1.0, patterns=0.5, solve=2.0, peak=1.0)
    assert bench_solvers.targets("relaxed-skip", [row]).endswith(": met")
    assert "NOT met" in bench_solvers.targets("exact-skip", [dict(row, patterns=1.5)])  # 50% of the cell
    assert "not measured" in bench_solvers.targets("relaxed-skip", [dict(row, n=400, d=100)])
    norm = [dict(row, n=1200, d=300, peak=2.5), dict(row, n=1500, d=500, peak=3.0)]
    line = bench_solvers.targets("relaxed-norm", norm)
    assert line.count("NOT met") == 1 and line.count(": met") == 1
    assert abs(bench_solvers.growth([dict(n=100, t=1.0), dict(n=200, t=8.0)], "t") - 3) < 1e-12
    seeds = [dict(row, solve=2.0), dict(row, solve=9.0), dict(row, solve=3.0)]  # median 3 s: met
    assert bench_solvers.targets("relaxed-skip", seeds).endswith(": met")
