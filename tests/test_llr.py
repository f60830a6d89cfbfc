"""Local linear recovery (docs/reference.md §8): model ranks, embeddings, pitfalls, the recovery run."""
import json

import numpy as np
import pytest
import torch

import llr_train
import model_rank
import plot_llr
from planted import llr


def rank(arch, params, **kw):
    return llr.model_rank(arch, params, **kw)["model_rank"]


@pytest.mark.parametrize("family,expected", [("cnn", 7), ("cnn-ns", 15), ("fc", 21)])
@pytest.mark.parametrize("N", [1, 3, 10])
def test_fig3_model_rank_is_the_same_at_every_width(family, expected, N):
    narrow, params = llr.fig3_target(family)
    assert llr.closed_form(narrow) == (expected, "exact")
    wide, embedded = llr.embed(narrow, params, N)
    assert wide.param_count == expected * N  # 7N, 15N, 21N of §8
    out = llr.model_rank(wide, embedded)
    assert out["model_rank"] == expected
    assert out["singular_value_gap"] is None or out["singular_value_gap"] > 1e6


def test_fig3_networks_compute_the_target():
    X = np.random.default_rng(0).standard_normal((50, 5))
    for family in ("cnn", "cnn-ns", "fc", "fc-nobias"):
        narrow, params = llr.fig3_target(family)
        wide, embedded = llr.embed(narrow, params, 3)
        np.testing.assert_allclose(wide(embedded, X), llr.fig3_function(X), atol=1e-12)


@pytest.mark.parametrize("k,d", [(1, 3), (2, 4), (3, 5), (2, 7)])
def test_random_fully_connected_targets(k, d):
    arch, params = llr.random_target("fc", k, d, rng=k * 10 + d)
    assert rank(arch, params) == k * (d + 2)
    arch, params = llr.random_target("fc-nobias", k, d, rng=k * 10 + d)
    assert rank(arch, params) == k * (d + 1)
    assert rank(*llr.embed(arch, params, 3)) == k * (d + 1)


def test_2d_cnn_closed_forms_agree_with_numerical_rank():
    d, s, k = 6, 3, 1
    P = d + 1 - s
    arch, params = llr.random_target("cnn2d", k, d, s, rng=1)
    assert rank(arch, params) == llr.closed_form(arch)[0] == k * (s * s + P * P) == 25
    ns_arch, ns_params = llr.random_target("cnn2d-ns", k, d, s, rng=1)
    assert rank(ns_arch, ns_params) == llr.closed_form(ns_arch)[0] == k * (s * s + 1) * P * P == 160
    # The same CNN function written as a fully connected network on the flattened d x d image:
    # one neuron per position, the kernel placed on its window: rank k(d^2 + 1)(d + 1 - s)^2.
    W = np.zeros((P * P, d, d))
    for p in range(P):
        for q in range(P):
            W[p * P + q, p:p + s, q:q + s] = params["K"][0]
    fc = llr.Arch("fc-nobias", d * d, (P * P,))
    fc_params = dict(W=W.reshape(P * P, d * d), a=params["A"][0].ravel())
    X = np.random.default_rng(2).standard_normal((20, d, d))
    np.testing.assert_allclose(fc(fc_params, X.reshape(20, -1)), arch(params, X), atol=1e-12)
    table = {row[0]: row[2] for row in llr.closed_form_table(d, s, k)}
    assert rank(fc, fc_params) == table["2-D fully connected"] == k * (d * d + 1) * P * P


@pytest.mark.parametrize("kind,k,d,s", [("fc", 2, 4, 0), ("fc-nobias", 2, 4, 0), ("cnn", 2, 6, 3),
                                        ("cnn-ns", 1, 6, 3), ("cnn2d", 1, 5, 3), ("deep-fc", 2, 3, 0)])
def test_splitting_and_null_embeddings_leave_the_rank_unchanged(kind, k, d, s):
    arch, params = llr.random_target(kind, k, d, s, rng=3)
    base = rank(arch, params)
    X = np.random.default_rng(4).standard_normal((10,) + arch.input_shape)
    for how in ("split", "null"):
        wide, embedded = llr.embed(arch, params, 3, how)
        np.testing.assert_allclose(wide(embedded, X), arch(params, X), atol=1e-12)
        assert rank(wide, embedded) == base
    if kind == "deep-fc":
        assert base == llr.closed_form(arch)[0]  # the upper bound is attained by a generic target


def test_zero_output_unit_with_input_weights_adds_one():
    arch, params = llr.random_target("fc", 2, 4, rng=5)
    base = rank(arch, params)
    assert base == 12
    silent = dict(W=0.4 * np.ones((1, 4)), b=np.zeros(1), a=np.zeros(1))
    assert rank(*llr.add_units(arch, params, silent)) == base + 1
    biased_null = dict(W=np.zeros((1, 4)), b=np.full(1, 0.3), a=np.zeros(1))
    assert rank(*llr.add_units(arch, params, biased_null)) == base + 1  # the constant function
    true_null = dict(W=np.zeros((1, 4)), b=np.zeros(1), a=np.zeros(1))
    assert rank(*llr.add_units(arch, params, true_null)) == base


