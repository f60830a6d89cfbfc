"""Neural isometry conditions (§6): each is a dual certificate of the matching
relaxed program, so on every trial where it holds that program recovers the planted model."""
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import nic
import utils
from cli_helpers import run_script, usage_error
from planted import conditions, data, patterns, recovery, solve

# (condition, k, optw, [(n, d), ...], trials per size, least number of trials where it holds)
PROPERTY_CASES = [
    ("linear", 1, 0, [(12, 2), (20, 3), (24, 4)], 10, 20),
    ("linear", 1, 1, [(12, 2), (24, 4)], 10, 15),
    ("nic1", 1, 0, [(12, 2), (24, 4), (40, 3)], 20, 6),
    ("nick", 2, 2, [(12, 2), (20, 2), (24, 4)], 20, 6),
    ("nick", 2, 0, [(40, 3), (60, 3)], 15, 2),
    ("norm1", 1, 0, [(12, 2), (24, 4), (30, 3)], 12, 12),
    ("normk", 2, 2, [(12, 2), (20, 2), (24, 4)], 15, 10),
    ("normk", 2, 0, [(20, 2), (40, 3), (60, 3)], 20, 2),
]


@pytest.mark.parametrize("solver", [s for s in ("CLARABEL", "fast") if s in solve.SOLVERS])
@pytest.mark.parametrize("condition,k,optw,sizes,trials,least", PROPERTY_CASES,
                         ids=[f"{c[0]}-k{c[1]}-w{c[2]}" for c in PROPERTY_CASES])
def test_condition_implies_recovery(condition, k, optw, sizes, trials, least, solver):
    args = SimpleNamespace(condition=condition, neu=k, optw=optw, optx=0, sigma=0.0, compare=True,
                           solver=solver)
    held = recovered_without = 0
    for n, d in sizes:
        for trial in range(trials):
            out = nic.cell(args, n, d, utils.cell_rng(2024, n, d, trial))
            assert out["rec"] or not out["holds"], (n, d, trial, out["value"])
            assert out["gap"] == int(out["rec"]) - int(out["holds"]) >= 0
            held += out["holds"]
            recovered_without += out["rec"] and not out["holds"]
    assert held >= least  # the property was exercised
    if condition != "linear":
        assert recovered_without > 0  # sufficient, not necessary


def test_one_neuron_conditions_are_the_k_neuron_ones_at_k_1():
    for trial in range(5):
        rng = utils.cell_rng(1, 30, 3, trial)
        inst = data.plain_instance(30, 3, 1, 0, 0, 0.0, rng)
        M, cols, _ = recovery.plain_setup(inst, rng, conditions.num_directions(30))
        a, b = conditions.nic1(inst["X"], M, inst["W"][:, 0], cols[0]), conditions.nick(inst["X"], M, inst["W"], cols)
        assert a["holds"] == b["holds"] and np.isclose(a["value"], b["value"])
        inst = data.norm_instance(30, 3, 1, 0, 0, 0.0, rng)
        B, cols, planted = recovery.norm_setup(inst, rng, conditions.num_directions(30))
        a = conditions.norm1(B, planted.W[:, cols[0]], cols[0])
        b = conditions.normk(B, planted.W[:, cols], cols)
        assert a["holds"] == b["holds"] and np.isclose(a["value"], b["value"])


def test_linear_condition_is_one_on_the_all_ones_pattern():
    rng = utils.cell_rng(0, 6, 6, 0)
    inst = data.skip_instance(6, 6, 0, 0, 0.0, rng)
    M = patterns.sample_patterns(inst["X"], 50, rng)
    assert patterns.has_all_ones(M)  # n <= d: D = I is always a pattern (Wendel)
    w_hat = inst["w"] / np.linalg.norm(inst["w"])
    lam = inst["X"] @ np.linalg.solve(inst["X"].T @ inst["X"], w_hat)
    norms = conditions.relu_dual_norms(inst["X"], M, lam)
    assert np.isclose(norms[M.all(0)][0], 1, atol=1e-12)
    out = conditions.linear(inst["X"], M, inst["w"])
    assert not out["holds"] and out["value"] >= 1 - 1e-12


def test_no_candidate_without_full_rank():
    rng = np.random.default_rng(0)
    X = data.make_X(5, 8, 0, rng)  # n < d: X^T X is singular
    out = conditions.linear(X, patterns.sample_patterns(X, 50, rng), data.planted_linear(X, 0, rng))
    assert not out["holds"] and np.isnan(out["value"])


def test_cli_compare(tmp_path, capsys):
    main = run_script(capsys, "nic.py", "--condition", "normk", "--neu", "2", "--optw", "2", "--n", "20", "--d",
                      "10", "--step", "5", "--sample", "2", "--compare", "--save_folder", str(tmp_path))
    assert "conditionnormk" in main and "_neu2" in main
    meta = json.loads(Path(main).with_suffix(".json").read_text())
    assert list(meta["files"]) == ["holds", "value", "rec", "gap"]
    holds, rec, gap = (np.load(tmp_path / meta["files"][m]) for m in ("holds", "rec", "gap"))
    assert holds.shape == (4, 2, 2)
    assert np.isnan(holds[0, 1]).all() and np.isfinite(holds[1:]).all()  # n = 5 < d = 10: undefined
    defined = np.isfinite(holds)
    assert np.array_equal(gap[defined], rec[defined] - holds[defined]) and (gap[defined] >= 0).all()


def test_cli_condition_only(tmp_path, capsys):
    main = run_script(capsys, "nic.py", "--condition", "linear", "--n", "20", "--d", "10", "--step", "5",
                      "--sample", "2", "--save_folder", str(tmp_path))
    meta = json.loads(Path(main).with_suffix(".json").read_text())
    assert list(meta["files"]) == ["holds", "value"]
    assert np.isfinite(np.load(main)).all()


@pytest.mark.parametrize("flags,words", [
    (["--condition", "nic1", "--neu", "2"], "--neu 1"),
    (["--condition", "linear", "--optw", "2", "--neu", "2"], "linear"),
    (["--condition", "nick", "--neu", "3", "--optw", "2"], "--neu 2"),
    (["--condition", "normk", "--compare", "--sigma", "0.1"], "--sigma 0"),
    (["--condition", "nic3"], "--condition"),
    ([], "--condition"),
])
def test_cli_usage_errors(capsys, flags, words):
    assert words in usage_error(capsys, "nic.py", *flags)
