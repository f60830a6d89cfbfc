"""The optimality certificate of a primal point and a dual vector, and uniqueness of the optimum.

Weak duality (docs/reference.md §3, 'Dual of (a)'): any primal point W and any dual-feasible
lam (v_g(lam) <= 1 for every block, duals.dual_values) bound the optimum from both sides,

    y^T lam  [- rho/2 ||lam||^2]   <=   optimum   <=   sum_g ||w_g||  [+ 1/(2 rho) ||r||^2],

so a small relative gap, with a feasible W (primal residual, cones) proves W optimal. lam is
made feasible by scaling it down by its largest dual constraint. `relu_certificate` /
`certify_relu` are the one certificate check of the project for a given ReLU solution.
"""
import numpy as np

from planted.solution import SolveFailed
from planted.solver.duals import dual_values
from planted.solver.families import relu_family
from planted.solver.program import CERT_TOL, Program

CERT_KEYS = ("residual", "dual_violation", "gap", "cone_violation")


def certificate(F, prog, Wfull, lam, v):
    """Certificate of a primal point Wfull (k, d) from lam with dual values v: relative primal
    residual ||sum A_g w_g - y|| / ||y|| (basis pursuit only), dual violation max_g v_g - 1,
    relative duality gap (primal - dual) / primal with the dual-feasible lam / max(1, max v),
    and the largest cone violation -min(G_g w_g) / ||w_g||."""
    y, rho = prog.y, prog.rho
    f = F.apply(Wfull)
    norms = np.linalg.norm(Wfull, axis=1)
    vmax = v.max()
    lf = lam / max(1.0, vmax)
    ynorm = max(np.linalg.norm(y), 1e-300)
    if rho is None:
        pobj = norms.sum()
        dobj = y @ lf
        res = np.linalg.norm(f - y) / ynorm
    else:
        pobj = norms.sum() + np.sum((f - y) ** 2) / (2 * rho)
        dobj = y @ lf - rho / 2 * lf @ lf
        res = 0.0
    cone = 0.0
    for g in np.flatnonzero(F.cone & (norms > 0)):
        cone = max(cone, -(F.g_matrix(g) @ Wfull[g]).min() / max(norms[g], 1e-300))
    return dict(residual=float(res), dual_violation=float(max(vmax - 1, 0.0)),
                gap=float(abs(pobj - dobj) / max(abs(pobj), 1e-300)), cone_violation=float(cone),
                primal=float(pobj), dual=float(dobj))


def cert_excess(cert):
    """The largest certificate entry relative to CERT_TOL (<= 1: tight)."""
    return max(cert[key] for key in CERT_KEYS) / CERT_TOL


def check(cert, prefix=""):
    """Raise SolveFailed where the certificate is not tight to CERT_TOL."""
    bad = [key for key in CERT_KEYS if cert[key] > CERT_TOL]
    if bad:
        raise SolveFailed(prefix + "certificate not tight: " + ", ".join(f"{key} {cert[key]:.1e}" for key in bad))


def unique(F, Wfull, support):
    """Is the optimum unique? The IPM point lies in the relative interior of the optimal face,
    whose points are w_g = t_g u_g (u_g the unit directions fixed by any optimal dual, t >= 0)
    with sum_g t_g A_g u_g = y: the face is a point iff the columns A_g u_g over the support
    are linearly independent."""
    if len(support) <= 1:
        return True
    nz = np.linalg.norm(Wfull[support], axis=1)
    U = Wfull[support] / nz[:, None]
    B = F.subset(support).cols(U)
    sv = np.linalg.svd(B, compute_uv=False)
    return bool(sv[-1] > 1e-6 * sv[0])


def relu_certificate(X, M, y, sol, form="relaxed", beta=None, skip=True):
    """The certificate of a given Solution (w0, W, Wp and its own lam) of a ReLU program, from
    any solver: `certificate` with lam made dual feasible by scaling, cone multipliers by NNLS."""
    X = np.asarray(X, float)
    F = relu_family(X, M, form, beta, skip)
    blocks = ([sol.w0[None]] if skip else []) + [sol.W.T]
    if F.k > len(np.concatenate(blocks)):
        blocks.append(sol.Wp.T)
    Wfull = np.concatenate(blocks)
    ynorm = np.linalg.norm(y)
    if ynorm == 0:
        return dict(residual=0.0, dual_violation=0.0, gap=float(np.linalg.norm(Wfull) > 0), cone_violation=0.0)
    v, _ = dual_values(F, sol.lam, screen=0.0)
    prog = Program.scaled(y, beta)
    return certificate(F, prog, Wfull / prog.scale, sol.lam, v)


def certify_relu(X, M, y, sol, form="relaxed", beta=None, skip=True):
    """relu_certificate, checked: returns it; raises SolveFailed where it is not tight."""
    cert = relu_certificate(X, M, y, sol, form, beta, skip)
    check(cert)
    return cert
