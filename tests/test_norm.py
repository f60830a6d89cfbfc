"""Normalization-layer network (§1, §3e, §4, §5): data, programs, mapping, scripts."""
import json
from pathlib import Path

import numpy as np
import pytest

import utils
from cli_helpers import run_script, usage_error
from planted import cvx, data, networks, normblocks, patterns, recovery
from planted.solution import Solution


def setup(n, d, k, optw=0, trial=0, sigma=0.0, seed=5):
    rng = utils.cell_rng(seed, n, d, trial)
    inst = data.norm_instance(n, d, k, 0, optw, sigma, rng)
    return (inst, *recovery.norm_setup(inst, rng))


@pytest.mark.parametrize("k,optw", [(1, 0), (2, 0), (2, 2), (3, 1)])
def test_labels_and_planted_point(k, optw):
    inst, B, cols, planted = setup(40, 5, k, optw)
    X, W = inst["X"], inst["W"]
    H = np.maximum(X @ W, 0)
    assert np.allclose(inst["y"], (H / np.linalg.norm(H, axis=0)).sum(1))
    assert list(cols) == list(range(k))  # the planted patterns come first
    # w_hat_j is unit and U_{s_j} w_hat_j is the normalized planted output (§3)
    for j, s in enumerate(cols):
        w_hat = planted.W[:, s]
        assert np.isclose(np.linalg.norm(w_hat), 1)
        assert np.allclose(B.U[s] @ w_hat, H[:, j] / np.linalg.norm(H[:, j]))
    assert np.count_nonzero(np.linalg.norm(planted.W, axis=0)) == k
    assert np.allclose(recovery.norm_fitted(B, planted), inst["y"], atol=1e-12)
    net = recovery.to_norm_network(planted, B)  # the planted network itself, test set included
    assert np.allclose(recovery.norm_network_output(net, X), inst["y"], atol=1e-12)
    assert np.allclose(recovery.norm_network_output(net, inst["X_test"]), inst["y_test"], atol=1e-12)


def test_norm_blocks_factors():
    rng = np.random.default_rng(0)
    X = data.make_X(30, 6, 0, rng)
    # rows 12-14 in the span of rows 10, 11: patterns on them are rank deficient, and their
    # Cholesky factors fail or lose orthonormality, so the SVD takes over
    X[12], X[13], X[14] = X[10] + X[11], X[10] - X[11], 2 * X[10] + X[11]
    M = patterns.sample_patterns(X, 40, rng)
    small = np.arange(30)[:, None] < np.array([1, 3, 5])  # ranks 1, 3, 5
    rows = np.arange(30)[:, None]
    deficient = np.column_stack([(rows >= 10) & (rows < 13),  # 3 rows (<= d), rank 2
                                 (rows >= 10) & (rows < 17)])  # 7 rows (> d), rank 4
    M = np.column_stack([M[:, :20], np.zeros(30, bool), small, deficient, M[:, 20:]])  # and rank 0
    B = normblocks.norm_blocks(X, M)
    assert B.M.shape[1] == M.shape[1] - 1  # the rank-0 pattern is dropped
    assert (B.M == np.delete(M, 20, axis=1)).all()  # the others keep their order
    assert list(B.rank[20:25]) == [1, 3, 5, 2, 4]
    assert list(B.rank) == [np.linalg.matrix_rank(B.M[:, i, None] * X) for i in range(B.M.shape[1])]
    for i in range(B.M.shape[1]):
        r = B.rank[i]
        U, T, S = B.U[i][:, :r], B.T[i][:, :r], B.S[i][:r]
        assert np.allclose(U.T @ U, np.eye(r))
        assert np.allclose(U @ S, B.M[:, i, None] * X)  # U_i Sigma_i V_i^T = D_i X
        assert np.allclose((B.M[:, i, None] * X) @ T, U)  # D_i X V_i Sigma_i^-1 = U_i
        assert not B.U[i][:, r:].any()


