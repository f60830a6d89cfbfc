"""The working set: the interior-point method on the blocks that can be active, grown by the
most violated dual constraints of the whole family (a cutting-plane method on the dual of
docs/reference.md §3: max y^T lam s.t. v_g(lam) <= 1, duals.dual_values).

A round solves the subproblem on the working set ws, evaluates every block's dual constraint
at its lam, and adds the blocks outside ws with v_g >= 1 - TIE_TOL (violated, or active:
possible ties), most violated first. It stops when no such block is left: then lam is dual
feasible for the whole family (up to the IPM's tolerance) and the subproblem's optimum is the
program's. Blocks whose dual constraint is active always join, so that the interior-point
method, which converges to the relative interior of the optimal face, sees every optimal
solution: on a tie the returned point spreads over the tied blocks, as CVXPY + Clarabel does.
"""
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from planted.solution import SolveFailed
from planted.solver.cone_program import Iterate
from planted.solver.duals import dual_values
from planted.solver.ipm import IPM_TOL, SLACK_COST, State, ipm
from planted.solver.program import TIE_TOL

ROUND_TOL = 1e-6     # IPM tolerance of a working-set round that may not be the last
WARM_ERR = 1e-2      # a round's iterate kept to start the next one from (see warm_state)
WARM_ITER = 50       # ... which falls back to a cold start if it has not converged by then
WARM_ADD = 0.25      # ... only where it adds at most this fraction of its blocks (more: no gain)


@dataclass
class Point:
    """A primal-dual point of a whole family: the blocks ws (the others are 0) with values W
    (len(ws), d), the dual lam and every block's dual value v at it; iters (of the last IPM
    run) and rounds (of the working set): what it took."""
    W: np.ndarray
    ws: np.ndarray
    lam: np.ndarray
    v: np.ndarray
    iters: int
    rounds: int


def _start(F, y):
    """The starting working set without a given one (no skip block): the blocks most
    correlated with y and with the least-squares dual, enough of them to span y: about n/d."""
    top = int(np.ceil(F.n / F.d)) + 1
    ws = []
    if F.cheap_gram:
        # the least-squares dual lam = (sum_g A_g A_g^T)^-1 y, a cheap guess of the optimal
        # dual; for dense blocks that matrix costs n^2 P d, more than the whole solve, and
        # saves no round
        H = F.gram(np.ones(F.k))
        H[np.diag_indices(F.n)] += 1e-10 * np.trace(H) / F.n
        score = np.linalg.norm(F.adjoint(sla.solve(H, y, assume_a="pos")), axis=1)
        ws = [int(g) for g in np.argsort(-score)[:top]]
    # (orthonormal U_i: the blocks most correlated with y are the best single fits)
    ws += [int(g) for g in np.argsort(-np.linalg.norm(F.adjoint(y), axis=1))[:top]]
    return list(dict.fromkeys(ws))  # a block twice would split its weight between copies


def _round_ipm(F, sub, prog, cost, ws, warm):
    """A round's subproblem on sub = F.subset(ws), to ROUND_TOL: from the last round's iterate
    where that one is close (same cost, few blocks added), else (or where that does not
    converge in WARM_ITER) from a cold start. The warm start pays most on cone rounds: they
    are degenerate (many blocks end at 0 on their cones' apex), and a cold start spends many
    iterations reaching that face."""
    if warm is not None and warm[1] == cost and len(ws) - len(warm[0]) <= WARM_ADD * len(warm[0]):
        out = ipm(sub, prog, cost=cost, tol=ROUND_TOL, max_iter=WARM_ITER, warm_err=WARM_ERR,
                  state=warm_state(F, warm[0], ws, warm[2]))
        if out.converged:
            return out
    return ipm(sub, prog, cost=cost, tol=ROUND_TOL, warm_err=WARM_ERR)


def _violated(F, sub, prog, cost, ws, out):
    """The blocks outside ws with v_g >= 1 - TIE_TOL at the round's lam: (out, v, cand). A
    round that finds none is taken on, from the same iterates, to IPM_TOL (most rounds are not
    the last, and ROUND_TOL suffices to find the blocks to add), and judged again."""
    for tight in (False, True):
        if tight:
            if out.state is None:
                break  # (converged to IPM_TOL already, or stalled: keep the best iterate)
            out = ipm(sub, prog, cost=cost, tol=IPM_TOL, state=out.state)
        v, _ = dual_values(F, out.lam, out.mu, ws)
        outside = np.ones(F.k, bool)
        outside[ws] = False
        cand = np.flatnonzero(outside & (v >= 1 - TIE_TOL))
        if len(cand):
            break
    return out, v, cand


