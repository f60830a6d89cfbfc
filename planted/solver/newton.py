"""The Newton system of one interior-point iteration, reduced to the n x n dual Schur matrix.

With NT scaling W (cones.SocScaling) the system

    P dx - A^T dlam - G^T dz = b_d,   A dx = b_p,   G dx - ds = b_s,   ds + W^2 dz = b_c

is reduced by elimination to  H dlam = rhs,  H = A K^-1 A^T,  K = P + G^T W^-2 G, block
diagonal. For plain second-order-cone blocks K_g^-1 = W_g^2 = eta_g^2 (I + 2 u_g u_g^T) in
closed form, so for ReLU blocks their part of H is (X X^T) o (M diag(eta^2) M^T) + V V^T: two
n x P x n products, no n x P d matrix. Cone blocks (SOC plus their linear cone) have a dense
K_g, used through its Cholesky factor. Iterative refinement against the unreduced system
removes the effect of the regularization H and K_g may need to factor.
"""
from typing import NamedTuple

import numpy as np
import scipy.linalg as sla
from scipy.linalg import blas, lapack

from planted.solver.cone_program import Iterate
from planted.solver.cones import SocScaling, jdiv, jmul, lin_step, soc_step

REFINE_TOL = 1e-10   # iterative refinement stops where the Newton residual is below this, relative


class Rhs(NamedTuple):
    """A right-hand side (or residual) of the Newton system: d = (t, w, e, r), p, s = (Q, L, E),
    c = (Q, L, E), as the parts of cone_program.Iterate."""
    d: tuple
    p: np.ndarray
    s: tuple
    c: tuple


def _norm(x):
    """The 2-norm of a nest of tuples and lists of arrays."""
    if isinstance(x, (tuple, list)):
        return np.sqrt(sum(_norm(u) ** 2 for u in x))
    return np.linalg.norm(x)


def tri_inv(L):
    """Inverses of the lower triangular matrices L (k, m, m): LAPACK's trtri, a third of
    the work of a general inverse."""
    out = np.empty_like(L)
    for g in range(len(L)):
        out[g] = lapack.dtrtri(L[g], lower=1)[0]
    return out


def schur_rows(T, lead, mate, At):
    """R with R^T R = the cone blocks' Schur terms sum_g A_g K_g^-1 A_g^T, one row block
    S_b A_g^T per lead g (At[b] = A_g^T), where S_b^T S_b = T_g^T T_g (+ T_g'^T T_g' with its
    mate g', BlockFamily.pairs). T_g, the w-part of L_g^-1, is lower triangular, and T_g^T T_g
    is the w-part of K_g^-1; A_g' = -A_g makes the pair's two terms one, half the work. S_b:
    T_g alone; for a pair, the Cholesky factor of the sum (as accurate as the products it
    replaces: rounding of order eps ||T||^2 either way), or the R of a QR of the stacked
    factors where the sum is not numerically positive definite. Triangular products
    throughout (LAPACK lauum, BLAS trmm): a third and half the work of general ones."""
    R = np.empty((len(lead), T.shape[2], At.shape[2]))
    for b, (g, m) in enumerate(zip(lead, mate)):
        if m < 0:
            R[b] = blas.dtrmm(1.0, T[g], At[b], lower=1)
            continue
        M = lapack.dlauum(T[g], lower=1)[0]  # T_g^T T_g in the lower triangle (T's upper is 0)
        M += lapack.dlauum(T[m], lower=1)[0]
        S, info = lapack.dpotrf(M.T, lower=0, clean=1)
        if info:
            S = np.linalg.qr(np.vstack([T[g], T[m]]), mode="r")
        R[b] = blas.dtrmm(1.0, S, At[b], lower=0)
    return R.reshape(-1, At.shape[2])


def _cone_factors(cp, WQ, dL):
    """L_g^-1 of the cone blocks' K_g = W_g^-2 + [0, 0; 0, G_g^T W_L^-2 G_g] (dense), and the
    rows R of their Schur terms: A_g K_g^-1 A_g^T = R_g^T R_g, R_g = L_g^-1 [0; A_g^T], which
    stays positive semidefinite in rounding (an explicit inverse of K_g, whose condition
    number reaches 1e18 late on, does not). None where no K_g factors: a breakdown."""
    F, ci, d = cp.F, cp.ci, cp.d
    Kc = WQ.isq_matrix()[ci]
    Kc[:, 1:, 1:] += F.g_gram(ci, dL)  # (lower triangles right; cholesky reads only those)
    scale = np.trace(Kc, axis1=1, axis2=2)[:, None, None] / (d + 1)
    for kreg in (0.0, 1e-15, 1e-13, 1e-11):
        try:
            Lc = np.linalg.cholesky(Kc + kreg * scale * np.eye(d + 1))
            break
        except np.linalg.LinAlgError:
            continue
    else:
        return None
    Linv = tri_inv(Lc)
    return Linv, schur_rows(Linv[:, 1:, 1:], cp.lead, cp.mate, F.a_t(ci[cp.lead]))


