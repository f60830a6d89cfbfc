"""Plain ReLU network learning planted ReLU neurons (§1, §3d, §4, §5)."""
import json
from pathlib import Path

import numpy as np
import pytest

import utils
from cli_helpers import run_script, usage_error
from planted import cvx, data, networks, patterns, recovery
from planted.solution import Solution


def setup(n, d, k, optw=0, trial=0, sigma=0.0, seed=6):
    rng = utils.cell_rng(seed, n, d, trial)
    inst = data.plain_instance(n, d, k, 0, optw, sigma, rng)
    return (inst, *recovery.plain_setup(inst, rng))


@pytest.mark.parametrize("k,optw", [(1, 0), (2, 2), (3, 1)])
def test_labels_and_planted_point(k, optw):
    inst, M, cols, planted = setup(30, 4, k, optw)
    X, W = inst["X"], inst["W"]
    assert np.allclose(inst["y"], np.maximum(X @ W, 0).sum(1))
    assert np.allclose(inst["y_test"], np.maximum(inst["X_test"] @ W, 0).sum(1))
    assert list(cols) == list(range(k))
    assert np.array_equal(planted.W[:, :k], W) and not planted.W[:, k:].any()
    assert np.allclose(recovery.fitted(X, M, planted), inst["y"], atol=1e-12)
    net = recovery.to_network(planted)
    assert np.allclose(recovery.network_output(net, inst["X_test"]), inst["y_test"], atol=1e-12)


def test_shared_pattern_shares_a_block():
    rng = np.random.default_rng(2)
    X = data.make_X(20, 3, 0, rng)
    w = data.planted_relu(3, 1, 0, rng)[:, 0]
    W = np.column_stack([w, w + 1e-9 * rng.standard_normal(3)])  # same pattern, almost surely
    M = patterns.relu_patterns(X, W, rng)
    cols = patterns.planted_columns(M, X, W)
    assert cols[0] == cols[1] == 0
    planted = recovery.planted_plain_solution(M, W, cols)
    assert np.allclose(planted.W[:, 0], W.sum(1))
    assert np.allclose(recovery.fitted(X, M, planted), np.maximum(X @ W, 0).sum(1))
    assert list(patterns.planted_columns(M[:, 1:], X, W)) == [-1, -1]  # absent pattern


def test_mapping_of_any_cone_feasible_point():
    """Any point of the cones maps to a plain ReLU network with the same fitted values."""
    rng = np.random.default_rng(4)
    X = data.make_X(30, 5, 0, rng)
    G, Gp = rng.standard_normal((5, 40)), rng.standard_normal((5, 40))
    M = X @ G >= 0  # block i lies in its own cone: w_i = c_i g_i has pattern D_i
    sol = Solution(W=G * rng.uniform(0, 2, 40), Wp=None, w0=None, objective=0.0, status="")
    assert np.abs(recovery.network_output(recovery.to_network(sol), X) - recovery.fitted(X, M, sol)).max() < 1e-12
    # the exact form's w_i' (output weight -sqrt||w_i'||) need their own cone: use Gp's patterns
    Mp = X @ Gp >= 0
    both = Solution(W=np.concatenate([sol.W, np.zeros((5, 40))], 1),
                    Wp=np.concatenate([np.zeros((5, 40)), Gp], 1), w0=None, objective=0.0, status="")
    f = recovery.fitted(X, np.concatenate([M, Mp], 1), both)
    assert np.abs(recovery.network_output(recovery.to_network(both), X) - f).max() < 1e-12