def test_empirical_rank_curve_reaches_model_rank_at_the_optimistic_size():
    narrow, params = llr.fig3_target("cnn-ns")
    out = llr.model_rank(*llr.embed(narrow, params, 2))
    ns = llr.curve_sizes(out["model_rank"], out["n_samples"])
    curve = llr.empirical_rank_curve(out["Jr"], ns)
    assert curve == [min(n, 15) for n in ns]
    assert llr.optimistic_size(ns, curve, 15) == 15


def test_model_rank_cli_json(capsys):
    model_rank.main(["--arch", "cnn", "--target", "fig3", "--width", "3", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert (out["model_rank"], out["closed_form"], out["param_count"]) == (7, 7, 21)
    assert out["optimistic_sample_size"] == 7 and out["singular_value_gap"] > 1e6
    assert out["empirical_rank"]["rank"][:8] == [1, 2, 3, 4, 5, 6, 7, 7]
    model_rank.main(["--arch", "deep-fc", "--target", "random", "--k", "2", "--d", "3", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["closed_form_kind"] == "upper bound" and out["model_rank"] <= out["closed_form"]


def test_model_rank_cli_file_target_and_table(tmp_path, capsys):
    arch, params = llr.random_target("cnn", 2, 7, 3, rng=6)
    path = tmp_path / "target.npz"
    np.savez(path, **params)
    model_rank.main(["--arch", "cnn", "--target", str(path), "--width", "2", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["model_rank"] == out["closed_form"] == 2 * (7 + 2)
    model_rank.main(["--table", "--json"])
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["model_rank"] for r in rows[3:]] == [685, 6760, 530660]


@pytest.mark.parametrize("argv", [
    ["--arch", "cnn2d", "--target", "fig3"],
    ["--arch", "fc", "--target", "missing.npz"],
    ["--arch", "fc", "--target", "fig3", "--width", "0"],
    ["--arch", "cnn", "--target", "random", "--d", "3", "--s", "5"],
    ["--target", "fig3"],
])
def test_model_rank_cli_rejects_bad_input(argv, capsys):
    with pytest.raises(SystemExit) as e:
        model_rank.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_llr_train_recovers_with_one_kernel_cnn_at_12_samples_not_at_3(tmp_path, capsys):
    argv = ["--families", "cnn", "--widths", "1", "--sizes", "2,3,12", "--sample", "2",
            "--steps", "3000", "--jobs", "1", "--save_folder", str(tmp_path)]
    main = llr_train.main(argv)
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(main)
    test = np.load(main)
    assert test.shape == (1, 1, 3, 2)
    assert (test[0, 0, 2] < 1e-6).all()   # n = 12 > model rank 7
    assert (test[0, 0, :2] > 1e-3).all()  # n <= 3: interpolation, not recovery
    meta = json.loads(main.with_suffix(".json").read_text())
    assert meta["model_rank"] == {"cnn": 7} and meta["param_count"] == {"cnn": [7]}
    steps = np.load(tmp_path / meta["files"]["steps"])
    assert steps.max() <= 3000
    png = plot_llr.main([str(main), "--out", str(tmp_path / "fig.png")])
    assert png.stat().st_size > 1000


def test_llr_train_results_do_not_depend_on_batching(tmp_path):
    common = ["--families", "cnn", "--widths", "3", "--sample", "1", "--steps", "300", "--jobs", "1"]
    a = np.load(llr_train.main(common + ["--sizes", "4,9", "--save_folder", str(tmp_path / "a")]))
    b = np.load(llr_train.main(common + ["--sizes", "9", "--save_folder", str(tmp_path / "b")]))
    np.testing.assert_allclose(a[0, 0, 1, 0], b[0, 0, 0, 0], rtol=1e-4)


@pytest.mark.parametrize("argv", [
    ["--families", "rnn"], ["--sizes", "0:3"], ["--widths", "x"], ["--lr", "-1"], ["--lr", "fast"],
    ["--seed", "-1"], ["--seed", "1.5"], ["--stall", "-5"], ["--sizes", "1:1e9"],
    ["--widths", "1e9"], ["--sizes", "1:1e5", "--widths", "1e4"],
])
def test_llr_train_rejects_bad_input(argv, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        llr_train.main(argv + ["--save_folder", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_llr_train_size_check_counts_the_batch_and_insist_passes_it():
    parser = llr_train.make_parser()
    small = parser.parse_args([])
    llr_train.check_size(parser, small)  # the default grid fits
    assert llr_train.batch_bytes(small, "fc", 100) > 10 * llr_train.batch_bytes(small, "fc", 3)
    big = parser.parse_args(["--widths", "1e9", "--insist"])
    llr_train.check_size(parser, big)    # refused without --insist (test above), passed with it
    assert llr_train.batch_bytes(big, "cnn", 10**9) > 2**50


@pytest.mark.parametrize("family", llr.GRAD_KINDS)
@pytest.mark.parametrize("N", [1, 3])
def test_closed_form_gradient_matches_autograd(family, N):
    arch, _ = llr_train.family_arch(family, N)
    g = torch.Generator().manual_seed(N)
    B, n = 4, 9
    X, Y = torch.randn(B, n, 5, generator=g, dtype=torch.float64), torch.randn(B, n, generator=g, dtype=torch.float64)
    W = torch.rand(B, n, generator=g, dtype=torch.float64)
    W[:, -2:] = 0  # padding
    theta = torch.randn(B, arch.param_count, generator=g, dtype=torch.float64).requires_grad_(True)
    Z = arch.features(X)
    loss = (((arch.forward_features(theta, Z) - Y) ** 2) * W).sum(1)
    grad, = torch.autograd.grad(loss.sum(), theta)
    closed_loss, closed_grad = llr.mse_and_grad(arch, theta.detach(), Z, Y, W)
    np.testing.assert_allclose(closed_loss, loss.detach(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(closed_grad, grad, rtol=0, atol=1e-10)
    assert grad.abs().max() > 1e-2  # a nontrivial gradient
    with pytest.raises(ValueError):
        llr.mse_and_grad(llr.Arch("fc-nobias", 5, (3,)), theta.detach()[:, :18], Z[..., :5], Y, W)


def one_unit_batch(B):
    """B copies of f = a tanh(b): a fully connected unit on the input 0, fitting y = 1 from
    a = 0, tanh(b) = 1/2; the step size sets how fast the loss falls."""
    arch = llr.Arch("fc", 1, (1,))
    Z = torch.zeros(B, 1, 2, dtype=torch.float64)
    Z[:, 0, 1] = 1.0                            # bias input only: f = a tanh(b)
    theta = torch.zeros(B, 3, dtype=torch.float64)
    theta[:, 1] = float(np.arctanh(0.5))        # tanh(b) = 1/2
    Y = torch.ones(B, 1, dtype=torch.float64)
    W = torch.ones(B, 1, dtype=torch.float64)
    return arch, Z, Y, W, theta


def test_stop_rule_tol_stall_budget_and_divergence():
    arch, Z, Y, W, theta = one_unit_batch(4)
    # lr 0.5: the residual shrinks fast (tol); 1e-3: slowly (stall off: the budget); 200: diverges
    lr = torch.tensor([0.5, 1e-3, 200.0, 0.5])
    Y[3] = 3.0  # another target, fast too
    rule = llr_train.StopRule(tol=1e-12, stall=0, steps=400, check=10)
    final, loss, steps = llr_train.train_batch(arch, Z, Y, W, theta, lr, rule, lambda *a: None)
    assert steps[0] < 400 and loss[0] < 1e-12 and steps[0] % 10 == 0
    assert steps[1] == 400 and loss[1] > 1e-12
    assert not torch.isfinite(loss[2]) and steps[2] < 400
    assert loss[3] < 1e-12
    # Stall on: a slow run stops once its loss, below STALL_BELOW, falls by less than 2x per 100 steps
    rule = llr_train.StopRule(tol=1e-12, stall=100, steps=100000, check=10)
    slow = torch.tensor([1e-3, 2e-3])
    _, loss_s, steps_s = llr_train.train_batch(arch, Z[:2], Y[:2], W[:2], theta[:2], slow, rule, lambda *a: None)
    assert (steps_s < 100000).all() and (loss_s > 1e-12).all() and (loss_s < llr_train.STALL_BELOW).all()
    assert steps_s[0] > steps_s[1]  # the slower run is stopped later


def test_stop_rule_waits_out_the_plateau_of_the_tiny_init():
    # tanh(b) = 1e-8: the loss stays flat for long, as at the tiny init, and must not count as
    # stalled (it is far above STALL_BELOW)
    arch, Z, Y, W, theta = one_unit_batch(1)
    theta[:, 1] = 1e-8
    rule = llr_train.StopRule(tol=1e-12, stall=50, steps=300, check=10)
    _, loss, steps = llr_train.train_batch(arch, Z, Y, W, theta, torch.tensor([0.01]), rule, lambda *a: None)
    assert steps[0] == 300


def test_bench_llr_times_both_gradients_and_checks_they_agree(capsys):
    import bench_llr
    bench_llr.main(["--families", "cnn,fc", "--widths", "3", "--runs", "4", "--n", "6",
                    "--steps", "1", "--rounds", "1"])
    out = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in out[1:-1]]
    assert [r[:2] for r in rows] == [["cnn", "3"], ["fc", "3"]]
    assert all(float(r[-1]) <= 1e-10 and float(r[3]) > 0 and float(r[4]) > 0 for r in rows)
    assert out[-1].startswith("median speed-up")
