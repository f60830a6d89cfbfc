"""The working-set solve of a scaled program, and the fallbacks tried where its certificate is
loose (docs/reference.md §3: the certificate of certificate.py).

The interior-point method can stall just short of CERT_TOL: late on its Newton directions lose
accuracy (the Schur matrix, and the cone blocks' K_g, become ill-conditioned as the blocks
outside the support go to 0 and their linear cones degenerate). FALLBACKS are tried in order
while the certificate is loose, each candidate kept only where it improves the certificate.
"""
import warnings
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import scipy.linalg as sla

from planted.solution import SolveFailed
from planted.solver.certificate import cert_excess, certificate
from planted.solver.duals import cone_dual_norm, dual_values
from planted.solver.program import CERT_TOL
from planted.solver.working_set import Point, working_set

PRUNE_TOL = 1e-4     # the retry after a loose certificate keeps the blocks with v_g >= 1 - this


class Candidate(NamedTuple):
    """A solution of a family's program: its working_set.Point, every block's values W (k, d),
    and their certificate."""
    point: Point
    W: np.ndarray
    cert: dict


def in_support(norms):
    """The blocks above 1e-6 of the largest: below that, the IPM's noise at its zero blocks."""
    return norms > 1e-6 * max(norms.max(initial=0), 1e-300)


def solve_scaled(F, prog, init):
    """The working-set solve of the scaled program prog from the blocks init, certified."""
    out = working_set(F, prog, init=init)
    Wfull = np.zeros((F.k, F.d))
    Wfull[out.ws] = out.W
    # blocks below 1e-9 of the largest are the IPM's noise at its zero blocks: set to 0, as
    # the certificate would otherwise judge their cones relative to their own norms, below
    # the IPM's residuals (~1e-10) after a warm start (the residual and gap judge the change)
    norms = np.linalg.norm(Wfull, axis=1)
    Wfull[norms < 1e-9 * norms.max(initial=0)] = 0
    return Candidate(out, Wfull, certificate(F, prog, Wfull, out.lam, out.v))


def _active_rows(F, S, Wfull, norms):
    """The rows of each support block's cone active at Wfull: G_g w_g is 0 up to the
    interior-point method's accuracy (its cosine with w below 1e-6; inactive rows are mostly
    far from that)."""
    GI = []
    for g in S:
        G = F.g_matrix(g) if F.cone[g] else np.zeros((0, F.d))
        Gw = G @ Wfull[g]
        GI.append(G[Gw <= 1e-6 * norms[g] * np.linalg.norm(G, axis=1)])
    return GI


def _newton_step(J, b, try_lu):
    """The step J^-1 b: LU where J can be regular (try_lu) and that solves it; else least
    squares, least-norm with singular values below 1e-12 of the largest cut."""
    if try_lu:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", sla.LinAlgWarning)
                step = sla.solve(J, b, check_finite=False)
            if np.all(np.isfinite(step)):
                scale = np.linalg.norm(J) * np.linalg.norm(step) + np.linalg.norm(b)
                if np.linalg.norm(J @ step - b) <= 1e-10 * scale:
                    return step
        except (np.linalg.LinAlgError, ValueError):
            pass
    return sla.lstsq(J, b, cond=1e-12, lapack_driver="gelsy", check_finite=False)[0]


