"""The experiment harness every script shares: flags, the (n, d) sweep, result files.

A script builds its parser with `experiment_parser`, writes a cell function
`cell(args, n, d, rng) -> dict of metric values (+ optional 'status', 'details')`
and hands both to `run`. The harness seeds each cell from (seed, n, d, trial) alone, runs the
cells on all cores (or a Dask cluster), persists each finished cell at once so that a re-run
resumes, and writes per metric an array of shape (len(nvec), len(dvec), sample) with a JSON
sidecar.
"""
import argparse
import datetime
import json
import os
import pickle
import platform
import sqlite3
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed, parallel_config
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from convex import SOLVERS, SolveFailed

ROOT = Path(__file__).resolve().parent
NOT_RESULT_FLAGS = ("save_folder", "save_details", "jobs", "scheduler", "fresh")  # how, not what


class Parser(argparse.ArgumentParser):
    """argparse, but bad input is one line on stderr (exit 2), without the usage block.

    `add_check(fn)` adds a check of the parsed flags together (fn(args) -> message or None),
    run right after parsing, before any work.
    """

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.checks = []

    def add_check(self, check):
        self.checks.append(check)

    def parse_known_args(self, args=None, namespace=None):
        ns, rest = super().parse_known_args(args, namespace)
        for check in self.checks:
            message = check(ns)
            if message:
                self.error(message)
        return ns, rest

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text):
    value = float(text)
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def nonnegative_float(text):
    value = float(text)
    if not value >= 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def experiment_parser(description, solver=True, neurons=False, training=False):
    """The flags every experiment takes (reference.md §1); a script adds its own.

    neurons: k = --neu planted ReLU neurons and their --optw 0/1/2 (normalization-layer,
    plain-ReLU and condition scripts) instead of one planted linear neuron (--optw 0/1).
    training: the flags of the PyTorch scripts (reference §5), see TRAINING_FLAGS.
    """
    p = Parser(description=description)
    optw = (0, 1, 2) if neurons else (0, 1)
    g = p.add_argument_group("grid and data")
    g.add_argument("--n", type=positive_int, default=400, help="largest sample count N (grid 'step'..N)")
    g.add_argument("--d", type=positive_int, default=100, help="largest dimension D (grid 'step'..D)")
    g.add_argument("--step", type=positive_int, default=10, help="grid spacing of n and d")
    g.add_argument("--sample", type=positive_int, default=5, help="independent trials per (n, d) cell")
    g.add_argument("--sigma", type=nonnegative_float, default=0.0, help="noise level: z = sigma randn(n)/sqrt(n)")
    g.add_argument("--optw", type=int, default=0, choices=optw, help="planted weights (see README)")
    g.add_argument("--optx", type=int, default=0, choices=(0, 1, 2, 3),
                   help="data: 0 Gaussian, 1 cubic, 2 whitened, 3 cubic then whitened")
    g.add_argument("--seed", type=int, default=0, help="a cell's data depend only on (seed, n, d, trial)")
    if solver:
        p.add_argument("--solver", default="fast", choices=SOLVERS,
                       help="fast: our certified solver (fast_solver.py); or a CVXPY solver, "
                            "CLARABEL, SCS, MOSEK (needs a license)")
    o = p.add_argument_group("output and execution")
    o.add_argument("--save_folder", default="results", help="where result files go")
    o.add_argument("--save_details", action="store_true",
                   help="also store X, w, y, patterns and solution of every trial (npz)")
    o.add_argument("--jobs", type=positive_int, default=len(os.sched_getaffinity(0)),
                   help="worker processes on this machine (default: all cores)")
    o.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run the cells on this Dask distributed scheduler instead")
    o.add_argument("--fresh", action="store_true", help="forget the finished cells of an earlier run")
    p.add_check(lambda a: f"--step {a.step} is larger than --n {a.n} or --d {a.d}: the grid is empty"
                if a.step > min(a.n, a.d) else None)
    if neurons:
        g.add_argument("--neu", type=positive_int, default=1,
                       help="number k of planted ReLU neurons (optw: 0 Gaussian, 1 e_1..e_k, 2 (u, -u))")
        p.add_check(lambda a: f"--optw 2 plants the pair (u, -u): it needs --neu 2, got --neu {a.neu}"
                    if a.optw == 2 and a.neu != 2 else None)
    if training:
        import networks  # torch: only for the training scripts
        t = p.add_argument_group("training")
        t.add_argument("--epochs", type=positive_int, default=400)
        t.add_argument("--lr", type=positive_float, default=2e-3, help="learning rate")
        t.add_argument("--beta", type=nonnegative_float, default=1e-6, help="weight decay")
        t.add_argument("--optimizer", default="adamw", choices=sorted(networks.OPTIMIZERS),
                       help="adamw: decoupled decay (paper); adam: coupled L2 penalty")
        t.add_argument("--m", type=positive_int, default=None, help="hidden width (default n + 1)")
        t.add_argument("--device", type=networks.device, default="cpu",
                       help="torch device: cpu (default), cuda, cuda:1, ...")
    return p


