"""The experiment harness every script shares: flags, the (n, d) sweep, running it.

A script builds its parser with `experiment_parser`, writes a cell function
`cell(args, n, d, rng) -> dict of metric values (+ optional 'status', 'details')`
and hands both to `run`. The harness seeds each cell from (seed, n, d, trial) alone, runs the
cells on all cores (or a Dask cluster), persists each finished cell at once so that a re-run
resumes, and writes per metric an array of shape (len(nvec), len(dvec), sample) with a JSON
sidecar (planted.results). A ratio grid (--dims, --ratios) has rows n/d instead of n: arrays
of shape (len(ratios), len(dims), sample), cell (round(ratio d), d, trial) at row ratio,
column d, the same cell, with the same data, as in a regular grid.
"""
import contextlib
import datetime
import errno
import glob
import itertools
import json
import math
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from planted import data, results
from planted.cli import (
    Given,
    Parser,
    check_memory,
    default_jobs,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_floats,
    positive_int,
    positive_ints,
    scheduler_address,
)
from planted.solution import SolveFailed
from planted.solve import SOLVERS

ROOT = Path(__file__).resolve().parent
# how a sweep runs, not what it computes
NOT_RESULT_FLAGS = ("save_folder", "save_details", "jobs", "scheduler", "worker_wait", "fresh", "insist")
BASE_FLAGS = ("n", "d", "optw", "optx", "sample")  # the original scheme's part of a name
RATIO_FLAGS = ("dims", "ratios")  # the ratio grid, named by its own head (ratio_head)
MAX_CELLS = 10**6
TRAINING_FLAGS = ["epochs", "lr", "beta", "optimizer", "m"]  # the result-changing ones
__all__ = ["Parser", "positive_int", "positive_float", "nonnegative_float", "experiment_parser", "run"]


def experiment_parser(description, solver=True, neurons=False, training=False):
    """The flags every experiment takes (docs/reference.md §1); a script adds its own.

    neurons: k = --neu planted ReLU neurons and their --optw 0/1/2 (normalization-layer,
    plain-ReLU and condition scripts) instead of one planted linear neuron (--optw 0/1).
    training: the flags of the PyTorch scripts (§5), see TRAINING_FLAGS.
    """
    p = Parser(description=description)
    optw = (0, 1, 2) if neurons else (0, 1)
    g = p.add_argument_group("grid and data")
    g.add_argument("--n", type=positive_int, default=400, action=Given,
                   help="largest sample count N (grid 'step'..N)")
    g.add_argument("--d", type=positive_int, default=100, action=Given,
                   help="largest dimension D (grid 'step'..D)")
    g.add_argument("--step", type=positive_int, default=10, action=Given, help="grid spacing of n and d")
    g.add_argument("--dims", type=positive_ints, default=None, metavar="D1,D2,...",
                   help="ratio grid (with --ratios, instead of --n/--d/--step): the dimensions d, "
                        "e.g. 25,50,100,200,400")
    g.add_argument("--ratios", type=positive_floats, default=None, metavar="START:STOP:STEP",
                   help="ratio grid: the values of n/d, n = round(ratio d), e.g. 1.5:2.5:0.05 "
                        "(stop included) or 1.5,2,2.5")
    g.add_argument("--sample", type=positive_int, default=5, help="independent trials per (n, d) cell")
    g.add_argument("--sigma", type=nonnegative_float, default=0.0, help="noise level: z = sigma randn(n)/sqrt(n)")
    g.add_argument("--optw", type=int, default=0, choices=optw, help="planted weights (see README)")
    g.add_argument("--optx", type=int, default=0, choices=tuple(data.OPTX),
                   help="data: " + ", ".join(f"{k} {name}" for k, name in data.OPTX.items()))
    g.add_argument("--seed", type=nonnegative_int, default=0, help="a cell's data depend only on (seed, n, d, trial)")
    if solver:
        p.add_argument("--solver", default="fast", choices=SOLVERS,
                       help="fast: our certified solver (planted/solver); or a CVXPY solver, "
                            "CLARABEL, SCS, MOSEK (needs a license)")
    o = p.add_argument_group("output and execution")
    o.add_argument("--save_folder", default="results", help="where result files go")
    o.add_argument("--save_details", action="store_true",
                   help="also store X, w, y, patterns and solution of every trial (npz)")
    o.add_argument("--jobs", type=positive_int, default=default_jobs(),
                   help="worker processes on this machine (default: all cores)")
    o.add_argument("--scheduler", type=scheduler_address, default=None, metavar="tcp://HOST:PORT",
                   help="run the cells on this Dask distributed scheduler instead")
    o.add_argument("--worker_wait", type=positive_float, default=300, metavar="SECONDS",
                   help="with --scheduler: how long to wait when no worker is left before stopping"
                        " (a re-run resumes)")
    o.add_argument("--fresh", action="store_true", help="forget the finished cells of an earlier run")
    o.add_argument("--insist", action="store_true",
                   help="run even when the grid looks too large for this machine")
    p.add_check(lambda a: ratio_grid_problem(p, a))
    p.add_check(lambda a: f"--step {a.step} is larger than --n {a.n} or --d {a.d}: the grid is empty"
                if a.step > min(a.n, a.d) else None)
    if neurons:
        g.add_argument("--neu", type=positive_int, default=1,
                       help="number k of planted ReLU neurons (optw: 0 Gaussian, 1 e_1..e_k, 2 (u, -u))")
        p.add_check(lambda a: f"--optw 2 plants the pair (u, -u): it needs --neu 2, got --neu {a.neu}"
                    if a.optw == 2 and a.neu != 2 else None)
    if training:
        from planted import networks  # torch: only for the training scripts
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


