"""Benchmark of the fast certified solver against CVXPY + Clarabel.

A fixed, seeded set of instances spanning the recovery transition (n/d from 1.5 to 4, both
sides of it, several (n, d) up to 400 x 100) is solved, in the same run, through the one solve
dispatch planted.solve with solver="CLARABEL" and with solver="fast" (planted.solver), for
each program form:

    relaxed / exact / train (beta = 1e-6), each with the skip neuron (planted linear neuron,
    docs/reference.md §1 skip data), without it (plain ReLU, one planted ReLU neuron whose
    pattern is the first one), and the normalization-layer programs of §3e (one planted neuron).

Per form it prints the median time ratio (CVXPY / fast), the max relative objective
difference, the number of recovery decisions that differ and, separately, the ties (the fast
solver's optimum is not unique: the planted model is not recovered, however a solver picks
its point). "fast higher by at most" is the largest signed difference (fast - CVXPY) /
CVXPY: negative means the certified fast objective is the lower one. The last line is the
overall median speed-up. With beta = 1e-6 the training objectives are about 1e-6, so
Clarabel's default absolute accuracy (about 1e-8) is up to a relative 1e-2 there: `--tight`
runs the reference with tolerances 1e-12 for that comparison (slower; timings then compare
against the tight reference). The fast solver pays a fixed overhead of a few tenths of a
second, so below n ~ 60 CVXPY is quicker; its gains are at the large cells.

    python bench_solvers.py --quick          # CI-sized, about a minute
    python bench_solvers.py                  # the full set (CVXPY needs ~40 s per 400 x 100 solve)
    python bench_solvers.py --forms relaxed-skip --sizes 400x100

`--scale` measures instead, without CVXPY, whole cells past the paper's grid (n = 4d for the
skip programs, 3d for the normalization layer with k = 2, up to 2000 x 500): per (program, n,
d) the set-up (data, patterns and, for the normalization layer, its blocks), the pattern
generation within it, the solve (with its certificate) and the peak memory, each cell in a
fresh process with one BLAS thread; then the growth exponents (log-log fit against n) and a
line per program against the targets of docs/solver.md, "Scale". `--lp` also times HiGHS on
the skip cells' all-ones LP, the decision the certificates replace, with the ratio.

    python bench_solvers.py --scale                          # the whole table (minutes)
    python bench_solvers.py --scale --forms relaxed-norm --sizes 1200x300
"""
import argparse
import multiprocessing
import resource
import sys
import time
import tracemalloc

import numpy as np

from planted import data, patterns, recovery, solve
from planted.cli import Parser, positive_int
from planted.solution import SolveFailed

FORMS = {  # name: (form, beta, kind)
    "relaxed-skip": ("relaxed", None, "skip"),
    "exact-skip": ("exact", None, "skip"),
    "train-skip": ("exact", 1e-6, "skip"),
    "relaxed-plain": ("relaxed", None, "plain"),
    "exact-plain": ("exact", None, "plain"),
    "train-plain": ("exact", 1e-6, "plain"),
    "relaxed-norm": ("relaxed", None, "norm"),
    "exact-norm": ("exact", None, "norm"),
    "train-norm": ("exact", 1e-6, "norm"),
}
TIGHT = dict(tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12, tol_ktratio=1e-10, max_iter=500)
QUICK_SIZES = [(20, 10), (30, 10), (40, 10), (30, 15), (60, 20)]
FULL_SIZES = [(20, 10), (30, 10), (40, 10), (60, 20), (80, 20), (75, 50), (100, 50), (150, 50),
              (200, 50), (150, 100), (200, 100), (300, 100), (400, 100)]
SCALE_FORMS = ("relaxed-skip", "exact-skip", "relaxed-norm")
SCALE_SIZES = {"skip": [(400, 100), (800, 200), (1200, 300), (1600, 400), (2000, 500)],
               "norm": [(300, 100), (600, 200), (900, 300), (1200, 300), (1500, 500)]}
# the targets of docs/solver.md "Scale": (n, d) -> what must hold there
CELL_SECONDS, PATTERN_SHARE = 5.0, 0.30  # skip programs at 2000 x 500
NORM_MEMORY = {(1200, 300): 2.0, (1500, 500): 8.0}  # GB, relaxed normalization layer, k = 2