def test_mapping_of_any_cone_feasible_point():
    """Any point of the cones maps to a normalization-layer network with the same fitted values."""
    rng = np.random.default_rng(4)
    X = data.make_X(40, 4, 0, rng)
    G = rng.standard_normal((4, 30))
    B = normblocks.norm_blocks(X, X @ G >= 0)
    assert B.M.shape[1] == 30 and (B.rank == 4).all()  # so V_i Sigma_i^-1 Sigma_i V_i^T = I
    # block i = Sigma_i V_i^T c_i g_i: its direction c_i g_i has pattern D_i, so it is in the cone
    Z = np.einsum("prd,dp->rp", B.S, G * rng.uniform(0, 2, 30))
    for W, Wp in ((Z, None), (Z * (rng.random(30) < 0.5), Z * (rng.random(30) < 0.5))):
        sol = Solution(W=W, Wp=Wp, w0=None, objective=0.0, status="")
        net = recovery.to_norm_network(sol, B)
        assert np.abs(recovery.norm_network_output(net, X) - recovery.norm_fitted(B, sol)).max() < 1e-12


@pytest.mark.parametrize("form,beta", [("exact", None), ("relaxed", 1e-6), ("relaxed", 1e-2)])
@pytest.mark.parametrize("n,d,k,optw,sigma", [(24, 4, 2, 0, 0.0), (30, 6, 2, 2, 0.2), (16, 8, 3, 1, 0.1)])
def test_mapped_network_reproduces_fitted_values(form, beta, n, d, k, optw, sigma):
    """The cone forms map to a normalization-layer network with the same fitted values (1e-8)."""
    inst, B, cols, planted = setup(n, d, k, optw, sigma=sigma)
    sol = cvx.solve_norm(B, inst["y"], form=form, beta=beta)
    net = recovery.to_norm_network(sol, B)
    assert np.abs(recovery.norm_network_output(net, inst["X"]) - recovery.norm_fitted(B, sol)).max() < 1e-8
    # and the network's weight-decay cost sum a^2/2 + gamma^2/2 is the convex group norm
    cost = (net["a"] ** 2 + net["gamma"] ** 2).sum() / 2
    group = np.linalg.norm(sol.W, axis=0).sum() + np.linalg.norm(sol.Wp, axis=0).sum()
    assert np.isclose(cost, group, rtol=1e-6)


@pytest.mark.parametrize("trial", range(3))
def test_relaxed_at_most_exact_and_recovery_at_large_n(trial):
    inst, B, cols, planted = setup(60, 3, 2, 2, trial)
    relaxed = cvx.solve_norm(B, inst["y"])
    exact = cvx.solve_norm(B, inst["y"], form="exact")
    assert relaxed.objective <= exact.objective + 1e-7
    assert np.allclose(recovery.norm_fitted(B, relaxed), inst["y"], atol=1e-7)
    assert recovery.blocks_recovered(relaxed, planted) and recovery.blocks_recovered(exact, planted)
    assert recovery.planted_distance(relaxed, planted, cols) < 1e-4
    # the returned multiplier is the dual certificate max lam^T y s.t. ||U_i^T lam|| <= 1
    lam = relaxed.lam
    assert np.linalg.norm(np.einsum("pnr,n->pr", B.U, lam), axis=1).max() <= 1 + 1e-6
    assert np.isclose(lam @ inst["y"], relaxed.objective, rtol=1e-6)


def test_no_recovery_when_n_equals_d():
    inst, B, cols, planted = setup(8, 8, 2, 0)
    sol = cvx.solve_norm(B, inst["y"])
    assert not recovery.blocks_recovered(sol, planted)
    assert sol.objective < 2 - 1e-3  # cheaper than the planted point