def _schur(cp, WQ, dE, R):
    """H = A K^-1 A^T: the plain blocks' W_g^2 = eta_g^2 (I + 2 u_g u_g^T) through the family's
    gram and cols, the cone blocks' R^T R, the slack's and the lasso's diagonals."""
    F, n = cp.F, cp.n
    H = np.zeros((n, n))
    if len(cp.pi):
        H += F.gram(np.where(F.cone, 0.0, WQ.eta ** 2))
        C = F.cols(np.where(F.cone[:, None], 0.0, np.sqrt(2) * WQ.eta[:, None] * WQ.wb[:, 1:]))[:, cp.pi]
        H += C @ C.T
    if cp.kc:
        RR = blas.dsyrk(1.0, R.T, lower=1)  # R^T R, half the work of a product
        H += RR + np.tril(RR, -1).T
    if cp.use_e:
        H[np.diag_indices(n)] += 1 / dE[:n] + 1 / dE[n:]
    if cp.rho is not None:
        H[np.diag_indices(n)] += cp.rho
    return H


def _cho_factor(H):
    """(Cholesky factor, regularization) of H. H is positive definite in exact arithmetic (the
    slack's s/z on the diagonal), but on a small working set most of it is rank deficient at
    the scale of the large blocks: the smallest static regularization that factors, whose
    effect on the direction iterative refinement removes. None where none factors."""
    n = len(H)
    hmax = np.abs(np.diag(H)).max()
    for reg in (0.0, 1e-15, 1e-13, 1e-11, 1e-9):
        try:
            return sla.cho_factor(H + reg * hmax * np.eye(n), lower=True, check_finite=True), reg
        except (np.linalg.LinAlgError, ValueError):
            continue
    return None


