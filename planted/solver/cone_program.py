"""The conic program the interior-point method solves on one family of blocks (a working set).

    min  sum_g t_g + C 1^T (e+ + e-)  [+ 1/(2 rho) ||r||^2]
    s.t. sum_g A_g w_g + e+ - e-  [- r] = y,  (t_g, w_g) in SOC,  G_g w_g >= 0,  e+- >= 0

(the programs of docs/reference.md §3 in the scaling of program.Program), in the standard form
min c^T x + 1/2 x^T P x,  A x = y,  s = G x in K, with primal x = (t, W, e, r) and separate
slacks s and multipliers z for the three kinds of cones: SOC (t_g, w_g) "Q", the linear
cones G_g w_g "L", the slack's e >= 0 "E" (an infeasible start: s = G x only at the limit).

The slack e (an exact penalty for feasibility, cost C per unit) is used for basis pursuit
only: it keeps every working-set subproblem feasible. The lasso (rho) is always feasible,
and has the residual r instead.
"""
from dataclasses import dataclass, fields

import numpy as np


@dataclass
class Iterate:
    """A primal-dual point of the cone program, or a Newton direction (the same parts):
    t (k,), W (k, d), e (ne,), r (n or 0,), lam (n,), sQ and zQ (k, 1 + d),
    sL and zL (kc, n) on the cone blocks, sE and zE (ne,)."""
    t: np.ndarray
    W: np.ndarray
    e: np.ndarray
    r: np.ndarray
    lam: np.ndarray
    sQ: np.ndarray
    zQ: np.ndarray
    sL: np.ndarray
    zL: np.ndarray
    sE: np.ndarray
    zE: np.ndarray

    def parts(self):
        return [getattr(self, f.name) for f in fields(self)]

    def __add__(self, other):
        return Iterate(*(u + v for u, v in zip(self.parts(), other.parts())))

    def step(self, a, D):
        """The point a step a along the direction D."""
        return Iterate(*(u + a * v for u, v in zip(self.parts(), D.parts())))

    def complementarity(self):
        """s^T z over all cones: nu times the centring parameter mu."""
        return (self.sQ * self.zQ).sum() + (self.sL * self.zL).sum() + self.sE @ self.zE


@dataclass
class Residuals:
    """The optimality residuals at an iterate: rd = c + P x - A^T lam - G^T z (parts t, w, e,
    r), rp = A x - y, rs = G x - s (parts Q, L, E); objectives, s^T z, and the error the
    stopping test reads: max(relative primal residual, dual residual, relative gap)."""
    rd: tuple
    rp: np.ndarray
    rs: tuple
    pobj: float
    dobj: float
    gap: float
    err: float


class ConeProgram:
    """The cone program of family F and the scaled program prog (labels y, weight rho), with
    slack cost `cost`: its layout (which blocks carry cones, which variables exist), the
    map A, the cold start and the residuals."""

    def __init__(self, F, prog, cost):
        self.F, self.y, self.rho, self.cost = F, prog.y, prog.rho, cost
        self.n, self.d, self.k = F.n, F.d, F.k
        self.ci = np.flatnonzero(F.cone)
        self.pi = np.flatnonzero(~F.cone)
        self.kc = len(self.ci)
        self.use_e = not prog.lasso
        self.ne = 2 * self.n if self.use_e else 0
        self.nu = self.k + self.kc * self.n + self.ne  # the barrier parameter: cones' degrees
        self.ynorm = np.linalg.norm(self.y)
        # a cone block and its opposite-sign copy (A_g = -A_g') share one Schur term (newton)
        self.lead, self.mate = F.pairs(self.ci)
        # Mehrotra's centring sigma = (1 - a_aff)^3, and steps 0.99 of the way to the boundary;
        # with cone blocks the program is degenerate (most blocks end at their cones' apex), and
        # more central iterates take fewer iterations there: sigma = (1 - a_aff)^4 and 0.95
        self.power, self.to_boundary = (4, 0.95) if self.kc else (3, 0.99)

    def A_x(self, W, e, r):
        """A x = sum_g A_g w_g + e+ - e- - r."""
        out = self.F.apply(W)
        if self.use_e:
            out = out + e[:self.n] - e[self.n:]
        if self.rho is not None:
            out = out - r
        return out

    def start(self):
        """The cold start: t = 1, w = 0 (s_Q = z_Q = e, the cones' centres)."""
        n, d, k, cost = self.n, self.d, self.k, self.cost
        e = np.full(self.ne, 1 / cost)  # s o z = 1 at the start, z_E = C: dual feasible
        sQ = np.zeros((k, d + 1))
        sQ[:, 0] = 1
        # the linear cones start at the scale of their entries at the optimum: with ||y|| = 1
        # and unit-norm data columns (or orthonormal U_i), G_g w_g and its multipliers are
        # about 1/sqrt(n) per row
        sL = np.full((self.kc, n), 1 / np.sqrt(n))
        return Iterate(t=np.ones(k), W=np.zeros((k, d)), e=e, r=np.zeros(n if self.rho is not None else 0),
                       lam=np.zeros(n), sQ=sQ, zQ=sQ.copy(), sL=sL, zL=sL.copy(), sE=e.copy(),
                       zE=np.full(self.ne, cost))

    def residuals(self, x):
        F, ci, kc, n, rho, cost, y = self.F, self.ci, self.kc, self.n, self.rho, self.cost, self.y
        rd_t = 1 - x.zQ[:, 0]
        rd_w = -F.adjoint(x.lam) - x.zQ[:, 1:]
        if kc:
            rd_w[ci] -= F.g_adjoint(ci, x.zL)
        rd_e = cost - np.r_[x.lam, -x.lam] - x.zE if self.use_e else np.zeros(0)
        rd_r = x.r / rho + x.lam if rho is not None else np.zeros(0)
        rp = self.A_x(x.W, x.e, x.r) - y
        rsQ = np.column_stack([x.t, x.W]) - x.sQ
        rsL = F.g_apply(ci, x.W[ci]) - x.sL if kc else np.zeros((0, n))
        rsE = x.e - x.sE
        pobj = x.t.sum() + cost * x.e.sum() + (x.r @ x.r / (2 * rho) if rho is not None else 0)
        dobj = y @ x.lam - (rho / 2 * x.lam @ x.lam if rho is not None else 0)
        gap = x.complementarity()
        pres = max(np.linalg.norm(rp), np.linalg.norm(rsQ), np.linalg.norm(rsL),
                   np.linalg.norm(rsE)) / (1 + self.ynorm)
        dres = np.sqrt((rd_t @ rd_t) + (rd_w * rd_w).sum() + rd_e @ rd_e + rd_r @ rd_r) / (1 + np.sqrt(self.k))
        rgap = max(gap, abs(pobj - dobj)) / max(1.0, abs(pobj))
        return Residuals(rd=(rd_t, rd_w, rd_e, rd_r), rp=rp, rs=(rsQ, rsL, rsE), pobj=pobj, dobj=dobj,
                         gap=gap, err=max(pres, dres, rgap))
