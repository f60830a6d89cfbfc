"""reproduce.py --quick (every figure ID, run once for the module) and what the papers claim of its figures; the
logistic transition fit (planted.transition, docs/reference.md §7) on synthetic data with a
known 50% point; result files read back as labelled arrays (planted.results.load)."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

import llr_train
import reproduce as reproduce_module
import utils
from conftest import ROOT
from planted import results, transition

PNG = b"\x89PNG\r\n\x1a\n"


# ----- the transition fit -----------------------------------------------------------------

def synthetic(seed, n50=60.0, slope=4.0, trials=10, nvec=np.arange(10, 201, 10)):
    """0/1 outcomes of the logistic model P = 1 / (1 + (n / n50)^-slope)."""
    p = 1 / (1 + (nvec / n50) ** -slope)
    return nvec, (np.random.default_rng(seed).random((len(nvec), trials)) < p[:, None]).astype(float)


def test_fit_finds_a_known_50_percent_point():
    """20 independent data sets of 200 trials each: the estimates centre on the true n50 = 60
    (their spread is about 5%), and the 95% bootstrap interval covers it in most of them."""
    estimates, covered = [], 0
    for seed in range(20):
        nvec, y = synthetic(seed)
        result = transition.fit(nvec, y)
        lo, hi = transition.bootstrap(nvec, y)
        assert result["reason"] == "" and lo < result["n50"] < hi
        estimates.append(result["n50"])
        covered += lo <= 60 <= hi
    assert abs(np.median(estimates) / 60 - 1) < 0.04
    assert max(abs(np.array(estimates) / 60 - 1)) < 0.15
    assert covered >= 16  # 19 expected of a 95% interval; 16 or more with probability 0.98


def test_fit_is_the_maximum_likelihood_estimate():
    """Where the outcomes do not separate, the weak ridge on the slope changes n50 by < 0.5%:
    compare with a direct maximisation of the per-trial Bernoulli likelihood."""
    nvec, y = synthetic(3, trials=5)
    n = np.repeat(nvec, y.shape[1]).astype(float)
    outcome = y.ravel()

    def nll(params):
        z = params[0] + params[1] * np.log(n)
        return np.sum(outcome * np.logaddexp(0, -z) + (1 - outcome) * np.logaddexp(0, z))
    a, b = minimize(nll, [0.0, 1.0], method="Nelder-Mead", options=dict(xatol=1e-10, fatol=1e-12,
                                                                         maxiter=20000)).x
    assert transition.fit(nvec, y)["n50"] == pytest.approx(np.exp(-a / b), rel=5e-3)


def test_separated_outcomes_put_n50_in_the_gap():
    nvec = np.arange(10, 101, 10)
    y = np.repeat((nvec >= 50)[:, None], 5, 1).astype(float)
    result = transition.fit(nvec, y)
    assert 40 < result["n50"] < 50 and result["slope"] > 5


@pytest.mark.parametrize("outcomes,reason", [
    (np.zeros((5, 3)), "rate 0 on the whole grid (n50 > 50)"),
    (np.ones((5, 3)), "rate 1 on the whole grid (n50 < 10)"),
    (np.full((5, 3), np.nan), "no defined trials"),
    (np.vstack([np.full((4, 3), np.nan), [[1, 0, 1]]]), "one value of n only (50)"),
    (np.repeat([[1], [1], [0], [0], [0]], 3, 1), "rate does not increase with n"),
    (np.repeat([[0], [0], [0], [0], [1]], 1, 1) * np.array([[1, 0, 0]]), "50% point off the grid"),
])
def test_degenerate_d_gives_nan_and_a_reason(outcomes, reason):
    nvec = [10, 20, 30, 40, 50]
    result = transition.fit(nvec, outcomes)
    assert np.isnan(result["n50"]) and result["reason"].startswith(reason)
    assert all(np.isnan(transition.bootstrap(nvec, outcomes))) or "off the grid" in reason


def test_table_and_csv(tmp_path):
    """A d with undefined cells (NaN, e.g. n < d) is fitted on its defined trials; a degenerate
    d is a row with an empty n50 and the reason; the CSV reads back."""
    nvec, y = synthetic(0, nvec=np.arange(10, 201, 10))
    values = np.stack([y, np.zeros_like(y), np.where(nvec[:, None] < 30, np.nan, y)], axis=1)
    rows = transition.table(values, nvec, [10, 20, 30])
    assert rows[0]["n50"] == pytest.approx(rows[2]["n50"], rel=0.1) and rows[0]["wendel_n"] == 20
    assert rows[0]["n50_over_d"] == pytest.approx(rows[0]["n50"] / 10)
    assert np.isnan(rows[1]["n50"]) and rows[1]["reason"].startswith("rate 0")
    transition.write_csv(tmp_path / "t.csv", [dict(result="x.npy", **r) for r in rows], extra=["result"])
    back = transition.read_csv(tmp_path / "t.csv")
    assert [r["d"] for r in back] == [10, 20, 30] and back[0]["n50"] == pytest.approx(rows[0]["n50"], rel=1e-5)
    assert np.isnan(back[1]["n50"]) and back[1]["reason"] == rows[1]["reason"] and back[0]["result"] == "x.npy"


def test_fit_from_leaves_out_the_cells_below_it():
    """Recovered cells at n < d (the optw 1 skip programs) are a second region the logistic
    model cannot describe: with fit_from = 1 they are left out and the transition above d is
    found as if they were not there."""
    nvec, y = synthetic(0, nvec=np.arange(10, 201, 10))  # a rising rate, 50% point known
    mixed = np.where(nvec[:, None] < 40, 1.0, y)  # plus a recovered strip n < d = 40
    clean = np.where(nvec[:, None] < 40, np.nan, y)
    fit = transition.table(mixed[:, None, :], nvec, [40], fit_from=1)[0]
    assert fit["n50"] == pytest.approx(transition.table(clean[:, None, :], nvec, [40])[0]["n50"], rel=1e-12)
    assert transition.table(mixed[:, None, :], nvec, [40])[0]["n50"] != pytest.approx(fit["n50"], rel=0.05)


# ----- result files as labelled arrays ------------------------------------------------------

def test_results_load_labels_the_axes_of_sweep_and_llr_train_results(tmp_path):
    """A sweep result is a DataArray (n, d, trial) with the sidecar's grids as coordinates and
    its entries as attributes; an llr_train.py result is one (family, width, size, trial)."""
    parser = utils.experiment_parser("test")
    parser.prog = "fake_experiment.py"
    main = utils.run(parser, lambda args, n, d, rng: dict(rec=float(n > d)), ["rec"],
                     argv=["--n", "20", "--d", "10", "--sample", "2", "--jobs", "1", "--save_folder",
                           str(tmp_path)])
    rec = results.load(main)
    meta = json.loads(main.with_suffix(".json").read_text())
    assert rec.dims == ("n", "d", "trial") and rec.shape == (2, 1, 2)
    assert list(rec["n"].values) == meta["nvec"] == [10, 20] and list(rec["d"].values) == meta["dvec"] == [10]
    assert "flags" in rec.attrs and "status" in rec.attrs and rec.name == "rec"
    assert rec.sel(n=20).values.tolist() == [[1.0, 1.0]] and rec.sel(n=10).values.tolist() == [[0.0, 0.0]]
    main = llr_train.main(["--families", "cnn", "--widths", "1,3", "--sizes", "2,5", "--sample", "1",
                           "--steps", "20", "--jobs", "1", "--save_folder", str(tmp_path)])
    test = results.load(main)
    assert test.dims == ("family", "width", "size", "trial") and test.shape == (1, 2, 2, 1)
    assert list(test["width"].values) == [1, 3] and list(test["size"].values) == [2, 5]
    assert np.array_equal(test.values, np.load(main))


# ----- reproduce.py --quick -----------------------------------------------------------------

def reproduce(*flags):
    return subprocess.run([sys.executable, str(ROOT / "reproduce.py"), *flags], capture_output=True, text=True,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The CI variant of every ID, once: figures, fit CSVs, summary and manifest in a tmp folder."""
    root = tmp_path_factory.mktemp("reproduce")
    proc = reproduce("--quick", "--out", str(root / "figures"), "--results", str(root / "results"))
    assert proc.returncode == 0, proc.stderr[-4000:]
    manifest = json.loads((root / "figures" / "manifest.json").read_text())
    return dict(root=root, out=root / "figures", manifest=manifest, stdout=proc.stdout)