def _additions(F, ws, cand, v, add):
    """The blocks to add: the most violated of cand, at most `add`. In the cone forms each
    with its opposite-sign copy (so add / 2 of them): a cone block alone bounds lam from one
    side only on its active rows (its multipliers cancel a decrease there), so on rows where
    y is 0 the round's dual optimum is unbounded, and the interior-point lam drifts toward
    the slack's bound (|lam| ~ SLACK_COST / 2): the next round's dual values, and so its
    additions, are then set by that drift."""
    cand = cand[np.argsort(-v[cand])]
    if F.twin is None:
        cand = cand[:add]
    else:
        known = set(ws)
        cand = cand[:max(1, add // 2)]
        cand = [g for g in dict.fromkeys(np.c_[cand, F.twin[cand]].ravel().tolist())
                if g >= 0 and g not in known]
    return [int(g) for g in cand]


def working_set(F, prog, init=(), max_rounds=30, add=50):
    """The program prog on family F by IPM on a growing working set, from the blocks init (or
    `_start`'s). A feasibility slack left at the end raises its cost (the exact penalty was
    too small) or, at a huge cost, means the program is infeasible: SolveFailed."""
    ws = list(dict.fromkeys(int(g) for g in init)) or _start(F, prog.y)
    cost = SLACK_COST
    rounds = 0
    warm = None  # (working set, cost, iterate) of the last round, for the next one's start
    while True:
        rounds += 1
        sub = F.subset(ws)
        out = _round_ipm(F, sub, prog, cost, ws, warm)
        warm = (list(ws), cost, out.warm) if out.warm is not None else None
        out, v, cand = _violated(F, sub, prog, cost, ws, out)
        if len(cand) == 0 or rounds >= max_rounds:
            if out.e.max(initial=0.0) > 1e-9:
                if cost >= 1e9:
                    raise SolveFailed("fast: infeasible (y is not in the span of the blocks)")
                cost *= 1e3
                continue
            break
        ws += _additions(F, ws, cand, v, add)
    return Point(W=out.W, ws=np.array(ws), lam=out.lam, v=v, iters=out.best.iters, rounds=rounds)


def warm_state(F, ws_old, ws, warm):
    """An IPM State for the working set ws = ws_old + new blocks, from an Iterate `warm` of the
    round on ws_old (the warm start of cutting-plane methods): the old blocks keep their
    values, each new block starts centred at the iterate's mu = s^T z / nu. Its dual: cone
    multipliers z_L = (the NNLS multipliers of its last dual value, kept in F.mu_cache) +
    sqrt(mu), z = (z0, -(A^T lam + G^T z_L)) with z0 = max(1, 1.01 ||z1||) (the block is
    violated: its dual residual 1 - z0 is what the round removes); its slacks s = mu z^-1,
    s_L = mu / z_L; its primal t = s0 and, as in a cold start, w = 0 (s1 lies outside the
    block's cone)."""
    x = warm
    new = np.asarray(ws[len(ws_old):], int)
    mu = x.complementarity() / (len(x.sQ) + x.sL.size + x.sE.size)
    Z1 = -F.adjoint(x.lam)[new]
    cn = new[F.cone[new]]
    ZL = np.zeros((len(cn), F.n)) + np.sqrt(mu)
    for j, g in enumerate(cn):
        ZL[j] += np.maximum(F.mu_cache.get(g, 0.0), 0.0)
    if len(cn):
        Z1[F.cone[new]] -= F.g_ops(cn)[1](ZL)
    nz1 = np.linalg.norm(Z1, axis=1)
    z0 = np.maximum(1.0, 1.01 * nz1)
    zq = np.column_stack([z0, Z1])
    sq = mu * np.column_stack([z0, -Z1]) / (z0 * z0 - nz1 * nz1)[:, None]
    start = Iterate(t=np.r_[x.t, sq[:, 0]], W=np.vstack([x.W, np.zeros_like(Z1)]), e=x.e, r=x.r,
                    lam=x.lam, sQ=np.vstack([x.sQ, sq]), zQ=np.vstack([x.zQ, zq]),
                    sL=np.vstack([x.sL, mu / ZL]), zL=np.vstack([x.zL, ZL]), sE=x.sE, zE=x.zE)
    return State(start, 0, None)
