"""The experiment harness every script shares: flags, the (n, d) sweep, result files.

A script builds its parser with `experiment_parser`, writes a cell function
`cell(args, n, d, rng) -> dict of metric values (+ optional 'status', 'details')`
and hands both to `run`. The harness seeds each cell from (seed, n, d, trial) alone, shows a
progress bar, records failed solves and writes, per metric, an array of shape
(len(nvec), len(dvec), sample) with a JSON sidecar.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
from tqdm import tqdm

from convex import SOLVERS, SolveFailed

SCHEME_FLAGS = ("n", "d", "optw", "optx", "sample")  # always in a result's file name


class Parser(argparse.ArgumentParser):
    """argparse, but bad input is one line on stderr (exit 2), without the usage block."""

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


def experiment_parser(description, optw=(0, 1), solver=True):
    """The flags every experiment takes (reference.md §1); a script adds its own."""
    p = Parser(description=description)
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
    o = p.add_argument_group("output")
    o.add_argument("--save_folder", default="results", help="where result files go")
    o.add_argument("--save_details", action="store_true",
                   help="also store X, w, y, patterns and solution of every trial (npz)")
    if solver:
        p.add_argument("--solver", default="CLARABEL", choices=SOLVERS,
                       help="CVXPY solver; MOSEK needs a license")
    return p


def check_args(parser, args):
    """Reject bad input up front, before anything is computed or written."""
    if args.step > min(args.n, args.d):
        parser.error(f"--step {args.step} is larger than --n {args.n} or --d {args.d}: the grid is empty")
    if getattr(args, "solver", None) == "MOSEK":
        problem = mosek_problem()
        if problem:
            parser.error(f"--solver MOSEK: {problem}; use --solver CLARABEL (no license needed)")
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
    """One cell: (metric values, status, seconds, details). A failed solve is a status, not a crash."""
    t0 = time.perf_counter()
    try:
        out = dict(cell(args, n, d, cell_rng(args.seed, n, d, trial)))
        status = out.pop("status", "ok")
    except SolveFailed as e:
        out, status = {}, f"failed: {e}"
    details = out.pop("details", None)
    return out, status, time.perf_counter() - t0, details


def versions():
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("numpy", "scipy", "cvxpy", "clarabel", "scs", "mosek", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def atomic_save(path, write):
    """Write through a temporary file in the same folder, then rename: never a half file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(parser, cell, metrics, result_flags=(), argv=None):
    """Parse flags, sweep the grid with `cell`, save one array per metric; returns main path.

    `metrics`: names of the values the cell returns; the first is the main result, stored
    under the bare scheme name (e.g. rec_rate_skip_n400_d100_w0_X0_sample5.npy), the others
    with their name inserted (minnrm_skip_dis_test_n400_...).
    """
    args = parser.parse_args(argv)
    check_args(parser, args)
    script = Path(parser.prog).stem
    tail = result_tail(parser, args, result_flags)
    folder = Path(args.save_folder)
    nvec, dvec = grid(args)
    shape = (len(nvec), len(dvec), args.sample)
    values = {}  # allocated at a metric's first value: a metric may be a vector (a loss curve)
    status = np.full(shape, "", dtype=object)
    seconds = np.zeros(shape)
    details_dir = folder / f"{script}_{tail}_details"
    tmp_details = folder / f".tmp-{script}_{tail}_details"
    if args.save_details:
        shutil.rmtree(tmp_details, ignore_errors=True)
        tmp_details.mkdir()
    start = time.time()
    try:
        with tqdm(total=int(np.prod(shape)), desc=script, unit="cell", file=sys.stderr,
                  mininterval=1.0, dynamic_ncols=True) as bar:
            for i, n in enumerate(nvec):
                for j, d in enumerate(dvec):
                    for t in range(args.sample):
                        out, status[i, j, t], seconds[i, j, t], details = run_cell(cell, args, n, d, t)
                        for m, v in out.items():
                            if m not in values:
                                values[m] = np.full(shape + np.shape(v), np.nan)
                            values[m][i, j, t] = v
                        if args.save_details and details is not None:
                            np.savez_compressed(tmp_details / f"n{n}_d{d}_trial{t}.npz", **details)
                        bar.update()
    except BaseException:
        shutil.rmtree(tmp_details, ignore_errors=True)
        raise
    failed = int(sum(s.startswith("failed") for s in status.flat))
    files = {m: f"{script}_{tail}.npy" if k == 0 else f"{script}_{m}_{tail}.npy"
             for k, m in enumerate(metrics)}
    meta = dict(experiment=script, flags=vars(args), argv=sys.argv if argv is None else list(argv),
                nvec=nvec, dvec=dvec, files=files, versions=versions(),
                date=datetime.datetime.now().isoformat(timespec="seconds"),
                wall_seconds=round(time.time() - start, 3), failed_cells=failed,
                status=status.tolist(), cell_seconds=np.round(seconds, 4).tolist())
    for m, name in files.items():
        array = values.get(m, np.full(shape, np.nan))
        atomic_save(folder / name, lambda tmp: np.save(tmp, array))
        sidecar = json.dumps(dict(meta, metric=m), indent=1)
        atomic_save((folder / name).with_suffix(".json"), lambda tmp: Path(tmp).write_text(sidecar))
    if args.save_details:
        shutil.rmtree(details_dir, ignore_errors=True)
        tmp_details.rename(details_dir)
    print(f"{script}: {status.size} cells in {meta['wall_seconds']:.1f} s, {failed} failed solves"
          + (f", details in {details_dir}" if args.save_details else ""))
    main = folder / files[metrics[0]]
    print(main)
    return main
