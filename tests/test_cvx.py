"""The CVXPY reference programs of the ReLU + skip network (docs/reference.md §3a-c), Clarabel."""
import dataclasses

import numpy as np
import pytest

import utils
from planted import cvx, data, patterns, recovery
from planted.solution import SolveFailed
from planted.solver import relu_certificate


def instance(n, d, trial=0, sigma=0.0, optx=0):
    rng = utils.cell_rng(7, n, d, trial)
    inst = data.skip_instance(n, d, optx, 0, sigma, rng)
    return inst, patterns.skip_patterns(inst["X"], rng)


@pytest.mark.parametrize("trial", range(3))
def test_relaxed_recovers_at_n_8d(trial):
    inst, M = instance(48, 6, trial)
    sol = cvx.solve_relu(inst["X"], M, inst["y"])
    assert recovery.skip_recovered(sol, inst["w"])


@pytest.mark.parametrize("trial", range(3))
def test_relaxed_fails_at_n_equal_d(trial):
    inst, M = instance(10, 10, trial)
    assert patterns.has_all_ones(M)  # n <= d: D = I is always a pattern (Wendel)
    sol = cvx.solve_relu(inst["X"], M, inst["y"])
    assert not recovery.skip_recovered(sol, inst["w"])


@pytest.mark.parametrize("n,d,trial", [(20, 10, 0), (24, 10, 1), (16, 8, 2), (30, 10, 3)])
def test_exact_optimum_at_least_relaxed(n, d, trial):
    inst, M = instance(n, d, trial)
    relaxed = cvx.solve_relu(inst["X"], M, inst["y"], form="relaxed")
    exact = cvx.solve_relu(inst["X"], M, inst["y"], form="exact")
    assert exact.objective >= relaxed.objective - 1e-7
    # both are feasible: their fitted values equal y
    for sol in (relaxed, exact):
        assert np.allclose(recovery.fitted(inst["X"], M, sol), inst["y"], atol=1e-7)
    # and the planted neuron is feasible for both, so neither exceeds its cost ||w|| = 1
    assert exact.objective <= 1 + 1e-6


def test_training_approaches_min_norm_as_beta_vanishes():
    inst, M = instance(20, 8, 0, sigma=0.1)
    exact = cvx.solve_relu(inst["X"], M, inst["y"], form="exact")
    gaps = []
    for beta in (1e-2, 1e-3, 1e-4, 1e-5):
        sol = cvx.solve_relu(inst["X"], M, inst["y"], beta=beta)
        fit = recovery.fitted(inst["X"], M, sol)
        cost = (np.linalg.norm(sol.w0) + np.linalg.norm(sol.W, axis=0).sum()
                + np.linalg.norm(sol.Wp, axis=0).sum())
        gaps.append(abs(cost - exact.objective) + np.linalg.norm(fit - inst["y"]))
    assert all(b < a for a, b in zip(gaps, gaps[1:]))
    assert gaps[-1] < 1e-3 * exact.objective


def test_planted_dual_certificate_verifies_when_recovered():
    recovered = 0
    for n, d, trial in [(40, 5, 0), (40, 5, 1), (30, 10, 0), (36, 12, 1), (50, 10, 2), (24, 12, 0)]:
        inst, M = instance(n, d, trial)
        sol = cvx.solve_relu(inst["X"], M, inst["y"])
        cert_sol = relu_certificate(inst["X"], M, inst["y"], sol)
        assert cert_sol["residual"] < 1e-7 and cert_sol["gap"] < 1e-6 and cert_sol["dual_violation"] < 1e-6
        if recovery.skip_recovered(sol, inst["w"]):
            recovered += 1
            planted = recovery.planted_skip_solution(inst["w"], M.shape[1], d)
            cert = relu_certificate(inst["X"], M, inst["y"], dataclasses.replace(planted, lam=sol.lam))
            assert cert["residual"] < 1e-12 and cert["gap"] < 1e-6 and cert["dual_violation"] < 1e-6
            # lam^T y = 1 with ||X^T lam|| <= 1 forces X^T lam = w/||w|| (to sqrt of the gap)
            assert np.allclose(inst["X"].T @ sol.lam, inst["w"], atol=1e-4)
    assert recovered >= 3


def test_certificate_rejects_a_suboptimal_point():
    inst, M = instance(40, 5, 0)
    sol = cvx.solve_relu(inst["X"], M, inst["y"])
    worse = dataclasses.replace(sol, W=sol.W.copy(), w0=sol.w0 * 0.5)
    worse.W[:, 0] += np.linalg.lstsq(M[:, [0]] * inst["X"], inst["X"] @ sol.w0 * 0.5, rcond=None)[0]
    cert = relu_certificate(inst["X"], M, inst["y"], worse)
    assert cert["gap"] > 1e-3 or cert["residual"] > 1e-3


@pytest.mark.parametrize("beta", [None, 1e-3])
def test_network_reproduces_cone_solution(beta):
    inst, M = instance(16, 8, 0, sigma=0.05)
    sol = cvx.solve_relu(inst["X"], M, inst["y"], form="exact", beta=beta)
    net = recovery.to_network(sol)
    assert np.allclose(recovery.network_output(net, inst["X"]), recovery.fitted(inst["X"], M, sol), atol=1e-6)


@pytest.mark.parametrize("solver", ["SCS"])
def test_other_cvxpy_solver_agrees(solver):
    inst, M = instance(20, 5, 0)
    ref = cvx.solve_relu(inst["X"], M, inst["y"])
    other = cvx.solve_relu(inst["X"], M, inst["y"], solver=solver)
    assert abs(other.objective - ref.objective) < 1e-3


def test_failed_solve_is_an_exception_the_sweep_records():
    X = np.array([[1.0], [0.0], [0.0]])  # every block lies along e_1: y = e_2 is out of reach
    M = np.array([[True], [True], [False]])
    with pytest.raises(SolveFailed, match="infeasible"):
        cvx.solve_relu(X, M, np.array([0.0, 1.0, 0.0]))