def test_optw_options():
    rng = np.random.default_rng(1)
    W = data.planted_relu(6, 2, 2, rng)
    assert np.allclose(W[:, 1], -W[:, 0]) and np.allclose(np.linalg.norm(W, axis=0), 1)
    assert np.array_equal(data.planted_relu(6, 3, 1, rng), np.eye(6)[:, :3])
    assert np.allclose(np.linalg.norm(data.planted_relu(6, 4, 0, rng), axis=0), 1)
    with pytest.raises(ValueError):
        data.planted_relu(6, 3, 2, rng)
    with pytest.raises(ValueError):
        data.planted_relu(2, 3, 1, rng)


def test_labels_are_redrawn_until_every_neuron_is_active():
    # n = 2 and e_1, e_2: a neuron is inactive on a draw with probability 1/4 (X and X_test)
    redraws = []
    for trial in range(30):
        inst = data.norm_instance(2, 3, 2, 0, 1, 0.0, utils.cell_rng(0, 2, 3, trial))
        assert data.all_active(inst["X"], inst["W"]) and data.all_active(inst["X_test"], inst["W"])
        assert np.isfinite(inst["y"]).all() and np.isfinite(inst["y_test"]).all()
        redraws.append(inst["redraws"])
    assert max(redraws) > 0
    # (u, -u) on one sample: one of the two is never active, whatever the draw
    with pytest.raises(data.NeverActive):
        data.norm_instance(1, 3, 2, 0, 2, 0.0, np.random.default_rng(0), )
    assert data.relu_undefined(1, 1, 2, 2, n_ge_d=True) == "n < 2"


def test_norm_net_forward():
    import torch
    networks.seed_torch(np.random.default_rng(0))
    net = networks.NormNet(4, 7)
    X = torch.randn(20, 4)
    H = torch.relu(X @ net.hidden.weight.T)
    expected = (H / H.norm(dim=0)) @ (net.out.weight.ravel() * net.gamma)
    assert torch.allclose(net(X), expected, atol=1e-6)
    net.hidden.weight.data[0] = -1e3 * X.abs().sum(0)  # fully inactive neuron: 0, not NaN
    assert torch.isfinite(net(X.abs())).all()


@pytest.mark.parametrize("script,metrics,extra", [
    ("rec_rate_norm.py", ["rec"], ["--form", "exact"]),
    ("minnrm_norm.py", ["dis_abs", "dis_test", "unique"], ["--sigma", "0.1"]),
    ("cvx_train_norm.py", ["dis_abs", "dis_test"], ["--beta", "0.001"]),
    ("ncvx_train_norm.py", ["dis_test", "loss", "loss_curve"], ["--epochs", "5"]),
])
def test_scripts_on_a_tiny_grid(tmp_path, capsys, script, metrics, extra):
    main = run_script(capsys, script, "--n", "10", "--d", "10", "--step", "5", "--sample", "2",
                      "--neu", "2", "--optw", "2", *extra, "--save_folder", str(tmp_path))
    assert Path(main).name.startswith(script[:-3]) and "_neu2" in main
    meta = json.loads(Path(main).with_suffix(".json").read_text())
    assert list(meta["files"]) == metrics and meta["failed_cells"] == 0
    values = np.load(tmp_path / meta["files"][metrics[0]])
    assert values.shape[:3] == (2, 2, 2)
    if script.startswith("ncvx"):
        assert np.isfinite(values).all()  # the network is defined for n < d too
    else:  # n = 5 < d = 10 is undefined for the normalization programs: NaN and a status
        assert np.isnan(values[0, 1]).all() and np.isfinite(values[[0, 1, 1], [0, 0, 1]]).all()
        assert meta["status"][0][1] == ["undefined: n < d"] * 2


def test_usage_errors(capsys):
    assert "--neu 2" in usage_error(capsys, "rec_rate_norm.py", "--optw", "2", "--neu", "3")
    assert "--neu" in usage_error(capsys, "minnrm_norm.py", "--neu", "0")