def load(file):
    return np.load(file), json.loads(open(str(file).replace(".npy", ".json")).read())


def panels(quick, fig_id):
    return quick["manifest"]["figures"][fig_id]["panels"]


def test_every_id_and_the_summary_are_written(quick):
    out = quick["out"]
    assert quick["stdout"].strip().splitlines()[-1] == str(out / "summary.md")
    assert list(quick["manifest"]["figures"]) == list(reproduce_module.FIGURES)
    for fig_id, info in quick["manifest"]["figures"].items():
        assert info["png"] == str(out / f"{fig_id}.png") and open(info["png"], "rb").read(8) == PNG
        kind = reproduce_module.FIGURES[fig_id].kind
        fitted = (out / f"{fig_id}_fit.csv").exists()
        assert fitted == (kind in ("rate", "finite")), fig_id
        for extra in ("_finite.csv", "_finite.png"):  # the finite-size analysis of the ratio grids
            assert (out / f"{fig_id}{extra}").exists() == (kind == "finite"), fig_id
    summary = (out / "summary.md").read_text()
    assert summary.count("\n## ") == len(reproduce_module.FIGURES)
    assert "ties on" in summary and "sigma where P(split) = 1/2" in summary


def test_the_nonconvex_ids_show_both_protocols(quick):
    for fig_id in ("ni8", "ni25", "ni30", "ni31", "ni32"):
        names = [Path(p["file"]).name for p in panels(quick, fig_id)]
        assert len(names) == 8 and sum("protocolsteady" in n for n in names) == 4, fig_id