TRAINING_FLAGS = ["epochs", "lr", "beta", "optimizer", "m"]  # the result-changing ones


def check_environment(parser, args):
    """Checks that touch the outside world: solver license, save folder."""
    if getattr(args, "solver", None) == "MOSEK":
        problem = mosek_problem()
        if problem:
            parser.error(f"--solver MOSEK: {problem}; use --solver fast or CLARABEL (no license needed)")
    try:
        Path(args.save_folder).mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=args.save_folder).close()
    except OSError as e:
        parser.error(f"cannot write to --save_folder {args.save_folder}: {e.strerror or e}")


def mosek_problem():
    """None if MOSEK can solve here, else why not (not installed, no license)."""
    try:
        import mosek  # noqa: F401
    except ImportError:
        return "MOSEK is not installed (pip install mosek, plus a license file)"
    import cvxpy as cp
    x = cp.Variable(1)
    try:
        cp.Problem(cp.Minimize(cp.norm(x - 1)), []).solve(solver="MOSEK")
    except Exception as e:  # MOSEK reports a missing license as any of several errors
        return f"MOSEK is installed but cannot solve ({str(e).splitlines()[0][:120]}); is a license installed?"
    return None


def grid(args):
    return list(range(args.step, args.n + 1, args.step)), list(range(args.step, args.d + 1, args.step))


