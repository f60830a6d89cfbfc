"""The primal-dual interior-point method on one family of blocks (NT scaling, Mehrotra).

It solves the cone program of cone_program.py (a working set's subproblem of the programs of
docs/reference.md §3), each iteration by the Newton system of newton.py, from a cold start or
from a given State: where it stopped at a loose tolerance (to go on toward a tighter one), or
a warm start built from another working set's iterate (working_set.warm_state).
"""
from dataclasses import dataclass

import numpy as np

from planted.solver.cone_program import ConeProgram, Iterate
from planted.solver.newton import NewtonSystem

IPM_TOL = 1e-10      # interior-point stopping tolerance (relative)
SLACK_COST = 1e3     # exact penalty of the feasibility slack (>> any dual lam entry we meet)
MAX_ITER = 80


@dataclass
class Best:
    """The iterate with the smallest error so far, at iteration `iters`."""
    x: Iterate
    err: float
    pobj: float
    dobj: float
    iters: int


@dataclass
class State:
    """Where an IPM run resumes: the iterate x at iteration `it`, and the best so far (None
    for a fresh start from x)."""
    x: Iterate
    it: int
    best: Best | None


@dataclass
class IpmResult:
    """The best iterate of a run (W = best.x.W, lam, the cone multipliers mu = best.x.zL, the
    slack e), whether it met tol, `state` (where it stopped at tol: resumes it, on the same
    family, program and cost, toward a tighter tol; None after a breakdown or max_iter) and
    `warm` (the first iterate with error below warm_err, None if none)."""
    best: Best
    converged: bool
    state: State | None
    warm: Iterate | None

    @property
    def W(self):
        return self.best.x.W

    @property
    def lam(self):
        return self.best.x.lam

    @property
    def mu(self):
        return self.best.x.zL

    @property
    def e(self):
        return self.best.x.e


def ipm(F, prog, cost=SLACK_COST, tol=IPM_TOL, max_iter=MAX_ITER, state=None, warm_err=None):
    """The cone program of family F and program prog to tol (see IpmResult). Floating-point
    warnings are off: a late numerical breakdown is caught by keeping the best iterate, and
    the certificate judges the result anyway."""
    with np.errstate(all="ignore"):
        return _run(ConeProgram(F, prog, cost), tol, max_iter, state, warm_err)


def _run(cp, tol, max_iter, state, warm_err):
    x, it0, best = (cp.start(), 0, None) if state is None else (state.x, state.it, state.best)
    stop = warm = None
    for it in range(it0, max_iter):
        res = cp.residuals(x)
        if best is None or res.err < best.err:
            best = Best(x, res.err, res.pobj, res.dobj, it)
        if warm is None and warm_err is not None and res.err < warm_err:
            warm = x
        if res.err < tol:
            stop = State(x, it, best)
            break
        if (best.err < 1e-8 and res.err > 10 * best.err) or (it > 10 and res.err > 1e3 * best.err):
            break  # numerical breakdown far below the starting error: keep the best iterate
        system = NewtonSystem.at(cp, x, res.gap / cp.nu)
        if system is None:
            break  # numerical breakdown: keep the best iterate
        x = system.mehrotra(res)
    return IpmResult(best=best, converged=best.err < tol, state=stop, warm=warm)
