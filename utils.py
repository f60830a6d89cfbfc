"""The experiment harness every script shares: flags, the (n, d) sweep, running it.

A script builds its parser with `experiment_parser`, writes a cell function
`cell(args, n, d, rng) -> dict of metric values (+ optional 'status', 'details')`
and hands both to `run`. The harness seeds each cell from (seed, n, d, trial) alone, runs the
cells on all cores (or a Dask cluster), persists each finished cell at once so that a re-run
resumes, and writes per metric an array of shape (len(nvec), len(dvec), sample) with a JSON
sidecar (planted.results).
"""
import datetime
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed, parallel_config
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from planted import results
from planted.cli import Parser, default_jobs, nonnegative_float, positive_float, positive_int
from planted.solution import SolveFailed
from planted.solve import SOLVERS

ROOT = Path(__file__).resolve().parent
NOT_RESULT_FLAGS = ("save_folder", "save_details", "jobs", "scheduler", "fresh")  # how, not what
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
                       help="fast: our certified solver (planted/solver); or a CVXPY solver, "
                            "CLARABEL, SCS, MOSEK (needs a license)")
    o = p.add_argument_group("output and execution")
    o.add_argument("--save_folder", default="results", help="where result files go")
    o.add_argument("--save_details", action="store_true",
                   help="also store X, w, y, patterns and solution of every trial (npz)")
    o.add_argument("--jobs", type=positive_int, default=default_jobs(),
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


def connect(parser, address):
    """A Dask client for --scheduler, with the scripts and the planted package shipped to the
    workers (they need not share our files)."""
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
    for path in sorted(ROOT.glob("*.py")):
        client.upload_file(str(path), load=False)
    with tempfile.TemporaryDirectory() as tmp:  # the package as one zip, put on the workers' path
        archive = Path(tmp) / "planted.zip"
        with zipfile.ZipFile(archive, "w") as z:
            for path in sorted((ROOT / "planted").rglob("*.py")):
                z.write(path, path.relative_to(ROOT))
        client.upload_file(str(archive), load=True)
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


def sweep(cell, args, keys, store, details_dir, client, script):
    """Compute the cells of `keys` not yet in `store`, committing each as it finishes."""
    done = store.done()
    todo = [k for k in keys if k not in done]
    try:
        with tqdm(total=len(keys), initial=len(keys) - len(todo), desc=script, unit="cell",
                  file=sys.stderr, mininterval=1.0, dynamic_ncols=True) as bar:
            for key, out, status, seconds, details in map_cells(cell, args, todo, client):
                store.put(key, out, status, seconds)
                if details_dir is not None and details is not None:
                    n, d, t = key
                    results.atomic_save(details_dir / f"n{n}_d{d}_trial{t}.npz",
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
    return len(todo)


def assemble(done, keys, shape):
    """Per metric an array of `shape` (+ the metric's own shape: a loss curve adds an epoch
    axis), NaN where a cell has no value; and the per-cell statuses and seconds."""
    index = {key: pos for pos, key in enumerate(keys)}
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


def run(parser, cell, metrics, result_flags=(), argv=None):
    """Parse flags, sweep the grid with `cell`, save one array per metric; returns main path.

    `metrics`: names of the values the cell returns; the first is the main result (see
    planted.results.file_names). Finished cells are kept in `<main name>.cells.sqlite`;
    running the same command again computes only the missing ones.
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
    store = results.CellStore(folder / f"{script}_{tail}.cells.sqlite", fingerprint, args.fresh)
    details_dir = folder / f"{script}_{tail}_details" if args.save_details else None
    if details_dir is not None:
        details_dir.mkdir(exist_ok=True)
    start = time.time()
    computed = sweep(cell, args, keys, store, details_dir, client, script)
    done = store.done()
    store.close()
    shape = (len(nvec), len(dvec), args.sample)
    values, status, seconds = assemble(done, keys, shape)
    failed = int(sum(s.startswith("failed") for s in status.flat))
    files = results.file_names(script, tail, metrics)
    meta = dict(experiment=script, flags=vars(args), argv=sys.argv if argv is None else list(argv),
                axes=list(results.SWEEP_AXES), nvec=nvec, dvec=dvec, files=files,
                versions=results.versions(), date=datetime.datetime.now().isoformat(timespec="seconds"),
                wall_seconds=round(time.time() - start, 3), computed_cells=computed,
                resumed_cells=len(keys) - computed, failed_cells=failed,
                status=status.tolist(), cell_seconds=np.round(seconds, 4).tolist())
    results.write(folder, files, {m: values.get(m, np.full(shape, np.nan)) for m in files}, meta)
    resumed = f" ({len(keys) - computed} resumed)" if computed < len(keys) else ""
    print(f"{script}: {len(keys)} cells{resumed} in {meta['wall_seconds']:.1f} s, {failed} failed solves"
          + (f", details in {details_dir}" if args.save_details else ""))
    main = folder / files[metrics[0]]
    print(main)
    return main
