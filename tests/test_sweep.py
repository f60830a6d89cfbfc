"""The shared sweep with real processes: serial, --jobs 2 and a Dask cluster agree; a sweep
killed with SIGKILL or interrupted with Ctrl-C resumes to the same arrays. The ratio grid:
its arrays, sidecar and names, and its cells equal to a regular grid's."""
import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

GRID = ["--n", "40", "--d", "20", "--sample", "2"]


def launch(script, *flags, **kw):
    return subprocess.Popen([sys.executable, str(ROOT / script), *flags], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finish(script, *flags):
    proc = subprocess.run([sys.executable, str(ROOT / script), *flags], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc


def arrays(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.npy"))}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], stderr=subprocess.DEVNULL, cwd=tmp_path)]
    time.sleep(1.0)
    for i in range(2):  # started outside the repo: the sweep ships the modules to them
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                       "--nthreads", "1", "--no-dashboard", "--local-directory",
                                       str(tmp_path / f"w{i}")], stderr=subprocess.DEVNULL, cwd=tmp_path))
    from distributed import Client
    with Client(address, timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
    yield address
    for p in procs[::-1]:
        p.terminate()
        p.wait(timeout=30)


def test_serial_parallel_and_dask_give_identical_arrays(tmp_path, dask_cluster):
    runs = {"serial": ["--jobs", "1"], "jobs2": ["--jobs", "2"], "dask": ["--scheduler", dask_cluster]}
    for name, flags in runs.items():
        proc = finish("minnrm_skip.py", *GRID, "--sigma", "0.05", *flags, "--save_folder", str(tmp_path / name))
    assert "2 workers, 2 threads; no dashboard" in proc.stderr  # started with --no-dashboard
    reference = arrays(tmp_path / "serial")
    assert len(reference) == 3  # dis_abs, dis_test, unique
    for name in ("jobs2", "dask"):
        assert arrays(tmp_path / name) == reference, name


def test_training_identical_serial_and_parallel(tmp_path):
    for name, jobs in (("serial", "1"), ("jobs2", "2")):
        finish("ncvx_train_skip.py", "--n", "20", "--d", "10", "--sample", "2", "--epochs", "30",
               "--jobs", jobs, "--save_folder", str(tmp_path / name))
    assert arrays(tmp_path / "serial") == arrays(tmp_path / "jobs2")


def rows(db, query="SELECT COUNT(*) FROM cells"):
    if not db.exists():
        return 0
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
        try:
            return con.execute(query).fetchone()[0]
        except sqlite3.OperationalError:  # table not made yet
            return 0


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigkill_then_resume_matches_uninterrupted(tmp_path, jobs):
    grid = ["--n", "80", "--d", "30", "--sample", "2", "--jobs", jobs]  # 48 cells
    finish("rec_rate_skip.py", *grid, "--save_folder", str(tmp_path / "whole"))
    folder = tmp_path / "killed"
    db = folder / "rec_rate_skip_n80_d30_w0_X0_sample2.cells.sqlite"
    target = random.Random(int(jobs)).randint(5, 35)
    proc = launch("rec_rate_skip.py", *grid, "--save_folder", str(folder))
    while rows(db) < target and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the sweep ended before it could be killed"
    persisted = rows(db)
    assert 0 < persisted < 48
    assert not list(folder.glob("*.npy")) and not list(folder.glob("*.json"))  # nothing half-written
    out = finish("rec_rate_skip.py", *grid, "--save_folder", str(folder)).stdout
    assert f"({persisted} resumed)" in out
    # the second run computed exactly the missing cells, none of the persisted ones
    assert rows(db, "SELECT COUNT(*) FROM cells WHERE run = 2") == 48 - persisted
    assert rows(db, "SELECT COUNT(*) FROM cells") == 48
    assert arrays(folder) == arrays(tmp_path / "whole")
    assert not list(folder.glob(".tmp*"))


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    # a grid large enough that it cannot finish between the 10th cell and the signal on a
    # loaded machine (it did once with 48 cells)
    grid = ["--n", "160", "--d", "40", "--sample", "2", "--jobs", "2", "--save_folder", str(tmp_path)]
    db = tmp_path / "rec_rate_skip_n160_d40_w0_X0_sample2.cells.sqlite"
    # SIGINT at its default disposition in the child, as under a terminal: an ignored SIGINT is
    # inherited across exec, and Python then installs no KeyboardInterrupt handler (something
    # earlier in the full suite leaves it ignored in this process: the sweep then ran to the end)
    proc = launch("rec_rate_skip.py", *grid, start_new_session=True,
                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while rows(db) < 10 and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Run the same command again" in err and "Traceback" not in err
    assert "cancelled" not in err  # no pool's own warning beside ours
    kept = rows(db)
    assert kept >= 10 and not list(tmp_path.glob("*.npy"))
    assert f"({kept} resumed)" in finish("rec_rate_skip.py", *grid).stdout


def test_other_flags_never_pick_up_cells(tmp_path):
    grid = ["--n", "20", "--d", "10", "--sample", "2", "--jobs", "1", "--save_folder", str(tmp_path)]
    finish("rec_rate_skip.py", *grid)
    assert "resumed" not in finish("rec_rate_skip.py", *grid, "--form", "exact").stdout
    assert "(4 resumed)" in finish("rec_rate_skip.py", *grid).stdout
    assert "resumed" not in finish("rec_rate_skip.py", *grid, "--fresh").stdout


def test_unreachable_scheduler_is_a_usage_error(tmp_path):
    port = free_port()  # nothing listens there
    proc = subprocess.run([sys.executable, str(ROOT / "rec_rate_skip.py"), *GRID, "--save_folder", str(tmp_path),
                           "--scheduler", f"tcp://127.0.0.1:{port}"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Dask scheduler" in proc.stderr
    assert not list(tmp_path.glob("*.npy"))


# ----- the ratio grid (--dims, --ratios) ------------------------------------------------------

def test_ratio_grid_end_to_end(tmp_path, capsys):
    """minnrm_skip on a ratio grid: arrays (ratios x dims x trials), the sidecar, the name; every
    cell holds exactly the numbers of the same (n, d) cell of a regular grid; results.load
    labels it."""
    from cli_helpers import run_script
    from planted import results
    main = Path(run_script(capsys, "minnrm_skip.py", "--dims", "5,10", "--ratios", "1.5:2.5:0.5", "--sample", "2",
                           "--save_folder", str(tmp_path / "ratio")))
    assert main.name == "minnrm_skip_dims5-10_r1.5-2.5-0.5_w0_X0_sample2.npy"
    meta = json.loads(main.with_suffix(".json").read_text())
    assert meta["axes"] == ["ratio", "d", "trial"] and "nvec" not in meta
    assert meta["ratios"] == [1.5, 2.0, 2.5] and meta["dvec"] == [5, 10]
    assert meta["n"] == [[8, 15], [10, 20], [13, 25]]  # round(ratio d), halves up
    assert meta["flags"]["n"] is None and meta["flags"]["dims"] == [5, 10]
    regular = Path(run_script(capsys, "minnrm_skip.py", "--n", "25", "--d", "10", "--step", "5", "--sample", "2",
                              "--save_folder", str(tmp_path / "regular")))
    reg_meta = json.loads(regular.with_suffix(".json").read_text())
    shared = 0
    for metric, name in meta["files"].items():
        ratio, reg = np.load(main.parent / name), np.load(regular.parent / reg_meta["files"][metric])
        assert ratio.shape == (3, 2, 2) and np.isfinite(ratio).all()
        for i, row in enumerate(meta["n"]):
            for j, (n, d) in enumerate(zip(row, meta["dvec"])):
                if n in reg_meta["nvec"]:
                    assert np.array_equal(ratio[i, j], reg[reg_meta["nvec"].index(n), reg_meta["dvec"].index(d)])
                    shared += 1
    assert shared == 3 * 4  # (10, 5), (15, 10), (20, 10), (25, 10), for each of the 3 metrics
    labelled = results.load(main)
    assert labelled.dims == ("ratio", "d", "trial") and labelled["n"].sel(ratio=2.0, d=10) == 20


def test_ratios_sharing_a_cell_compute_it_once(tmp_path, capsys):
    """d = 2: ratios 1 and 1.2 give n = 2 both; the cell is computed once and stands at both
    places; a second run resumes every cell."""
    import utils
    calls = []

    def cell(args, n, d, rng):
        calls.append((n, d))
        return dict(rec=n + d / 10 + rng.random())
    parser = utils.experiment_parser("test")
    parser.prog = "fake_experiment.py"
    argv = ["--dims", "2,4", "--ratios", "1,1.2,1.4", "--sample", "1", "--jobs", "1", "--save_folder", str(tmp_path)]
    main = utils.run(parser, cell, ["rec"], argv=argv)
    assert sorted(calls) == [(2, 2), (3, 2), (4, 4), (5, 4), (6, 4)]
    values = np.load(main)
    assert values.shape == (3, 2, 1) and values[0, 0] == values[1, 0] and values[1, 1] != values[2, 1]
    assert "5 cells" in capsys.readouterr().out
    utils.run(parser, cell, ["rec"], argv=argv)
    assert len(calls) == 5 and "(5 resumed)" in capsys.readouterr().out


def test_ratio_grid_names():
    """Readable, distinct names for ratio grids; the regular grids keep theirs, and their cell
    stores their fingerprints (no ratio flags in them)."""
    import utils
    parser = utils.experiment_parser("test")

    def tail(*flags):
        args = parser.parse_args(list(flags))
        return utils.result_tail(parser, args, ())
    assert tail() == "n400_d100_w0_X0_sample5"
    assert "dims" not in json.loads(utils.fingerprint(parser.parse_args([])))
    assert tail("--dims", "25,50,100,200,400", "--ratios", "1.5:2.5:0.05") == \
        "dims25-50-100-200-400_r1.5-2.5-0.05_w0_X0_sample5"
    assert tail("--dims", "10:40:10", "--ratios", "2,2.5", "--sigma", "0.1") == \
        "dims10-40-10_r2-2.5_w0_X0_sample5_sigma0.1"
    # the same list written two ways is one grid, one name; different lists never share one
    assert tail("--dims", "5", "--ratios", "1,2,3") == tail("--dims", "5", "--ratios", "1:3:1") == \
        "dims5_r1-3-1_w0_X0_sample5"
    assert tail("--dims", "5", "--ratios", "1,2,2.5") == "dims5_r1-2-2.5_w0_X0_sample5"
    assert tail("--dims", "5", "--ratios", "1:2:2.5") == "dims5_r1_w0_X0_sample5"