def sizes_list(text):
    """--sizes: comma-separated NxD, both positive integers."""
    out = []
    for item in text.split(","):
        parts = item.strip().split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise argparse.ArgumentTypeError(f"expected NxD with positive integers N, D (e.g. 400x100), got {item!r}")
        out.append((int(parts[0]), int(parts[1])))
    return out


def instance(n, d, kind, seed):
    """Planted data (§1: Gaussian X and weights, no noise) and sampled patterns:
    skip: one planted linear neuron; plain / norm: one planted ReLU neuron, its pattern first
    (the normalization-layer blocks from recovery.norm_setup)."""
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(n, d, list(KINDS).index(kind))))
    if kind == "skip":
        inst = data.skip_instance(n, d, 0, 0, 0.0, rng)
        inst["M"] = patterns.skip_patterns(inst["X"], rng)
        return inst
    if kind == "plain":
        inst = data.plain_instance(n, d, 1, 0, 0, 0.0, rng)
        inst["M"], inst["cols"], inst["planted"] = recovery.plain_setup(inst, rng)
        return inst
    inst = data.norm_instance(n, d, 1, 0, 0, 0.0, rng)
    inst["B"], inst["cols"], inst["planted"] = recovery.norm_setup(inst, rng)
    return inst


KINDS = ("skip", "plain", "norm")


def run_solver(inst, form, beta, kind, fast, opts=None):
    """One program through planted.solve: solver "fast" or "CLARABEL" (with its settings opts)."""
    solver = "fast" if fast else "CLARABEL"
    if kind == "norm":
        return solve.solve_norm(inst["B"], inst["y"], form, beta, solver=solver, opts=opts)
    return solve.solve_relu(inst["X"], inst["M"], inst["y"], form, beta, kind == "skip", solver=solver,
                            opts=opts)


def rec(sol, inst, kind):
    """rec of §4: the planted model, every other block 0 (tolerance 1e-4)."""
    if kind == "skip":
        return recovery.skip_recovered(sol, inst["w"])
    return recovery.blocks_recovered(sol, inst["planted"])


def timed(f):
    t0 = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t0


