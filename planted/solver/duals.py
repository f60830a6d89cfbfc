"""Dual constraint values of every block of a family (docs/reference.md §3, the duals):

    v_g = min_{mu >= 0} ||A_g^T lam + G_g^T mu||    (||A_g^T lam|| for blocks without a cone),

so that lam is dual feasible iff v_g <= 1 for every g. For a cone block this is the norm of
the projection of A_g^T lam onto the cone {w: G_g w >= 0} (Moreau), an NNLS each; the NNLS is
run only where cheaper upper bounds (the IPM's own multipliers, the ones kept from an earlier
lam, a batched projected-gradient screen) leave the value above the threshold that matters.
"""
import numpy as np
from scipy.optimize import nnls

from planted.solver.program import TIE_TOL

SCREEN_MIN = 20      # a batch screen of the cone blocks' dual values pays from this many


def cone_dual_norm(F, g, u):
    """min_{mu >= 0} ||u + G_g^T mu||: the dual constraint value of cone block g, where
    u = A_g^T lam (= ||projection of u onto the cone {w: G_g w >= 0}||, by Moreau). NNLS."""
    G = F.g_matrix(g)
    mu, res = nnls(G.T, -u, maxiter=50 * G.shape[0])
    return res, mu


def cone_screen(F, gs, U, screen, iters=25):
    """Upper bounds on the dual constraint values of the cone blocks gs (U: their A_g^T lam):
    ||u_g + G_g^T mu_g|| at the mu_g >= 0 of a few accelerated projected-gradient steps
    (FISTA) on 1/2 ||u_g + G_g^T mu||^2, all blocks in one batch of matrix products. Most
    blocks' values at a round's lam are well below 1, and this settles them for a fraction of
    an NNLS each. Step 1/L_g, L_g = ||G_g||^2 by power iteration
    (kept per family: it does not depend on lam). Returns (values, multipliers)."""
    todo = np.array([g not in F.lip_cache for g in gs])
    if todo.any():
        normal = F.g_normal(gs[todo])
        z = np.random.default_rng(0).standard_normal((todo.sum(), F.d))
        for _ in range(15):
            z = normal(z)
            z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-300)
        lips = 1.1 * np.linalg.norm(normal(z), axis=1)
        F.lip_cache.update(zip(gs[todo].tolist(), lips))
    G, Gt = F.g_ops(gs)
    L = np.maximum(np.array([F.lip_cache[g] for g in gs]), 1e-300)[:, None]
    vals = np.empty(len(gs))
    mus = np.zeros((len(gs), F.n))
    on = np.arange(len(gs))  # the blocks not settled yet: a settled block leaves the batch
    mu = mus
    nxt, tk = mu, 1.0
    for it in range(iters + 1):
        if it and (it % 5 == 0 or it == iters):
            vals[on] = np.linalg.norm(U[on] + Gt(mu), axis=1)
            mus[on] = mu
            left = vals[on] >= screen
            if it == iters or not left.any():
                break
            if not left.all():
                on, mu, nxt, L = on[left], mu[left], nxt[left], L[left]
                G, Gt = F.g_ops(gs[on])
        new = np.maximum(nxt - G(U[on] + Gt(nxt)) / L, 0)
        tn = (1 + np.sqrt(1 + 4 * tk * tk)) / 2
        nxt = new + (tk - 1) / tn * (new - mu)
        mu, tk = new, tn
    return vals, mus


def dual_values(F, lam, mu_ws=None, ws=None, screen=1 - TIE_TOL):
    """Dual constraint values v_g = min_mu ||A_g^T lam + G_g^T mu|| of every block (for plain
    blocks ||A_g^T lam||; for cone blocks ||A_g^T lam|| bounds it, and NNLS is run only where
    that bound exceeds `screen`). Returns v and the multipliers mu of the blocks that needed one."""
    U = F.adjoint(lam)
    v = np.linalg.norm(U, axis=1)
    mus = {}

    def keep_smaller(gs, vals, Mu):  # each value is an upper bound: keep the least one found
        for g, val, m in zip(gs, vals, Mu):
            if val < v[g]:
                v[g], mus[g] = val, m

    if ws is not None and mu_ws is not None:  # the IPM's own multipliers for the working set
        cw = [g for g in ws if F.cone[g]]
        Mu = [np.maximum(m, 0) for m in mu_ws]
        keep_smaller(cw, [np.linalg.norm(U[g] + F.g_matrix(g).T @ m) for g, m in zip(cw, Mu)], Mu)
    # a block's multiplier from an earlier evaluation on the same family (the lam of another
    # round, or of the same round before its last iterations) mostly still brings its value
    # below the screen: one batched product instead of an NNLS per block
    known = [g for g in np.flatnonzero(F.cone & (v > screen)) if g in F.mu_cache]
    if known:
        Mu = np.array([F.mu_cache[g] for g in known])
        keep_smaller(known, np.linalg.norm(U[known] + F.g_ops(np.array(known))[1](Mu), axis=1), Mu)
    rest = np.flatnonzero(F.cone & (v > screen))
    if len(rest) > SCREEN_MIN:
        keep_smaller(rest, *cone_screen(F, rest, U[rest], screen))
    for g in np.flatnonzero(F.cone & (v > screen)):
        val, m = cone_dual_norm(F, g, U[g])
        F.mu_cache[g] = m
        keep_smaller([g], [val], [m])
    return v, mus