def cell_rng(seed, n, d, trial):
    """The generator of one cell: depends on (seed, n, d, trial) only, never on sweep order."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(n, d, trial)))


def result_tail(parser, args, result_flags):
    """File-name tail: the original scheme plus every result-changing flag not at its default."""
    tail = f"n{args.n}_d{args.d}_w{args.optw}_X{args.optx}_sample{args.sample}"
    for flag in ("step", "sigma", "seed", "solver") + tuple(result_flags):
        value = getattr(args, flag, None)
        if value is not None and value != parser.get_default(flag):
            tail += f"_{flag}{value}"
    return tail


def run_cell(cell, args, n, d, trial):
    """One cell: ((n, d, trial), metric values, status, seconds, details).

    One BLAS/torch thread per cell, in every mode, so that serial, process-parallel and Dask
    runs do the same floating-point operations and give identical arrays. A failed solve is a
    status, not a crash.
    """
    if "torch" in sys.modules:  # only the training scripts import torch
        sys.modules["torch"].set_num_threads(1)
    t0 = time.perf_counter()
    with threadpool_limits(1):
        try:
            out = dict(cell(args, n, d, cell_rng(args.seed, n, d, trial)))
            status = out.pop("status", "ok")
        except SolveFailed as e:
            out, status = {}, f"failed: {e}"
    details = out.pop("details", None)
    return (n, d, trial), out, status, time.perf_counter() - t0, details


class CellStore:
    """Finished cells in SQLite, one committed row each: a crash loses at most the cells in flight.

    The file is named after the result, so only a run with the same result-changing flags
    finds it; the flags are stored too and checked. `run` numbers each invocation, so the rows
    tell which run computed which cell.
    """

    def __init__(self, path, fingerprint, fresh):
        self.path = Path(path)
        if fresh:
            for suffix in ("", "-wal", "-shm"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=WAL")  # each commit survives a kill -9 of this process
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self.db.execute("CREATE TABLE IF NOT EXISTS cells (n INT, d INT, trial INT, run INT, status TEXT,"
                        " seconds REAL, out BLOB, PRIMARY KEY (n, d, trial))")
        old = self.db.execute("SELECT value FROM meta WHERE key='flags'").fetchone()
        if old and old[0] != fingerprint:
            self.db.execute("DELETE FROM cells")  # same name, other flags: nothing to resume
        self.db.execute("INSERT OR REPLACE INTO meta VALUES ('flags', ?)", (fingerprint,))
        row = self.db.execute("SELECT MAX(run) FROM cells").fetchone()
        self.run = (row[0] or 0) + 1
        self.db.commit()

    def done(self):
        rows = self.db.execute("SELECT n, d, trial, status, seconds, out FROM cells")
        return {(n, d, t): (pickle.loads(out), status, seconds) for n, d, t, status, seconds, out in rows}

    def put(self, key, out, status, seconds):
        self.db.execute("INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (*key, self.run, status, seconds, pickle.dumps(out)))
        self.db.commit()

    def close(self):
        self.db.close()


def connect(parser, address):
    """A Dask client for --scheduler, with this repo's modules shipped to the workers."""
    try:
        from distributed import Client
    except ImportError:
        parser.error("--scheduler needs dask.distributed: pip install 'dask[distributed]'")
    if not address.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        parser.error(f"--scheduler {address}: expected an address like tcp://HOST:PORT")
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as e:
        parser.error(f"cannot reach the Dask scheduler at {address}: {str(e).splitlines()[0]}")
    # workers need not share our files: send every module of this repo a cell may import
    # (also lazily, like fast_solver), small files all
    for path in sorted(ROOT.glob("*.py")):
        client.upload_file(str(path), load=False)
    return client


def map_cells(cell, args, todo, client):
    """Yield run_cell results as they finish: serial for --jobs 1, else joblib (loky or Dask)."""
    calls = (delayed(run_cell)(cell, args, *key) for key in todo)
    if client is None and args.jobs == 1:
        yield from (f(*a, **kw) for f, a, kw in calls)
        return
    # run_cell limits threads itself; loky also sets the workers' environment before imports
    backend = (dict(backend="dask", n_jobs=-1) if client
               else dict(backend="loky", n_jobs=args.jobs, inner_max_num_threads=1))
    with parallel_config(**backend):
        yield from Parallel(return_as="generator_unordered", pre_dispatch="2*n_jobs")(calls)


