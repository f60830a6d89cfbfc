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
"""
import resource
import sys
import time
import tracemalloc

import numpy as np

from planted import data, patterns, recovery, solve
from planted.cli import Parser
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
    p.add_argument("--forms", default=",".join(FORMS), help="comma-separated subset of " + ",".join(FORMS))
    p.add_argument("--sizes", default=None, help="comma-separated NxD list, overrides the set")
    p.add_argument("--seeds", type=int, default=1, help="instances per (n, d)")
    p.add_argument("--verbose", action="store_true", help="one line per instance")
    p.add_argument("--tight", action="store_true",
                   help="Clarabel with tolerances 1e-12 (default 1e-8) as the reference: slower, but "
                        "accurate enough to compare the tiny objectives of the training forms")
    args = p.parse_args(argv)
    forms = args.forms.split(",")
    for f in forms:
        if f not in FORMS:
            p.error(f"unknown form {f}")
    if args.sizes:
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
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


if __name__ == "__main__":
    sys.exit(main())