def check_environment(parser, args):
    """Checks that touch the outside world: solver license, save folder."""
    if getattr(args, "solver", None) == "MOSEK":
        from planted import cvx  # loads cvxpy: only for a CVXPY solver
        problem = cvx.mosek_problem()
        if problem:
            parser.error(f"--solver MOSEK: {problem}; use --solver fast or CLARABEL (no license needed)")
    problem = results.check_folder(args.save_folder)
    if problem:
        parser.error(problem)


def ratio_grid_problem(parser, args):
    """Why --dims/--ratios cannot be used as given (a message), or None."""
    if (args.dims is None) != (args.ratios is None):
        given, missing = ("--dims", "--ratios") if args.ratios is None else ("--ratios", "--dims")
        return f"{given} needs {missing}: together they make the ratio grid n = round(ratio d)"
    regular = sorted(f"--{flag}" for flag in parser.given & {"n", "d", "step"})
    if args.dims is not None and regular:
        return (f"--dims/--ratios replace --n/--d/--step: give the ratio grid or {', '.join(regular)},"
                " not both")
    if args.dims is not None and ratio_n(args.ratios[0], args.dims[0]) < 1:
        return (f"--ratios {args.ratios[0]:g} with --dims {args.dims[0]} gives n = round("
                f"{args.ratios[0] * args.dims[0]:g}) = 0: every cell needs n >= 1")
    return None


def ratio_n(ratio, d):
    """n = round(ratio d), halves up (rounded to 9 decimals first: 1.55 * 10 is 15.5, not
    15.499...)."""
    return math.floor(round(ratio * d, 9) + 0.5)


@dataclass
class Grid:
    """The cells of a sweep: row i, column j holds the cells (n[i][j], dvec[j], trial).

    A regular grid (--n/--d/--step) has rows nvec, n[i][j] = nvec[i]; a ratio grid (--dims,
    --ratios) has rows ratios, n[i][j] = round(ratios[i] dvec[j]), where two ratios may share
    a cell (small d): it is computed once and stands at both places."""
    dvec: list
    n: list
    nvec: list = None
    ratios: list = None

    def keys(self, sample):
        """The cell key (n, d, trial) of every place of the result array, in its order."""
        return [(n, d, t) for row in self.n for n, d in zip(row, self.dvec) for t in range(sample)]

    def sidecar(self):
        """The sidecar's axes and grids: nvec and dvec, or ratios, dvec and the n matrix."""
        if self.ratios is None:
            return dict(axes=list(results.SWEEP_AXES), nvec=self.nvec, dvec=self.dvec)
        return dict(axes=list(results.RATIO_AXES), ratios=self.ratios, dvec=self.dvec, n=self.n)


