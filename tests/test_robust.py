"""What a careless or unlucky user does to a sweep: other flags on the same folder, two
identical runs at once, a damaged store, SIGTERM, kill -9, a Dask cluster that loses its
workers, a full disk, a diverging training run. Real processes where signals, pools and disks
are involved."""
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest
from test_sweep import finish, free_port, launch, rows

import utils
from conftest import ROOT
from planted import results

TINY = ["--n", "20", "--d", "10", "--step", "10", "--sample", "2", "--jobs", "1"]


def fails(script, *flags):
    proc = subprocess.run([sys.executable, str(ROOT / script), *flags], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def tail(script, *flags):
    parser = utils.experiment_parser("test", training=script.startswith("ncvx"))
    parser.add_argument("--compare", action="store_true")
    return utils.result_tail(parser, parser.parse_args(list(flags)), ())


def test_every_result_flag_is_in_the_name_and_values_are_normalized():
    assert tail("x", "--sigma", "-0.0") == tail("x") == tail("x", "--sigma", "0")
    assert "compare" in tail("x", "--compare")
    parser = utils.experiment_parser("test", training=True)
    args = parser.parse_args([])
    args.device = "cuda:0"  # what --device cuda gives on a machine that has one
    assert "devicecuda:0" in utils.result_tail(parser, args, ())


def test_a_store_of_other_flags_is_refused_and_kept(tmp_path):
    path = tmp_path / "cells.sqlite"
    store = results.CellStore(path, json.dumps({"sigma": 0.0}), fresh=False)
    store.put((20, 10, 0), {"rec": 1.0}, "ok", 0.1)
    store.close()
    with pytest.raises(results.StoreError, match=r"sigma: 0\.0 -> 0\.1.*--fresh"):
        results.CellStore(path, json.dumps({"sigma": 0.1}), fresh=False)
    store = results.CellStore(path, json.dumps({"sigma": 0.0}), fresh=False)
    assert store.done() == {(20, 10, 0): ({"rec": 1.0}, "ok", 0.1)}  # nothing was deleted
    # rows are JSON a reader can parse without running code
    (out,), = store.db.execute("SELECT out FROM cells").fetchall()
    assert json.loads(out) is not None
    store.close()
    assert results.CellStore(path, json.dumps({"sigma": 0.1}), fresh=True).done() == {}


def test_a_damaged_store_is_named_and_kept(tmp_path):
    finish("rec_rate_skip.py", *TINY, "--save_folder", str(tmp_path))
    db = next(tmp_path.glob("*.cells.sqlite"))
    db.write_bytes(b"not a database" * 100)
    err = fails("rec_rate_skip.py", *TINY, "--save_folder", str(tmp_path))
    assert db.name in err and "--fresh" in err
    assert db.read_bytes() == b"not a database" * 100
    with sqlite3.connect(db.with_name("old.sqlite")) as con:  # a store of another schema
        con.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        con.execute("INSERT INTO meta VALUES ('schema', 'planted-cells-1')")
    shutil.copy(db.with_name("old.sqlite"), db)
    assert "not a cell store of this version" in fails("rec_rate_skip.py", *TINY, "--save_folder", str(tmp_path))
    finish("rec_rate_skip.py", *TINY, "--save_folder", str(tmp_path), "--fresh")


def test_a_second_identical_run_is_told_the_first_is_running(tmp_path):
    grid = ["--n", "160", "--d", "40", "--sample", "2", "--jobs", "1", "--save_folder", str(tmp_path)]
    db = tmp_path / "rec_rate_skip_n160_d40_w0_X0_sample2.cells.sqlite"
    first = launch("rec_rate_skip.py", *grid)
    try:
        while rows(db) < 1 and first.poll() is None:
            time.sleep(0.02)
        assert "in use by another run" in fails("rec_rate_skip.py", *grid)
    finally:
        first.kill()
        first.wait()


def test_save_details_on_a_finished_run_solves_the_missing_details(tmp_path):
    finish("rec_rate_skip.py", *TINY, "--save_folder", str(tmp_path))
    out = finish("rec_rate_skip.py", *TINY, "--save_folder", str(tmp_path), "--save_details").stdout
    details = tmp_path / "rec_rate_skip_n20_d10_w0_X0_sample2_details"
    assert len(list(details.glob("*.npz"))) == 4 and "details of 4 of 4 cells" in out
    saved = np.load(next(details.glob("*.npz")))
    assert {"w", "sol_w0", "sol_W", "sol_objective", "sol_unique"} <= set(saved.files)  # planted and solved


def test_a_sweep_removes_only_its_own_temporary_files(tmp_path):
    ours = tmp_path / ".tmp-rec_rate_skip_n20_d10_w0_X0_sample2.npy-abc"
    theirs = tmp_path / ".tmp-rec_rate_skip_n20_d10_w0_X0_sample20.npy-abc"  # a run with 20 trials
    ours.write_text("")
    theirs.write_text("")
    finish("rec_rate_skip.py", *TINY, "--save_folder", str(tmp_path))
    assert theirs.exists() and not ours.exists()


def family(pid):
    return [pid] + [p.pid for p in psutil.Process(pid).children(recursive=True)]


def gone(pids, within=10.0):
    deadline = time.time() + within
    while time.time() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_stopped_sweep_leaves_no_worker_behind(tmp_path, how):
    grid = ["--n", "160", "--d", "40", "--sample", "2", "--jobs", "2", "--save_folder", str(tmp_path)]
    db = tmp_path / "rec_rate_skip_n160_d40_w0_X0_sample2.cells.sqlite"
    proc = launch("rec_rate_skip.py", *grid)
    while rows(db) < 5 and proc.poll() is None:
        time.sleep(0.02)
    pids = family(proc.pid)
    assert len(pids) >= 3, "the pool had not started"
    proc.send_signal(getattr(signal, how))
    _, err = proc.communicate(timeout=60)
    if how == "SIGTERM":
        assert proc.returncode == 143 and "terminated" in err and "Run the same command again" in err
        assert "Traceback" not in err
    assert gone(pids), [psutil.Process(p).cmdline() for p in pids if psutil.pid_exists(p)]
    kept = rows(db)
    assert f"({kept} resumed)" in finish("rec_rate_skip.py", *grid).stdout


def test_a_cluster_without_workers_says_so_and_stops(tmp_path):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", str(port), "--no-dashboard"], stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        time.sleep(1.5)
        proc = subprocess.run([sys.executable, str(ROOT / "rec_rate_skip.py"), *TINY, "--save_folder",
                               str(tmp_path / "out"), "--scheduler", address, "--worker_wait", "3"],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "no Dask worker" in proc.stderr and "Run the same command again" in proc.stderr
    assert "on the Dask cluster at" in proc.stderr  # where the cells were to run


def test_a_full_disk_stops_with_the_folder_and_keeps_the_cells(tmp_path):
    """A 1 MiB tmpfs in a private mount namespace (no root needed with user namespaces)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1)")
    mount = tmp_path / "small"
    mount.mkdir()
    flags = " ".join(["--n", "200", "--d", "50", "--step", "50", "--sample", "2", "--jobs", "1", "--save_details",
                      "--save_folder", str(mount)])
    script = (f"mount -t tmpfs -o size=256k tmpfs {mount} && {sys.executable} {ROOT / 'rec_rate_skip.py'} {flags};"
              f" echo rc=$?; ls -a {mount} {mount}/*_details")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, cwd=ROOT)
    if "rc=" not in proc.stdout:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    assert "rc=2" in proc.stdout, proc.stderr
    assert "disk is full" in proc.stderr and str(mount) in proc.stderr and "Traceback" not in proc.stderr
    assert "Run the same command again" in proc.stderr
    saved = int(proc.stderr.split(" of 8 cells are saved")[0].split()[-1])
    assert 0 < saved < 8 and ".tmp" not in proc.stdout and ".npy" not in proc.stdout  # nothing half-written


def test_a_diverging_training_run_is_a_failed_cell(tmp_path):
    out = finish("ncvx_train_skip.py", *TINY, "--epochs", "20", "--lr", "1e308", "--save_folder",
                 str(tmp_path)).stdout
    assert "4 failed" in out
    meta = json.loads(next(tmp_path.glob("ncvx_train_skip_n*.json")).read_text())
    assert meta["failed_cells"] == 4 and "diverged" in meta["status"][0][0][0]