@pytest.mark.parametrize("form,beta", [("exact", None), ("relaxed", 1e-6), ("relaxed", 1e-2)])
@pytest.mark.parametrize("n,d,k,optw,sigma", [(24, 4, 2, 0, 0.0), (20, 6, 2, 2, 0.2), (12, 8, 3, 1, 0.1)])
def test_mapped_network_reproduces_fitted_values(form, beta, n, d, k, optw, sigma):
    """Solutions of the cone forms map to plain ReLU networks with the same fitted values.

    Up to the solver's feasibility: Clarabel meets each cone entry to ~1e-9, and ~100
    near-zero blocks each add their share, so the bound is 1e-8 up to that sum (3e-8).
    """
    inst, M, cols, planted = setup(n, d, k, optw, sigma=sigma)
    sol = cvx.solve_relu(inst["X"], M, inst["y"], form=form, beta=beta, skip=False)
    net = recovery.to_network(sol)
    assert net["w0"] is None
    assert np.abs(recovery.network_output(net, inst["X"]) - recovery.fitted(inst["X"], M, sol)).max() < 3e-8


@pytest.mark.parametrize("trial", range(3))
def test_recovery_at_large_n_and_distances(trial):
    inst, M, cols, planted = setup(60, 3, 2, 2, trial)
    sol = cvx.solve_relu(inst["X"], M, inst["y"], skip=False)
    assert recovery.blocks_recovered(sol, planted)
    dist = recovery.plain_distances(sol, planted, cols, inst)
    assert dist["dis_abs"] < 1e-4 and dist["dis_test"] < 1e-3


def test_no_recovery_when_n_below_d():
    inst, M, cols, planted = setup(6, 8, 1, 0)
    sol = cvx.solve_relu(inst["X"], M, inst["y"], skip=False)
    assert not recovery.blocks_recovered(sol, planted)
    assert recovery.plain_distances(sol, planted, cols, inst)["dis_abs"] > 1e-2


def test_plain_labels_redrawn_too():
    for trial in range(20):
        inst = data.plain_instance(2, 3, 2, 0, 1, 0.0, utils.cell_rng(0, 2, 3, trial))
        assert data.all_active(inst["X"], inst["W"])


def test_plain_net_forward():
    import torch
    networks.seed_torch(np.random.default_rng(0))
    net = networks.PlainNet(4, 7)
    X = torch.randn(20, 4)
    expected = torch.relu(X @ net.hidden.weight.T) @ net.out.weight.ravel()
    assert torch.allclose(net(X), expected, atol=1e-6)


@pytest.mark.parametrize("script,metrics,extra", [
    ("rec_rate_plain.py", ["rec"], ["--form", "exact"]),
    ("minnrm_plain.py", ["dis_abs", "dis_test", "unique"], ["--sigma", "0.1"]),
    ("cvx_train_plain.py", ["dis_abs", "dis_test"], ["--beta", "0.001"]),
    ("ncvx_train_plain.py", ["dis_test", "loss", "loss_curve"], ["--epochs", "5"]),
])
def test_scripts_on_a_tiny_grid(tmp_path, capsys, script, metrics, extra):
    main = run_script(capsys, script, "--n", "10", "--d", "10", "--step", "5", "--sample", "2",
                      "--neu", "3", "--optw", "1", *extra, "--save_folder", str(tmp_path))
    assert "_neu3" in main
    meta = json.loads(Path(main).with_suffix(".json").read_text())
    assert list(meta["files"]) == metrics and meta["failed_cells"] == 0
    values = np.load(tmp_path / meta["files"][metrics[0]])
    assert values.shape[:3] == (2, 2, 2) and np.isfinite(values).all()


def test_file_names_keep_k_apart(tmp_path, capsys):
    flags = ["--n", "10", "--d", "5", "--step", "5", "--sample", "1", "--save_folder", str(tmp_path)]
    a = run_script(capsys, "rec_rate_plain.py", *flags)
    b = run_script(capsys, "rec_rate_plain.py", *flags, "--neu", "2")
    assert a != b and Path(a).exists() and Path(b).exists()


def test_usage_errors(capsys):
    assert "--neu 2" in usage_error(capsys, "rec_rate_plain.py", "--optw", "2")
    assert "--optw" in usage_error(capsys, "ncvx_train_plain.py", "--optw", "3")