def grid(args):
    """The Grid of the flags: the ratio grid of --dims/--ratios, else n = step, 2 step, ..., N
    and d = step, ..., D."""
    if args.ratios is not None:
        return Grid(dvec=args.dims, n=[[ratio_n(r, d) for d in args.dims] for r in args.ratios],
                    ratios=args.ratios)
    nvec, dvec = list(range(args.step, args.n + 1, args.step)), list(range(args.step, args.d + 1, args.step))
    return Grid(dvec=dvec, n=[[n] * len(dvec) for n in nvec], nvec=nvec)


def cell_rng(seed, n, d, trial):
    """The generator of one cell: depends on (seed, n, d, trial) only, never on sweep order."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(n, d, trial)))


def compact(values):
    """A sorted list as a file-name word: 'start-stop-step' where it is evenly spaced with 3 or
    more values, else the values joined by '-'. Unambiguous: in the first form the last number
    (the step) is below the second (the stop), in a sorted list it never is."""
    def word(v):
        return f"{v:.10g}"
    steps = np.round(np.diff(values), 10)
    if len(values) >= 3 and np.allclose(steps, steps[0], rtol=0, atol=1e-9):
        return "-".join(map(word, (values[0], values[-1], steps[0])))
    return "-".join(map(word, values))


def ratio_head(args):
    """The grid's part of a ratio-grid name: dims25-50-100-200-400_r1.5-2.5-0.05."""
    return f"dims{compact(args.dims)}_r{compact(args.ratios)}"


def result_tail(parser, args, result_flags):
    """File-name tail: the original scheme (its n{N}_d{D} replaced by `ratio_head` for a ratio
    grid), then every other result-changing flag not at its default (`result_flags` first, in
    their order), so that two runs share a name, and a cell store, only when they compute the
    same cells."""
    head = ratio_head(args) if getattr(args, "ratios", None) is not None else f"n{args.n}_d{args.d}"
    tail = f"{head}_w{args.optw}_X{args.optx}_sample{args.sample}"
    flags = dict.fromkeys(("step", "sigma", "seed", "solver", *result_flags, *vars(args)))
    for flag in flags:
        if flag in BASE_FLAGS or flag in RATIO_FLAGS or flag in NOT_RESULT_FLAGS or not hasattr(args, flag):
            continue
        value = getattr(args, flag)
        if value is None or value == parser.get_default(flag):
            continue
        tail += f"_{flag}" if value is True else f"_{flag}{value}"
    return tail


def fingerprint(args):
    """The result-changing flags as JSON, stored with the cells and checked on resuming (the
    ratio-grid flags only when given, so that the stores of regular grids keep theirs)."""
    return json.dumps({k: v for k, v in sorted(vars(args).items())
                       if k not in NOT_RESULT_FLAGS and not (k in RATIO_FLAGS and v is None)})


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
        except MemoryError:
            out, status = {}, "failed: out of memory"
    details = out.pop("details", None)
    return (n, d, trial), out, status, time.perf_counter() - t0, details


class Terminated(KeyboardInterrupt):
    """SIGTERM (scancel, timeout, kill): stopped like Ctrl-C, with the resume line."""


def _terminate(signum, frame):
    raise Terminated


class NoWorkers(RuntimeError):
    """The Dask cluster has had no worker for --worker_wait seconds."""


def connect(parser, address):
    """A Dask client for --scheduler, with the scripts and the planted package shipped to the
    workers (they need not share our files)."""
    try:
        from distributed import Client
    except ImportError:
        parser.error("--scheduler needs dask.distributed: pip install 'dask[distributed]'")
    try:
        client = Client(address, timeout="10s")
    except Exception as e:  # noqa: BLE001 -- OSError, TimeoutError, or TypeError for tls:// without security
        parser.error(f"cannot connect to the Dask scheduler at {address}: "
                     f"{(str(e).splitlines() or [type(e).__name__])[0]}")
    for path in sorted(ROOT.glob("*.py")):
        client.upload_file(str(path), load=False)
    with tempfile.TemporaryDirectory() as tmp:  # the package as one zip, put on the workers' path
        archive = Path(tmp) / "planted.zip"
        with zipfile.ZipFile(archive, "w") as z:
            for path in sorted((ROOT / "planted").rglob("*.py")):
                z.write(path, path.relative_to(ROOT))
        client.upload_file(str(archive), load=True)
    return client


def run_chunk(cell, args, keys):
    return [run_cell(cell, args, *key) for key in keys]