def test_the_scaling_study_runs_ratio_grids_of_every_data_kind(quick):
    """fss-skip, fss-norm and universality sweep ratio grids (axes ratio, d, trial); universality
    has every data kind for both programs; the summary quotes the centres and the exponents."""
    from planted.data import OPTX
    for fig_id in ("fss-skip", "fss-norm", "universality"):
        for p in panels(quick, fig_id):
            values, meta = load(p["file"])
            assert meta["axes"][:2] == ["ratio", "d"] and values.shape[:2] == (len(meta["ratios"]), len(meta["dvec"]))
    kinds = [load(p["file"])[1]["flags"]["optx"] for p in panels(quick, "universality")]
    assert kinds == [*OPTX, *OPTX]
    rows = list(csv.DictReader(open(quick["out"] / "summary.csv")))
    fss = [r for r in rows if r["id"] == "fss-skip"]
    assert len(fss) == 3 and all("d=5:" in r["value"] and "width exponent a" in r["note"] for r in fss)


def test_relaxed_skip_transition_sits_near_2d(quick):
    """Gaussian data, optw 0 (ni6, optx 0): n50/d within [1.5, 3.5] for both d of the quick grid
    (Wendel's n = 2d is the 50% point of the all-ones pattern; recovery is near-certain from
    2.5-3d, §7)."""
    relaxed = panels(quick, "ni6")[0]
    assert relaxed["label"] == "optx 0"
    _, meta = load(relaxed["file"])
    fits = [r for r in transition.read_csv(quick["out"] / "ni6_fit.csv") if r["result"] == Path(relaxed["file"]).name]
    assert [r["d"] for r in fits] == meta["dvec"]
    for r in fits:
        assert 1.5 <= r["n50_over_d"] <= 3.5, r
        assert r["lo"] <= r["n50"] <= r["hi"]


