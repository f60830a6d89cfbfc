"""The solver's entry points: a certified solve of any block family, and the ReLU and
normalization-layer programs of docs/reference.md §3a-e on top of it.

A cone form (exact, training) starts from its relaxation, the same program without cones
(cheap): where that optimum is unique and meets the cones it is the cone form's optimum
(`via_relaxation`), else its support, both signs, is the starting working set (cone blocks
cost n d^2 + n^2 d each per iteration, so they should enter only where needed).
"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from planted.solution import Solution, SolveFailed
from planted.solver.certificate import cert_excess, certificate, check, unique
from planted.solver.duals import dual_values
from planted.solver.fallbacks import Candidate, improve, in_support, polish, solve_scaled
from planted.solver.families import BlockFamily, norm_family, relu_family
from planted.solver.program import CERT_TOL, FORMS, TIE_TOL, Program
from planted.solver.working_set import Point


@dataclass
class BlockSolution:
    """A certified optimum of a family's program: W (k, d) every block's values, objective (of
    the program as given, unscaled), lam, certificate (certificate.certificate's entries and
    ipm_iters, rounds, blocks: the last IPM's iterations, the working-set rounds, the final
    working set's size), support and active (block indices: nonzero, dual constraint within
    TIE_TOL of 1), unique, rounds."""
    W: np.ndarray
    objective: float
    lam: np.ndarray
    certificate: dict
    support: np.ndarray
    unique: bool
    active: np.ndarray
    rounds: int


class Relaxation(NamedTuple):
    """The relaxation R of a cone family F (the same blocks without cones): block g of R is
    block pos[g] of F, and block neg[g] with the opposite sign (-1 if none); init: R's
    starting working set."""
    R: BlockFamily
    pos: np.ndarray
    neg: np.ndarray
    init: tuple = ()


def via_relaxation(F, prog, relaxation):
    """The cone program F from its relaxation R.

    The relaxed optimum is <= F's (F's feasible points map to R's by w_pos - w_neg). So where
    R's optimum is unique and each of its blocks meets the cone of pos (or, negated, of neg),
    it is F's optimum, certified by R's lam (dual feasible for F with cone multipliers 0), and
    F's optimum is unique too (w_pos - w_neg = w_R with ||w_pos|| + ||w_neg|| = ||w_R|| makes
    both multiples of w_R, and a nonzero w cannot meet both cones: G_g w = 0 forces w = 0).
    Where the planted model is recovered by R, this spares the cone IPM entirely.
    Returns (found, init): found = the Candidate of F or None; init = F's blocks of R's
    support, both signs (None where R failed to solve)."""
    R, pos, neg, r_init = relaxation
    try:
        rel = solve_blocks(R, prog.y, beta=prog.rho, init=r_init)
    except SolveFailed:
        return None, None
    S = rel.support
    init = [int(pos[g]) for g in S] + [int(neg[g]) for g in S if neg[g] >= 0]
    if not rel.unique:
        return None, init
    Wrel, lam = rel.W, rel.lam

    def sign_block(g, w, tol):
        """(block of F, signed w) that holds w as R's block g: no cone, or w in its cone up to
        a relative tol; None if neither sign does."""
        for b, sw in ((pos[g], w), (neg[g], -w)):
            if b >= 0 and (not F.cone[b] or (F.g_matrix(b) @ sw).min() >= -tol * np.linalg.norm(sw)):
                return b, sw
        return None

    if any(sign_block(g, Wrel[g], 1e-6) is None for g in S):
        return None, init  # a support block far outside both cones: no polish can change that
    if not prog.lasso and np.count_nonzero(np.linalg.norm(Wrel, axis=1)) > len(S):
        # blocks below the support threshold (IPM noise, up to 1e-6 of the largest) need not
        # meet any cone: Newton's method on the support (`polish`) sets them to exactly 0
        start = Point(W=Wrel, ws=np.arange(R.k), lam=lam, v=None, iters=rel.certificate["ipm_iters"],
                      rounds=rel.rounds)
        polished = polish(R, prog, start, Wrel)
        if polished is None or cert_excess(polished.cert) > 1:
            return None, init
        Wrel, lam = polished.W, polished.point.lam
    Wfull = np.zeros((F.k, F.d))
    for g in np.flatnonzero(np.linalg.norm(Wrel, axis=1) > 0):
        found = sign_block(g, Wrel[g], CERT_TOL)
        if found is not None:
            Wfull[found[0]] = found[1]
        elif g in S:
            return None, init
        # (else the lasso's noise block is dropped: the certificate judges the change)
    v, _ = dual_values(F, lam)
    cert = certificate(F, prog, Wfull, lam, v)
    if cert_excess(cert) > 1:
        return None, init
    ws = np.flatnonzero(np.linalg.norm(Wfull, axis=1) > 0)
    out = Point(W=Wfull[ws], ws=ws, lam=lam, v=v, iters=rel.certificate["ipm_iters"], rounds=rel.rounds)
    return Candidate(out, Wfull, cert), init


def solve_blocks(F, y, beta=None, init=(), relaxation=None):
    """Group basis pursuit (beta None) or group lasso (1/2||.||^2 + beta sum ||w_g||) over the
    block family F, certified: a BlockSolution. Raises SolveFailed where the certificate is
    not tight. init: the starting working set; relaxation: the Relaxation of a cone family,
    tried first, and its support joins the starting working set where it does not settle
    the program."""
    ynorm = np.linalg.norm(y)
    k, d = F.k, F.d
    if ynorm == 0:  # the optimum is w = 0, certified by lam = 0
        return BlockSolution(W=np.zeros((k, d)), objective=0.0, lam=np.zeros(F.n),
                             certificate=dict(residual=0.0, dual_violation=0.0, gap=0.0, cone_violation=0.0),
                             support=np.zeros(0, int), unique=True, active=np.zeros(0, int), rounds=0)
    prog = Program.scaled(y, beta)
    found = None
    if relaxation is not None:
        found, rel_init = via_relaxation(F, prog, relaxation)
        init = list(init) + (rel_init or [])
    if found is None:
        found = solve_scaled(F, prog, init)
    out, Wfull, cert = improve(F, prog, found)
    W = Wfull * prog.scale
    norms = np.linalg.norm(W, axis=1)
    support = np.flatnonzero(in_support(norms))
    if prog.lasso:
        objective = 0.5 * np.sum((F.apply(W) - y) ** 2) + beta * norms.sum()
    else:
        objective = norms.sum()
    cert = dict(cert, ipm_iters=out.iters, rounds=out.rounds, blocks=len(out.ws))
    sol = BlockSolution(W=W, objective=float(objective), lam=out.lam, certificate=cert, support=support,
                        unique=unique(F, W, support), active=np.flatnonzero(out.v >= 1 - TIE_TOL),
                        rounds=out.rounds)
    check(cert, "fast: ")
    return sol


def _solution(sol, k, o, P, skip):
    """The Solution of a ReLU or normalization program from its BlockSolution: blocks laid
    out [skip (o = 1)] + P patterns [+ P w_i' blocks], stored column-wise."""
    B = sol.W
    return Solution(W=B[o:o + P].T.copy(), Wp=B[o + P:o + 2 * P].T.copy() if k > o + P else None,
                    w0=B[0] if skip else None, objective=sol.objective, status="optimal", lam=sol.lam,
                    unique=sol.unique, certificate=sol.certificate, support=sol.support,
                    active=sol.active, rounds=sol.rounds)


def solve_relu(X, M, y, form="relaxed", beta=None, skip=True):
    """The ReLU program of §3a-d (form "relaxed" or "exact", beta: the training program's
    weight decay, skip: with the skip block) by the certified working-set IPM: a Solution
    with certificate, unique (the optimum is a single point), support and active (block
    indices: 0 is the skip block when skip, then the patterns, then the w_i' blocks), rounds.

    Recovery = the planted model is the unique optimum: with `unique` False the returned point
    is inside the optimal face (tied blocks nonzero), so it is not recovered, as on CVXPY's
    interior-point answer. Raises SolveFailed on a loose certificate.
    """
    if form not in FORMS:
        raise ValueError(f"unknown form {form}")
    X = np.asarray(X, float)
    y = np.asarray(y, float)
    n, d = X.shape
    M = np.asarray(M, bool)
    if M.shape[0] != n or y.shape != (n,):
        raise ValueError(f"shapes: X {X.shape}, M {M.shape}, y {y.shape}")
    P = M.shape[1]
    F = relu_family(X, M, form, beta, skip)
    init = [0] if skip else ()
    o = 1 if skip else 0
    relaxation = None
    if F.cone.any():
        neg = np.r_[-np.ones(o, int), o + P + np.arange(P)]
        relaxation = Relaxation(relu_family(X, M, "relaxed", None, skip, F.XXt), np.arange(o + P), neg, init)
    return _solution(solve_blocks(F, y, beta=beta, init=init, relaxation=relaxation), F.k, o, P, skip)


def solve_norm(B, y, form="relaxed", beta=None):
    """The normalization-layer program of §3e on the NormBlocks B, as solve_relu (w0 None,
    W and Wp r x P)."""
    if form not in FORMS:
        raise ValueError(f"unknown form {form}")
    P = B.P
    F = norm_family(B, form, beta)
    y = np.asarray(y, float)
    relaxation = None
    if F.cone.any():
        relaxation = Relaxation(norm_family(B, "relaxed"), np.arange(P), P + np.arange(P))
    return _solution(solve_blocks(F, y, beta=beta, relaxation=relaxation), F.k, 0, P, False)