def _watch_parent(parent):
    """In a worker process: exit when the sweep that started it is gone (kill -9 leaves no
    handler to stop its workers, and they would compute for nobody)."""
    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def where(args, client):
    """Where the cells run, in words, for the start of a sweep."""
    if client is None:
        return "in this process" if args.jobs == 1 else f"on {args.jobs} local processes"
    info = client.scheduler_info()
    threads = sum(w["nthreads"] for w in info["workers"].values())
    workers = len(info["workers"])
    return (f"on the Dask cluster at {client.scheduler.address}: {workers} worker{'s' * (workers != 1)},"
            f" {threads} thread{'s' * (threads != 1)}; {dashboard(client)}")


def dashboard(client):
    """The cluster's dashboard link, if it answers: a scheduler started with --no-dashboard, or
    without bokeh, still serves HTTP on the port it reports, but not the dashboard page."""
    from urllib.request import urlopen
    try:
        urlopen(client.dashboard_link, timeout=1.0).close()
    except OSError:  # URLError and HTTPError (404) are OSErrors
        return "no dashboard"
    return f"dashboard {client.dashboard_link}"


def map_cells(cell, args, todo, client):
    """Yield run_cell results as they finish: in this process for --jobs 1, else on a local
    process pool or the Dask cluster."""
    if client is not None:
        yield from dask_cells(cell, args, todo, client)
    elif args.jobs == 1:
        yield from (run_cell(cell, args, *key) for key in todo)
    else:
        # loky: cloudpickle ships the scripts' cell functions; one BLAS thread set before imports
        from joblib.externals.loky import get_reusable_executor
        # SIGINT blocked while the pool starts: its workers (and the thread that restarts them)
        # inherit the mask, so a terminal's Ctrl-C, sent to the whole process group, reaches
        # only this process, which stops them; a Ctrl-C meanwhile is delivered on unblocking
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            pool = get_reusable_executor(max_workers=args.jobs, timeout=60, initializer=_watch_parent,
                                         initargs=(os.getpid(),), env={"OMP_NUM_THREADS": "1"})
            pool.submit(int).result()  # the workers are running
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        # a few cells in flight per worker, not the whole grid (a million futures)
        todo, running = iter(todo), set()
        try:
            while True:
                running.update(pool.submit(run_cell, cell, args, *key)
                               for key in itertools.islice(todo, 2 * args.jobs - len(running)))
                if not running:
                    break
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        finally:  # Ctrl-C, SIGTERM or an error: no worker goes on computing
            if running:
                # kill the workers before shutdown: the pool then sees them broken and clears
                # its queue (shutdown first races with the cells still queued)
                for pid in list(getattr(pool, "_processes", {})):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                pool.shutdown(wait=True, kill_workers=True)