def main(argv=None):
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the CI-sized subset (small sizes)")
    p.add_argument("--forms", default=None, help="comma-separated subset of " + ",".join(FORMS)
                   + f" (default: all; with --scale {','.join(SCALE_FORMS)})")
    p.add_argument("--sizes", type=sizes_list, default=None, help="comma-separated NxD list, overrides the set")
    p.add_argument("--seeds", type=positive_int, default=1, help="instances per (n, d)")
    p.add_argument("--verbose", action="store_true", help="one line per instance")
    p.add_argument("--tight", action="store_true",
                   help="Clarabel with tolerances 1e-12 (default 1e-8) as the reference: slower, but "
                        "accurate enough to compare the tiny objectives of the training forms")
    p.add_argument("--scale", action="store_true",
                   help="time whole cells up to 2000 x 500 (no CVXPY): set-up, solve, peak memory, growth")
    p.add_argument("--lp", action="store_true", help="--scale: also time HiGHS on the skip cells' all-ones LP")
    args = p.parse_args(argv)
    forms = args.forms.split(",") if args.forms else list(SCALE_FORMS if args.scale else FORMS)
    for f in forms:
        if f not in FORMS:
            p.error(f"unknown form {f}")
    if args.scale:
        return scale(forms, args.sizes, args.seeds, args.lp)
    if args.sizes:
        sizes = args.sizes
    else:
        sizes = QUICK_SIZES if args.quick else FULL_SIZES
    opts = TIGHT if args.tight else None
    all_ratios = []
    peak = 0
    for name in forms:
        form, beta, kind = FORMS[name]
        ratios, objdiff, worse, differ, ties, fails = [], 0.0, -np.inf, 0, 0, []
        for n, d in sizes:
            if kind == "norm" and n < d:
                continue  # the normalization programs need n >= d (§1)
            for seed in range(args.seeds):
                inst = instance(n, d, kind, seed)
                try:
                    ref, t_ref = timed(lambda: run_solver(inst, form, beta, kind, False, opts))
                except SolveFailed as e:
                    fails.append(f"{n}x{d}/{seed} CLARABEL: {e}")
                    continue
                tracemalloc.start()
                try:
                    sol, t_fast = timed(lambda: run_solver(inst, form, beta, kind, True))
                except SolveFailed as e:
                    fails.append(f"{n}x{d}/{seed} fast: {e}")
                    tracemalloc.stop()
                    continue
                peak = max(peak, tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
                signed = (sol.objective - ref.objective) / max(abs(ref.objective), 1e-12)
                rel = abs(signed)
                r_ref, r_fast = rec(ref, inst, kind), rec(sol, inst, kind)
                tie = not sol.unique
                ratios.append(t_ref / t_fast)
                objdiff = max(objdiff, rel)
                worse = max(worse, signed)
                differ += r_ref != r_fast
                ties += tie
                if args.verbose:
                    print(f"  {name:14s} {n:4d}x{d:<4d} seed {seed}  cvxpy {t_ref:7.2f} s  fast {t_fast:6.3f} s"
                          f"  x{t_ref / t_fast:6.1f}  objdiff {rel:.1e}  rec {r_ref}/{r_fast}"
                          f"{'  tie' if tie else ''}  rounds {sol.rounds}"
                          f"  blocks {sol.certificate.get('blocks')}", flush=True)
        all_ratios += ratios
        med = np.median(ratios) if ratios else float("nan")
        print(f"{name:14s} instances {len(ratios):3d}  median time ratio {med:7.1f}x"
              f"  max rel objective diff {objdiff:.1e} (fast higher by at most {worse:+.1e})"
              f"  differing recovery decisions {differ}"
              f"  ties {ties}" + (f"  FAILED {len(fails)}" if fails else ""), flush=True)
        for f in fails:
            print("   ", f)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak memory of a fast solve (traced numpy) {peak / 2**20:.1f} MiB; process peak RSS {rss:.2f} GiB")
    print(f"overall median speed-up {np.median(all_ratios):.1f}x over {len(all_ratios)} instances")


def scale_cell(name, n, d, seed, lp):
    """One whole cell of program `name` (run in a fresh process, one BLAS thread): seconds of
    set-up, of pattern generation within it, of the solve, the process's peak memory (GB),
    the solve's status and, for the skip programs, which certificate decided the all-ones
    pattern (and HiGHS's seconds on its LP with `lp`)."""
    from threadpoolctl import threadpool_limits
    form, beta, kind = FORMS[name]
    out = dict(name=name, n=n, d=d, seed=seed)
    with threadpool_limits(1):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(n, d, list(KINDS).index(kind))))
        t0 = time.perf_counter()
        if kind == "skip":
            inst = data.skip_instance(n, d, 0, 0, 0.0, rng)
            t1 = time.perf_counter()
            inst["M"], ones = patterns.decided_skip_patterns(inst["X"], rng)
            out["how"] = ones.how
        else:
            inst = data.norm_instance(n, d, 2, 0, 0, 0.0, rng) if kind == "norm" else data.plain_instance(
                n, d, 2, 0, 0, 0.0, rng)
            t1 = time.perf_counter()
            M = patterns.relu_patterns(inst["X"], inst["W"], rng)
        t2 = time.perf_counter()
        if kind == "norm":
            from planted.normblocks import norm_blocks
            inst["B"] = norm_blocks(inst["X"], M)
        elif kind == "plain":
            inst["M"] = M
        t3 = time.perf_counter()
        try:
            sol = run_solver(inst, form, beta, kind, True)
            out["status"] = sol.status
        except SolveFailed as e:
            out["status"] = f"failed: {e}"
        t4 = time.perf_counter()
        if lp and kind == "skip":  # the decision alone, by certificates and by HiGHS
            t = time.perf_counter()
            patterns.all_ones_decision(inst["X"])
            out["decision"] = time.perf_counter() - t
            patterns._all_ones_lp(inst["X"])
            out["lp"] = time.perf_counter() - t - out["decision"]
    out.update(setup=t3 - t0, patterns=t2 - t1, solve=t4 - t3,
               peak=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    return out


def growth(rows, key):
    """The exponent a of key ~ n^a, least squares on the logs (nan below two sizes)."""
    n = np.array([r["n"] for r in rows], float)
    v = np.array([r[key] for r in rows], float)
    if len(np.unique(n)) < 2 or (v <= 0).any():
        return float("nan")
    return float(np.polyfit(np.log(n), np.log(v), 1)[0])


def targets(name, rows):
    """The line of program `name` against the targets (docs/solver.md, "Scale"), on the median
    over the seeds of each size."""
    at = {}
    for size in {(r["n"], r["d"]) for r in rows}:
        same = [r for r in rows if (r["n"], r["d"]) == size]
        at[size] = {key: float(np.median([r[key] for r in same])) for key in ("setup", "patterns", "solve", "peak")}
    if name.endswith("-skip"):
        r = at.get((2000, 500))
        if r is None:
            return f"{name}: target at 2000x500 not measured"
        cell = r["setup"] + r["solve"]
        share = r["patterns"] / cell  # (of the medians)
        ok = cell <= CELL_SECONDS and share <= PATTERN_SHARE
        return (f"{name}: 2000x500 cell {cell:.2f} s (target <= {CELL_SECONDS:g} s), patterns {100 * share:.0f}% "
                f"(target <= {100 * PATTERN_SHARE:.0f}%): {'met' if ok else 'NOT met'}")
    if name == "relaxed-norm":
        parts = []
        for size, limit in NORM_MEMORY.items():
            r = at.get(size)
            if r is None:
                parts.append(f"{size[0]}x{size[1]} not measured")
                continue
            ok = r["peak"] < limit and r["setup"] <= r["solve"]
            parts.append(f"{size[0]}x{size[1]} peak {r['peak']:.2f} GB (target < {limit:g} GB), set-up "
                         f"{r['setup']:.1f} s vs solve {r['solve']:.1f} s (target: no more): "
                         + ("met" if ok else "NOT met"))
        return f"{name}: " + "; ".join(parts)
    return f"{name}: no target"


def scale(forms, sizes, seeds, lp):
    """--scale: the table of whole cells, growth exponents and target lines."""
    ctx = multiprocessing.get_context("spawn")
    print(f"{'program':14s} {'n':>5s} {'d':>4s} {'seed':>4s} {'set-up s':>9s} {'patterns s':>10s} {'solve s':>8s}"
          f" {'cell s':>7s} {'peak GB':>8s}  all-ones / status" + ("  (all-ones LP, HiGHS)" * lp), flush=True)
    lines = []
    for name in forms:
        kind = FORMS[name][2]
        rows = []
        for n, d in sizes or SCALE_SIZES["skip" if kind != "norm" else "norm"]:
            if kind == "norm" and n < d:
                continue
            for seed in range(seeds):
                with ctx.Pool(1, maxtasksperchild=1) as pool:  # a fresh process: its own peak memory
                    r = pool.apply(scale_cell, (name, n, d, seed, lp))
                rows.append(r)
                extra = ""
                if "lp" in r:
                    extra = f"  (HiGHS {r['lp']:.2f} s, x{r['lp'] / r['decision']:.0f} the certificates)"
                print(f"{name:14s} {n:5d} {d:4d} {seed:4d} {r['setup']:9.2f} {r['patterns']:10.2f} {r['solve']:8.2f}"
                      f" {r['setup'] + r['solve']:7.2f} {r['peak']:8.2f}  {r.get('how', '-')} / {r['status']}{extra}",
                      flush=True)
        if len({r["n"] for r in rows}) < 2:
            print(f"{name:14s} growth: needs two sizes or more", flush=True)
        else:
            print(f"{name:14s} growth (log-log fit against n): set-up n^{growth(rows, 'setup'):.2f}, patterns "
                  f"n^{growth(rows, 'patterns'):.2f}, solve n^{growth(rows, 'solve'):.2f}, peak memory "
                  f"n^{growth(rows, 'peak'):.2f}", flush=True)
        lines.append(targets(name, rows))
    for line in lines:
        print(line)


if __name__ == "__main__":
    sys.exit(main())