def polish(F, prog, out, Wfull, steps=3, max_size=3000):
    """Newton's method on the optimality conditions of the program restricted to its support S
    and, on cone blocks of S, to the rows I_g of their cones active at Wfull:

        sum_S A_g w_g + rho lam = y,  w_g / ||w_g|| = A_g^T lam + G_gI^T mu_gI,  G_gI w_g = 0

    (rho = 0: basis pursuit; rho > 0: the lasso, lam = residual / rho), as many equations as
    unknowns (w, lam, mu); least squares where the optimum is not unique. A last resort where
    the interior-point method stalled: from its point this converges fast, and the certificate
    (every block's dual constraint, the cones) judges the result, so a wrong guess of I only
    costs the polish. out: the Point Wfull came from (its ws must hold S; its lam starts).
    Returns the Candidate of the polished point with the smallest residual of these
    conditions, or None."""
    ys, rho = prog.y, prog.rho
    norms = np.linalg.norm(Wfull, axis=1)
    S = np.flatnonzero(in_support(norms))
    n, d = F.n, F.d
    if len(S) == 0 or not np.all(np.isin(S, out.ws)):
        return None  # (W is stored by the working set, which holds the support)
    GI = _active_rows(F, S, Wfull, norms)
    m, nw_all = sum(len(G) for G in GI), len(S) * d
    if n + nw_all + m > max_size:
        return None
    A = F.block_matrix(S)
    Gblk = sla.block_diag(*GI)  # (m, |S| d): the active rows of each block
    w = Wfull[S].ravel().copy()
    lam = out.lam.copy()
    # the cones' multipliers that fit the stationarity conditions best at the starting point
    # (a start at 0 leaves the first step to set them, and on a misjudged active row that
    # step overshoots)
    u = (Wfull[S] / norms[S, None]).ravel()
    mu = sla.lstsq(Gblk.T, u - A.T @ lam, check_finite=False)[0] if m else np.zeros(0)
    r0 = 0.0 if rho is None else rho
    # J is singular where the optimum is not unique, and in basis pursuit where
    # n > |S| d - m, lam is free along the null space of A^T on the cones' faces: only the
    # least-norm step keeps it at the interior-point lam there (dual feasible for the other
    # blocks), so LU only where J can be regular
    try_lu = rho is not None or n <= nw_all - m
    best = None
    for it in range(steps + 1):
        W = w.reshape(len(S), d)
        nw = np.linalg.norm(W, axis=1)
        if not np.all(nw > 0):
            break
        u = W / nw[:, None]
        r1 = ys - A @ w - r0 * lam
        r2 = u.ravel() - A.T @ lam - Gblk.T @ mu
        r3 = -Gblk @ w
        res = np.sqrt(r1 @ r1 + r2 @ r2 + r3 @ r3)
        if best is not None and not res < best[0]:
            break  # converged to rounding (or diverging): keep the best point
        best = (res, w, lam)
        if it == steps:
            break
        Jw = np.zeros((nw_all, nw_all))
        for j in range(len(S)):
            sl = slice(j * d, (j + 1) * d)
            Jw[sl, sl] = -(np.eye(d) - np.outer(u[j], u[j])) / nw[j]
        J = np.block([[A, r0 * np.eye(n), np.zeros((n, m))],
                      [Jw, A.T, Gblk.T],
                      [Gblk, np.zeros((m, n + m))]])
        step = _newton_step(J, np.r_[r1, r2, r3], try_lu)
        w = w + step[:nw_all]
        lam = lam + step[nw_all:nw_all + n]
        mu = mu + step[nw_all + n:]
    _, w, lam = best  # (set on the first pass: every block of S is nonzero)
    Wp = np.zeros_like(Wfull)
    Wp[S] = w.reshape(len(S), d)
    v, _ = dual_values(F, lam)
    cert = certificate(F, prog, Wp, lam, v)
    return Candidate(replace(out, W=Wp[out.ws], lam=lam, v=v), Wp, cert)


# ------------------------------------------------------------------------------------------
# The fallbacks: each yields candidates built from the solution it is given.

def project_onto_cones(F, prog, found):
    """Blocks just outside their cones by the interior-point method's rounding (a block far
    below the largest, judged relative to its own norm): each is moved to its projection onto
    its cone, w + G_g^T mu (Moreau, mu from `cone_dual_norm`), or to 0 where that projection
    is at the rounding level of w itself; the certificate judges the change."""
    out, Wfull, cert = found
    if cert["cone_violation"] <= CERT_TOL:
        return
    Wp = Wfull.copy()
    for g in np.flatnonzero(F.cone & (np.linalg.norm(Wp, axis=1) > 0)):
        G = F.g_matrix(g)
        if (G @ Wp[g]).min() < 0:
            Wp[g] = Wp[g] + G.T @ cone_dual_norm(F, g, Wp[g])[1]
            if (G @ Wp[g]).min() < 0:
                Wp[g] = 0
    yield Candidate(replace(out, W=Wp[out.ws]), Wp, certificate(F, prog, Wp, out.lam, out.v))


def retry_from_support(F, prog, found):
    """The working set rerun from the blocks that can matter, the support and the active
    blocks (v_g near 1, ties kept): the blocks with v_g < 1 are 0 at every optimum, and
    dropping them removes the degenerate ones; any they were needed for (the smaller
    subproblem's lam violates their dual constraint) rejoin as usual."""
    out = found.point
    nw = np.linalg.norm(out.W, axis=1)
    ws = out.ws
    keep = ws[(out.v[ws] >= 1 - PRUNE_TOL) | in_support(nw)]
    if 0 < len(keep) < len(ws):
        try:
            yield solve_scaled(F, prog, keep)
        except SolveFailed:
            pass


def polish_support(F, prog, found):
    """Newton on the support (`polish`), then on the support less one of its (up to 3)
    smallest blocks: a block with a tie (v_g = 1) that is 0 at the optimum can be all but
    interchangeable with a support block (two patterns that differ in a row whose x_i is
    nearly orthogonal to the optimum), and the interior-point method, whose iterates keep to
    the centre of that nearly flat valley, leaves weight on both."""
    out, W0, _ = found
    norms = np.linalg.norm(W0, axis=1)
    S = np.flatnonzero(norms > 1e-6 * norms.max(initial=0))
    for drop in [None, *S[np.argsort(norms[S])][:3]] if len(S) > 1 else [None]:
        start = W0.copy()
        if drop is not None:
            start[drop] = 0
        polished = polish(F, prog, out, start)
        if polished is not None:
            yield polished


FALLBACKS = (project_onto_cones, retry_from_support, polish_support)


def improve(F, prog, found):
    """The Candidate found, or the best the FALLBACKS make of it while its certificate is loose."""
    excess = cert_excess(found.cert)
    for fallback in FALLBACKS:
        if excess <= 1:
            break
        for candidate in fallback(F, prog, found):
            if cert_excess(candidate.cert) < excess:
                found = candidate
                excess = cert_excess(found.cert)
            if excess <= 1:
                break
    return found