def chunks(todo, threads):
    """Dask tasks of several cells each (a task costs tens of milliseconds of overhead): about
    eight per worker thread, at most 25 cells each, the cells dealt out in turn so that the
    large and the small cells of the grid mix in every task."""
    size = max(1, min(25, len(todo) // (8 * max(threads, 1))))
    count = -(-len(todo) // size)
    return [todo[i::count] for i in range(count)]


def dask_cells(cell, args, todo, client):
    """run_cell results from the Dask cluster. A task whose workers keep dying (out of memory,
    say) is split into single cells; a single cell that kills its workers is a failed cell. With
    no worker left the sweep waits --worker_wait seconds, then stops (NoWorkers)."""
    from distributed import wait
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    threads = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
    pending = {client.submit(run_chunk, cell, args, keys, pure=False): keys for keys in chunks(todo, threads)}
    alone_since = None
    try:
        while pending:
            try:
                finished = wait(list(pending), timeout=2.0, return_when="FIRST_COMPLETED").done
            except TimeoutError:
                finished = ()
            for future in finished:
                keys = pending.pop(future)
                try:
                    yield from future.result()
                except (KilledWorker, FutureCancelledError):
                    if len(keys) > 1:
                        pending.update({client.submit(run_chunk, cell, args, [k], pure=False): [k]
                                        for k in keys})
                    else:
                        yield keys[0], {}, "failed: its Dask worker died (out of memory?)", 0.0, None
            if finished:
                continue
            if client.scheduler_info()["workers"]:
                alone_since = None
            elif alone_since is None:
                alone_since = time.time()
                print(f"\n{Path(sys.argv[0]).stem}: no Dask worker is connected to {client.scheduler.address};"
                      f" waiting up to {args.worker_wait:g} s (--worker_wait) for one", file=sys.stderr)
            elif time.time() - alone_since > args.worker_wait:
                raise NoWorkers(f"no Dask worker for {args.worker_wait:g} s")
    finally:
        for future in pending:
            future.cancel()


def disk_full(e):
    """Whether an error from writing results or the store means the disk (or quota) is full."""
    if isinstance(e, sqlite3.OperationalError):
        return "full" in str(e) or "disk I/O" in str(e)
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def stop(script, store, total, why, code):
    """Stop a sweep with the number of saved cells and the line that resumes it."""
    try:
        saved = len(store.done())
    except results.StoreError:
        saved = "some"
    store.close()
    print(f"\n{script}: {why}; {saved} of {total} cells are saved in {store.path}. "
          "Run the same command again to finish the rest.", file=sys.stderr)
    raise SystemExit(code)


def details_path(details_dir, key):
    n, d, t = key
    return details_dir / f"n{n}_d{d}_trial{t}.npz"


def sweep(cell, args, keys, store, details_dir, client, script):
    """Compute the cells of `keys` not yet in `store` (and, for --save_details, the finished
    ones whose details file is missing), committing each as it finishes."""
    done = store.done()
    todo = [k for k in keys if k not in done or (details_dir is not None and not done[k][1].startswith("failed")
                                                 and not details_path(details_dir, k).exists())]
    if todo:
        print(f"{script}: {len(todo)} of {len(keys)} cells to compute {where(args, client)}", file=sys.stderr)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with tqdm(total=len(keys), initial=len(keys) - len(todo), desc=script, unit="cell",
                  file=sys.stderr, mininterval=1.0, dynamic_ncols=True) as bar:
            for key, out, status, seconds, details in map_cells(cell, args, todo, client):
                if details_dir is not None and details is not None:
                    results.atomic_save(details_path(details_dir, key),
                                        lambda tmp: np.savez_compressed(tmp, **details))
                store.put(key, out, status, seconds)
                bar.update()
    except KeyboardInterrupt as e:
        stop(script, store, len(keys), "terminated" if isinstance(e, Terminated) else "interrupted",
             143 if isinstance(e, Terminated) else 130)
    except NoWorkers as e:
        stop(script, store, len(keys), f"stopped: {e}", 1)
    except (OSError, sqlite3.OperationalError) as e:
        if not disk_full(e):
            raise
        stop(script, store, len(keys), f"cannot write to {Path(args.save_folder).resolve()}, the disk is full"
             f" ({e.strerror if isinstance(e, OSError) else e}); free some space", 2)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if client is not None:
            client.close()
    return len(todo)


def assemble(done, keys, shape):
    """Per metric an array of `shape` (+ the metric's own shape: a loss curve adds an epoch
    axis), NaN where a cell has no value; and the per-cell statuses and seconds. `keys`: the
    cell key of every place, in the array's order (a cell of a ratio grid may stand at two)."""
    index = {}
    for pos, key in enumerate(keys):
        index.setdefault(key, []).append(pos)
    values = {}  # allocated at a metric's first value
    status = np.full(shape, "", dtype=object)
    seconds = np.zeros(shape)
    for key, (out, status_, seconds_) in done.items():
        pos = np.unravel_index(index[key], shape)
        status[pos], seconds[pos] = status_, seconds_
        for m, v in out.items():
            if m not in values:
                values[m] = np.full(shape + np.shape(v), np.nan)
            values[m][pos] = v
    return values, status, seconds


def check_size(parser, args, metrics):
    """Refuse, before any work, a grid this machine cannot hold: too many cells to list, or a
    largest cell whose data alone (X, its test copy and, for the convex programs, the patterns)
    exceed the memory. A lower bound, so it never refuses a grid that would fit; --insist
    overrides it."""
    if args.insist:
        return
    if args.ratios is not None:
        rows, cols, what = len(args.ratios), len(args.dims), "fewer --ratios or --dims"
        n, d = ratio_n(args.ratios[-1], args.dims[-1]), args.dims[-1]
    else:
        rows, cols, what = args.n // args.step, args.d // args.step, "a larger --step"
        n, d = rows * args.step, cols * args.step
    cells = rows * cols * args.sample
    if cells > MAX_CELLS:
        parser.error(f"the grid has {cells:,} cells ({rows:,} {'n/d' if args.ratios else 'n'} x {cols:,} d x"
                     f" {args.sample} trials), more than {MAX_CELLS:,}: use {what} or fewer --sample"
                     " (or --insist)")
    patterns = max(2 * n, 50) if hasattr(args, "solver") else 0
    need = 16 * n * d + n * patterns + 8 * cells * len(metrics)
    check_memory(parser, need, f"the largest cell (n {n:,}, d {d:,})",
                 "use smaller --ratios/--dims" if args.ratios is not None else "use smaller --n/--d")


def open_store(parser, path, args):
    try:
        return results.CellStore(path, fingerprint(args), args.fresh)
    except results.StoreError as e:
        parser.error(str(e))
    except OSError as e:
        parser.error(f"cannot open the cell store {path}: {e.strerror or e}")


def run(parser, cell, metrics, result_flags=(), argv=None):
    """Parse flags, sweep the grid with `cell`, save one array per metric; returns main path.

    `metrics`: names of the values the cell returns; the first is the main result (see
    planted.results.file_names). Finished cells are kept in `<main name>.cells.sqlite`;
    running the same command again computes only the missing ones.
    """
    args = parser.parse_args(argv)
    if args.ratios is not None:  # the ratio grid replaces --n/--d/--step: none of its flags
        args.n = args.d = args.step = None
    check_size(parser, args, metrics)
    script = Path(parser.prog).stem
    tail = result_tail(parser, args, result_flags)
    folder = Path(args.save_folder)
    files = results.file_names(script, tail, metrics)
    # the cluster first: a scheduler that cannot be reached leaves no folder or store behind
    client = connect(parser, args.scheduler) if args.scheduler is not None else None
    try:
        check_environment(parser, args)
        store = open_store(parser, folder / f"{script}_{tail}.cells.sqlite", args)
    except SystemExit:
        if client is not None:
            client.close()
        raise
    # Left by a run of this command killed while writing; the store's lock says none is running.
    for name in [*files.values(), *(Path(f).with_suffix(".json").name for f in files.values())]:
        for leftover in folder.glob(f".tmp-{glob.escape(name)}-*"):
            leftover.unlink()
    cells = grid(args)
    places = cells.keys(args.sample)
    keys = list(dict.fromkeys(places))  # each distinct cell once
    details_dir = folder / f"{script}_{tail}_details" if args.save_details else None
    if details_dir is not None:
        details_dir.mkdir(exist_ok=True)
        for leftover in details_dir.glob(".tmp-*"):
            leftover.unlink()
    start = time.time()
    computed = sweep(cell, args, keys, store, details_dir, client, script)
    done = store.done()
    store.close()
    shape = (len(cells.n), len(cells.dvec), args.sample)
    values, status, seconds = assemble(done, places, shape)
    failed = sum(done[k][1].startswith("failed") for k in keys if k in done)
    meta = dict(experiment=script, flags=vars(args), argv=sys.argv if argv is None else list(argv),
                **cells.sidecar(), files=files,
                versions=results.versions(), date=datetime.datetime.now().isoformat(timespec="seconds"),
                wall_seconds=round(time.time() - start, 3), computed_cells=computed,
                resumed_cells=len(keys) - computed, failed_cells=failed,
                status=status.tolist(), cell_seconds=np.round(seconds, 4).tolist())
    try:
        results.write(folder, files, {m: values.get(m, np.full(shape, np.nan)) for m in files}, meta)
    except OSError as e:
        print(f"{script}: cannot write the result files to {folder.resolve()}: {e.strerror or e};"
              f" every cell is saved in {store.path}: free space and run the same command again",
              file=sys.stderr)
        raise SystemExit(2)
    resumed = f" ({len(keys) - computed} resumed)" if computed < len(keys) else ""
    print(f"{script}: {len(keys)} cells{resumed} in {meta['wall_seconds']:.1f} s, {failed} failed solves"
          + (f", {details_summary(details_dir, keys)}" if details_dir is not None else ""))
    main = folder / files[metrics[0]]
    print(main)
    return main


def details_summary(details_dir, keys):
    have = sum(details_path(details_dir, k).exists() for k in keys)
    if have == 0:
        return f"no details written (no cell returned any) in {details_dir}"
    return f"details of {have} of {len(keys)} cells in {details_dir}"