def test_all_ones_pattern_is_never_recovered_by_the_relaxed_program(quick):
    """Where D = I is a pattern the relaxed skip optimum is a tie: never a recovery."""
    runs = panels(quick, "ni4a") + panels(quick, "ni6") + panels(quick, "ni18")
    with_all_ones = recovered = 0
    for p in runs:
        rec, all_ones = np.load(p["file"]), np.load(p["all_ones"])
        assert not np.any((rec == 1) & (all_ones == 1)), p["label"]
        with_all_ones += np.sum(all_ones == 1)
        recovered += np.sum(rec == 1)
    assert with_all_ones > 20 and recovered > 20  # both cases occur in the quick grid


def test_minimal_norm_ids_save_the_ties(quick):
    """Every minimal-norm panel carries its per-trial `unique` (0/1, NaN where undefined)."""
    for fig_id in ("ni2", "ni7", "ni9", "ni19", "ni23", "ni27", "ni28", "ni29"):
        for p in panels(quick, fig_id):
            unique, values = np.load(p["unique"]), np.load(p["file"])
            assert unique.shape == values.shape and np.isin(unique[np.isfinite(unique)], (0, 1)).all(), fig_id
            assert np.array_equal(np.isnan(unique), np.isnan(values)), fig_id


def test_dis_abs_grows_with_sigma_above_the_transition(quick):
    """Above the transition the minimal-norm skip solution moves away from w in proportion to
    the noise: the same instances and noise direction at every sigma. ni7 plants the hardest
    direction (optw 1), recovered from about 3-4d on: the cells n >= 4d."""
    sigmas = [float(p["label"].split()[-1]) for p in panels(quick, "ni7")]
    assert sigmas == [0, 0.05, 0.1, 0.2]
    means = []
    for p in panels(quick, "ni7"):
        values, meta = load(p["file"])
        above = np.array(meta["nvec"])[:, None] >= 4 * np.array(meta["dvec"])[None, :]
        means.append(values[above].mean())
    assert means[0] < 1e-6 and means[1] < means[2] < means[3]
    ratios = np.array(means[1:]) / np.array(sigmas[1:])
    assert ratios.max() < 1.5 * ratios.min()  # roughly proportional to sigma


def test_a_second_run_resumes(quick):
    """Re-running an ID computes no cell again and keeps the other IDs listed; the two-cluster
    result, which has no cell store, is reused."""
    proc = reproduce("--quick", "--only", "ni7,ni-clusters", "--out", str(quick["out"]), "--results",
                     str(quick["root"] / "results"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    sweeps = [line for line in proc.stdout.splitlines() if line.startswith("reproduce: minnrm_skip:")]
    assert len(sweeps) == 4 and all("resumed)" in line for line in sweeps)
    assert "not recomputed" in proc.stderr
    manifest = json.loads((quick["out"] / "manifest.json").read_text())
    assert list(manifest["figures"]) == list(reproduce_module.FIGURES)


def test_list_names_every_id_with_its_commands():
    proc = reproduce("--list")
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and [line.split()[0] for line in lines] == list(reproduce_module.FIGURES)
    assert all("python " in line for line in lines)
    assert "--protocol steady" in next(line for line in lines if line.startswith("ni8 "))


@pytest.mark.parametrize("flags", [["--only", "ni99"], ["--only", "4"], ["--only", ","], ["--jobs", "0"],
                                   ["--bogus"], ["--out", "/proc/forbidden"]])
def test_bad_input_is_one_line_and_exit_2(flags):
    proc = reproduce(*flags)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