def versions():
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("numpy", "scipy", "cvxpy", "clarabel", "scs", "mosek", "torch", "joblib", "distributed"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def atomic_save(path, write):
    """Write through a temporary file in the same folder, then rename: never a half file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-", suffix=path.suffix)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a result file is as readable as any other
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_figure(parser, fig, out):
    """Write a matplotlib figure atomically; an unwritable path is a usage error. Prints it."""
    try:
        atomic_save(out, lambda tmp: fig.savefig(tmp, dpi=130))
    except OSError as e:
        parser.error(f"cannot write --out {out}: {e.strerror or e}")
    print(out)
    return out


def run(parser, cell, metrics, result_flags=(), argv=None):
    """Parse flags, sweep the grid with `cell`, save one array per metric; returns main path.

    `metrics`: names of the values the cell returns; the first is the main result, stored
    under the bare scheme name (e.g. rec_rate_skip_n400_d100_w0_X0_sample5.npy), the others
    with their name inserted (minnrm_skip_dis_test_n400_...). Finished cells are kept in
    `<main name>.cells.sqlite`; running the same command again computes only the missing ones.
    """
    args = parser.parse_args(argv)
    check_environment(parser, args)
    client = connect(parser, args.scheduler) if args.scheduler else None
    script = Path(parser.prog).stem
    tail = result_tail(parser, args, result_flags)
    folder = Path(args.save_folder)
    for leftover in folder.glob(f".tmp-{script}*{tail}*"):  # from a run killed while writing
        leftover.unlink()
    nvec, dvec = grid(args)
    keys = [(n, d, t) for n in nvec for d in dvec for t in range(args.sample)]
    fingerprint = json.dumps({k: v for k, v in sorted(vars(args).items()) if k not in NOT_RESULT_FLAGS})
    store = CellStore(folder / f"{script}_{tail}.cells.sqlite", fingerprint, args.fresh)
    details_dir = folder / f"{script}_{tail}_details"
    if args.save_details:
        details_dir.mkdir(exist_ok=True)
    done = store.done()
    todo = [k for k in keys if k not in done]
    start = time.time()
    try:
        with tqdm(total=len(keys), initial=len(keys) - len(todo), desc=script, unit="cell",
                  file=sys.stderr, mininterval=1.0, dynamic_ncols=True) as bar:
            for key, out, status, seconds, details in map_cells(cell, args, todo, client):
                store.put(key, out, status, seconds)
                if args.save_details and details is not None:
                    n, d, t = key
                    atomic_save(details_dir / f"n{n}_d{d}_trial{t}.npz",
                                lambda tmp: np.savez_compressed(tmp, **details))
                bar.update()
    except KeyboardInterrupt:
        saved = len(store.done())
        store.close()
        print(f"\n{script}: interrupted; {saved} of {len(keys)} cells are saved in {store.path}. "
              "Run the same command again to finish the rest.", file=sys.stderr)
        raise SystemExit(130)
    finally:
        if client is not None:
            client.close()
    done = store.done()
    store.close()
    index = {key: pos for pos, key in enumerate(keys)}
    shape = (len(nvec), len(dvec), args.sample)
    values = {}  # allocated at a metric's first value: a metric may be a vector (a loss curve)
    status = np.full(shape, "", dtype=object)
    seconds = np.zeros(shape)
    for key, (out, status_, seconds_) in done.items():
        pos = np.unravel_index(index[key], shape)
        status[pos], seconds[pos] = status_, seconds_
        for m, v in out.items():
            if m not in values:
                values[m] = np.full(shape + np.shape(v), np.nan)
            values[m][pos] = v
    failed = int(sum(s.startswith("failed") for s in status.flat))
    files = {m: f"{script}_{tail}.npy" if k == 0 else f"{script}_{m}_{tail}.npy"
             for k, m in enumerate(metrics)}
    meta = dict(experiment=script, flags=vars(args), argv=sys.argv if argv is None else list(argv),
                nvec=nvec, dvec=dvec, files=files, versions=versions(),
                date=datetime.datetime.now().isoformat(timespec="seconds"),
                wall_seconds=round(time.time() - start, 3), computed_cells=len(todo),
                resumed_cells=len(keys) - len(todo), failed_cells=failed,
                status=status.tolist(), cell_seconds=np.round(seconds, 4).tolist())
    for m, name in files.items():
        array = values.get(m, np.full(shape, np.nan))
        atomic_save(folder / name, lambda tmp: np.save(tmp, array))
        sidecar = json.dumps(dict(meta, metric=m), indent=1)
        atomic_save((folder / name).with_suffix(".json"), lambda tmp: Path(tmp).write_text(sidecar))
    resumed = f" ({len(keys) - len(todo)} resumed)" if len(todo) < len(keys) else ""
    print(f"{script}: {len(keys)} cells{resumed} in {meta['wall_seconds']:.1f} s, {failed} failed solves"
          + (f", details in {details_dir}" if args.save_details else ""))
    main = folder / files[metrics[0]]
    print(main)
    return main