class NewtonSystem:
    """The Newton system at the iterate x of the cone program cp (cone_program.ConeProgram),
    factored: scalings, the cone blocks' L_g^-1, the Cholesky factor of H. Build by `at`."""

    def __init__(self, cp, x, mu, WQ, Linv, cho, reg):
        self.cp, self.x, self.mu = cp, x, mu
        self.WQ, self.Linv, self.cho, self.reg = WQ, Linv, cho, reg
        self.lmQ = WQ.lmbda
        self.lmL = np.sqrt(x.sL * x.zL)
        self.lmE = np.sqrt(x.sE * x.zE)
        self.dL = x.zL / x.sL  # W^-2 of the linear cones
        self.dE = x.zE / x.sE

    @classmethod
    def at(cls, cp, x, mu):
        """The factored system at x (centring parameter mu), or None on a numerical breakdown."""
        WQ = SocScaling(x.sQ, x.zQ)
        Linv = R = None
        if cp.kc:
            factors = _cone_factors(cp, WQ, x.zL / x.sL)
            if factors is None:
                return None
            Linv, R = factors
        factored = _cho_factor(_schur(cp, WQ, x.zE / x.sE, R))
        if factored is None:
            return None
        return cls(cp, x, mu, WQ, Linv, *factored)

    def kinv(self, vt, vw, ve, vr):
        """K^-1 (vt, vw, ve, vr)."""
        cp = self.cp
        v = np.column_stack([vt, vw])
        out = self.WQ.sq(v)
        if cp.kc:
            Linv = self.Linv
            out[cp.ci] = (((Linv @ v[cp.ci][:, :, None]).transpose(0, 2, 1)) @ Linv)[:, 0]  # L^-T L^-1 v
        return (out[:, 0], out[:, 1:], ve / self.dE if cp.use_e else ve,
                cp.rho * vr if cp.rho is not None else vr)

    def solve(self, b):
        """The direction D with L D = b (the system of the module docstring), by elimination
        to the Schur matrix H."""
        cp, F, ci, WQ, dL, dE = self.cp, self.cp.F, self.cp.ci, self.WQ, self.dL, self.dE
        (bd_t, bd_w, bd_e, bd_r), b_p, (bsQ, bsL, bsE), (bcQ, bcL, bcE) = b
        iqQ = WQ.isq(bcQ + bsQ)
        iqL = dL * (bcL + bsL)
        iqE = dE * (bcE + bsE)
        f_t = bd_t + iqQ[:, 0]
        f_w = bd_w + iqQ[:, 1:]
        if cp.kc:
            f_w[ci] += F.g_adjoint(ci, iqL)
        f_e = bd_e + iqE
        kt, kw, ke, kr = self.kinv(f_t, f_w, f_e, bd_r)
        dlam = sla.cho_solve(self.cho, b_p - cp.A_x(kw, ke, kr), check_finite=False)
        ae = np.r_[dlam, -dlam] if cp.use_e else np.zeros(0)
        ar = -dlam if cp.rho is not None else np.zeros(0)
        dt, dW, de, dr = self.kinv(f_t, f_w + F.adjoint(dlam), f_e + ae, bd_r + ar)
        GdQ = np.column_stack([dt, dW])
        GdL = F.g_apply(ci, dW[ci]) if cp.kc else np.zeros((0, cp.n))
        dzQ = WQ.isq(bcQ + bsQ - GdQ)
        dzL = dL * (bcL + bsL - GdL)
        dzE = dE * (bcE + bsE - de)
        return Iterate(t=dt, W=dW, e=de, r=dr, lam=dlam, sQ=GdQ - bsQ, zQ=dzQ, sL=GdL - bsL, zL=dzL,
                       sE=de - bsE, zE=dzE)

    def residual(self, D, b):
        """b - L D (for iterative refinement)."""
        cp, F, ci, rho = self.cp, self.cp.F, self.cp.ci, self.cp.rho
        (bd_t, bd_w, bd_e, bd_r), b_p, (bsQ, bsL, bsE), (bcQ, bcL, bcE) = b
        e_w = bd_w + F.adjoint(D.lam) + D.zQ[:, 1:]
        if cp.kc:
            e_w[ci] += F.g_adjoint(ci, D.zL)
        e_d = (bd_t + D.zQ[:, 0], e_w,
               bd_e + (np.r_[D.lam, -D.lam] if cp.use_e else 0) + D.zE,
               bd_r - (D.r / rho + D.lam if rho is not None else 0))
        e_p = b_p - cp.A_x(D.W, D.e, D.r)
        GdQ = np.column_stack([D.t, D.W])
        GdL = F.g_apply(ci, D.W[ci]) if cp.kc else np.zeros((0, cp.n))
        e_s = (bsQ - GdQ + D.sQ, bsL - GdL + D.sL, bsE - D.e + D.sE)
        e_c = (bcQ - D.sQ - self.WQ.sq(D.zQ), bcL - D.sL - D.zL / self.dL, bcE - D.sE - D.zE / self.dE)
        return Rhs(e_d, e_p, e_s, e_c)

    def _refinements(self, refine):
        """How many refinement steps: the Schur matrix is ill-conditioned late on (small mu),
        and a regularized factorization needs them to solve the unregularized system."""
        if not refine:
            return 0
        return 3 if self.reg or self.mu < 1e-9 else 1 if self.mu < 1e-6 else 0

    def direction(self, res, rcQ, rcL, rcE, refine=True):
        """The Newton direction for the residuals res and the centring terms rc (of s o z)."""
        x = self.x
        (rd_t, rd_w, rd_e, rd_r), (rsQ, rsL, rsE) = res.rd, res.rs
        b = Rhs((-rd_t, -rd_w, -rd_e, -rd_r), -res.rp, (-rsQ, -rsL, -rsE),
                (self.WQ.mul(jdiv(self.lmQ, rcQ)), np.sqrt(x.sL / x.zL) * (rcL / self.lmL),
                 np.sqrt(x.sE / x.zE) * (rcE / self.lmE)))
        D = self.solve(b)
        for _ in range(self._refinements(refine)):
            r = self.residual(D, b)
            if _norm(r) <= REFINE_TOL * _norm(b):
                break
            D = D + self.solve(r)
        return D

    def step_length(self, D):
        """The largest step along D that keeps every s and z in its cone."""
        x = self.x
        return min(soc_step(x.sQ, D.sQ).min(initial=np.inf), soc_step(x.zQ, D.zQ).min(initial=np.inf),
                   lin_step(x.sL, D.sL), lin_step(x.zL, D.zL), lin_step(x.sE, D.sE), lin_step(x.zE, D.zE))

    def mehrotra(self, res):
        """Mehrotra's predictor-corrector step from x: the next iterate."""
        x, WQ, mu, lmQ, lmL, lmE = self.x, self.WQ, self.mu, self.lmQ, self.lmL, self.lmE
        # the predictor (affine scaling) only sets sigma and the second-order term: no refinement
        Da = self.direction(res, -jmul(lmQ, lmQ), -lmL * lmL, -lmE * lmE, refine=False)
        a_aff = min(1.0, self.step_length(Da))
        sigma = (1 - a_aff) ** self.cp.power
        # the corrector, with the second-order term (W^-1 ds_a) o (W dz_a)
        eQ = np.zeros_like(lmQ)
        eQ[:, 0] = 1
        rcQ = sigma * mu * eQ - jmul(lmQ, lmQ) - jmul(WQ.mulinv(Da.sQ), WQ.mul(Da.zQ))
        rcL = sigma * mu - lmL * lmL - (Da.sL / np.sqrt(x.sL / x.zL)) * (Da.zL * np.sqrt(x.sL / x.zL))
        rcE = sigma * mu - lmE * lmE - (Da.sE / np.sqrt(x.sE / x.zE)) * (Da.zE * np.sqrt(x.sE / x.zE))
        D = self.direction(res, rcQ, rcL, rcE)
        a = min(1.0, self.cp.to_boundary * self.step_length(D))
        return x.step(a, D)
