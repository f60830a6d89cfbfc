"""The command-line scripts: tiny sweeps, result files, determinism, bad input."""
import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

import utils
from conftest import ROOT
from planted.solution import SolveFailed

TINY = ["--n", "20", "--d", "10", "--sample", "2", "--jobs", "1"]  # one process: quick to start


def run(script, *flags, check=True):
    proc = subprocess.run([sys.executable, str(ROOT / script), *flags], capture_output=True, text=True,
                          cwd=ROOT)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.parametrize("script,metrics,extra", [
    ("rec_rate_skip.py", ["rec", "all_ones"], ["--form", "exact"]),
    ("minnrm_skip.py", ["dis_abs", "dis_test", "unique"], ["--sigma", "0.1"]),
    ("cvx_train_skip.py", ["dis_abs", "dis_test"], ["--beta", "0.001"]),
    ("ncvx_train_skip.py", ["dis_abs", "dis_test", "loss", "loss_curve"], ["--epochs", "20"]),
])
def test_script_runs_on_a_tiny_grid(tmp_path, script, metrics, extra):
    proc = run(script, *TINY, *extra, "--save_folder", str(tmp_path))
    main = proc.stdout.strip().splitlines()[-1]
    assert main.endswith(".npy") and (tmp_path / main.split("/")[-1]).exists()
    meta = json.loads((tmp_path / main.split("/")[-1]).with_suffix(".json").read_text())
    assert meta["nvec"] == [10, 20] and meta["dvec"] == [10]
    assert list(meta["files"]) == metrics
    assert extra[0].strip("-") + extra[1] in main  # a non-default flag is in the file name
    for m, name in meta["files"].items():
        values = np.load(tmp_path / name)
        assert values.shape[:3] == (2, 1, 2)
        assert np.isfinite(values).all(), (m, meta["status"])
    assert meta["failed_cells"] == 0 and len(meta["cell_seconds"]) == 2
    assert "0 failed" in proc.stdout


def test_file_names_keep_different_runs_apart(tmp_path):
    a = run("minnrm_skip.py", *TINY, "--save_folder", str(tmp_path)).stdout.split()[-1]
    b = run("minnrm_skip.py", *TINY, "--form", "exact", "--save_folder", str(tmp_path)).stdout.split()[-1]
    assert a.endswith("minnrm_skip_n20_d10_w0_X0_sample2.npy") and a != b


def test_cell_alone_equals_cell_in_sweep(tmp_path):
    """A cell depends on (seed, n, d, trial) only: not on the grid around it, nor on order."""
    import minnrm_skip
    small = run("minnrm_skip.py", *TINY, "--seed", "4", "--save_folder", str(tmp_path / "a")).stdout.split()[-1]
    large = run("minnrm_skip.py", "--n", "30", "--d", "20", "--sample", "3", "--seed", "4", "--jobs", "2",
                "--save_folder", str(tmp_path / "b")).stdout.split()[-1]
    a, b = np.load(small), np.load(large)
    assert np.array_equal(a, b[:2, :1, :2])
    args = argparse.Namespace(**json.loads(open(small.replace(".npy", ".json")).read())["flags"])
    alone = minnrm_skip.cell(args, 20, 10, utils.cell_rng(4, 20, 10, 1))
    assert alone["dis_abs"] == a[1, 0, 1]


def test_save_details(tmp_path):
    run("rec_rate_skip.py", "--n", "10", "--d", "10", "--sample", "2", "--jobs", "1", "--save_details",
        "--save_folder", str(tmp_path))
    folder = tmp_path / "rec_rate_skip_n10_d10_w0_X0_sample2_details"
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["n10_d10_trial0.npz", "n10_d10_trial1.npz"]
    saved = np.load(folder / files[0])
    assert {"X", "w", "y", "M", "sol_w0", "sol_W", "sol_objective", "sol_unique"} <= set(saved.files)
    assert not [p for p in tmp_path.glob(".*")]


@pytest.mark.parametrize("flags", [
    ["--n", "0"], ["--d", "-5"], ["--step", "30", "--n", "20"], ["--sample", "0"], ["--sigma", "-1"],
    ["--optx", "9"], ["--optw", "3"], ["--form", "loose"], ["--solver", "GUROBI"], ["--solver", "MOSEK"],
    ["--n", "ten"], ["--save_folder", "/proc/forbidden"],
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, flags):
    proc = run("rec_rate_skip.py", "--save_folder", str(tmp_path), *flags, check=False)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "error" in proc.stderr and proc.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_bad_training_flags(tmp_path):
    for flags in (["--epochs", "0"], ["--lr", "0"], ["--device", "cuda:0"], ["--m", "-1"]):
        proc = run("ncvx_train_skip.py", "--save_folder", str(tmp_path), *flags, check=False)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, flags


def test_failed_solve_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    def cell(args, n, d, rng):
        if n == 20:
            raise SolveFailed("CLARABEL: infeasible")
        return dict(rec=1.0)
    parser = utils.experiment_parser("test")
    parser.prog = "fake_experiment.py"
    main = utils.run(parser, cell, ["rec"], argv=TINY + ["--save_folder", str(tmp_path)])
    values = np.load(main)
    assert (values[0] == 1).all() and np.isnan(values[1]).all()
    meta = json.loads(main.with_suffix(".json").read_text())
    assert meta["failed_cells"] == 2 and meta["status"][1][0][0] == "failed: CLARABEL: infeasible"
    assert "2 failed" in capsys.readouterr().out


def test_interrupted_sweep_leaves_nothing_behind(tmp_path):
    def cell(args, n, d, rng):
        if n == 20:
            raise KeyboardInterrupt
        return dict(rec=1.0)
    parser = utils.experiment_parser("test")
    parser.prog = "fake_experiment.py"
    with pytest.raises(SystemExit) as stop:
        utils.run(parser, cell, ["rec"], argv=TINY + ["--save_folder", str(tmp_path)])
    assert stop.value.code == 130
    # the finished cells are kept for a resume; no result file, nothing half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake_experiment_n20_d10_w0_X0_sample2.cells.sqlite"]


def test_plot_writes_a_png(tmp_path):
    a = run("rec_rate_skip.py", *TINY, "--save_folder", str(tmp_path)).stdout.split()[-1]
    b = run("minnrm_skip.py", *TINY, "--save_folder", str(tmp_path)).stdout.split()[-1]
    out = tmp_path / "fig.png"
    proc = run("plot_phase.py", a, b, "--theory", "--boundary", "--out", str(out))
    assert proc.stdout.strip() == str(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_bad_input(tmp_path):
    bad = tmp_path / "bad.npy"
    bad.write_text("not an array")
    (tmp_path / "bad.json").write_text("{}")
    for flags in ([str(tmp_path / "missing.npy")], [str(bad)], [str(bad), "--out", str(tmp_path / "x.pdf")]):
        proc = run("plot_phase.py", *flags, check=False)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, flags
        assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "bad.npy"]
