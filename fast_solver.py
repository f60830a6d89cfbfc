"""A fast, certified solver for the convex programs of reference.md section 3 (issue 4).

Every program is a group basis pursuit / group lasso over blocks A_g (n x d):

    (BP)     min  sum_g ||w_g||                          s.t. sum_g A_g w_g = y,  G_g w_g >= 0
    (LASSO)  min  1/2 ||sum_g A_g w_g - y||^2 + beta sum_g ||w_g||,               G_g w_g >= 0

with the optional linear cones G_g w_g >= 0 on some blocks. Their duals (scaled to beta = 1
for the lasso, see `_ipm`):

    max  y^T lam  [- beta/2 ||lam||^2]   s.t.  ||A_g^T lam + G_g^T mu_g|| <= 1,  mu_g >= 0.

ReLU blocks (reference §3a-d): A_g = +-D_i X, G_g = (2 D_i - I) X; the skip block is A_0 = X.
Normalization-layer blocks (§3e): A_g = +-U_i, G_g = (2 D_i - I) X V_i Sigma_i^-1.

Method (chosen by measurement, see bench_solvers.py and the report of issue 4):
- a primal-dual interior-point method (NT scaling, Mehrotra predictor-corrector) whose Newton
  system is reduced to the n x n dual Schur matrix  sum_g A_g K_g^-1 A_g^T.  For plain
  second-order-cone blocks K_g^-1 = eta_g^2 (I + 2 u_g u_g^T), so for ReLU blocks the matrix is
  (X X^T) o (M diag(eta^2) M^T) + V V^T: two n x P x n products per iteration, no n x Pd matrix.
- a working set: the interior-point method runs on the blocks that can be active, grown by the
  most violated dual constraints of the whole family (all block products X^T (M o lam) in one
  matrix product); cone blocks need an NNLS projection to evaluate their dual constraint,
  first bounded from above by a batched projected-gradient screen, which settles most blocks.
  A round's subproblem is solved to ROUND_TOL only, and taken on to IPM_TOL from the same
  iterate where that finds no block to add (most rounds are not the last). In the cone forms
  a block joins with its opposite-sign copy, which keeps the round's dual optimum bounded.
  Blocks whose dual constraint is active (== 1, a possible tie) always join the working set, so
  that the interior-point method, which converges to the relative interior of the optimal
  face, sees every optimal solution: on a tie (e.g. the all-ones pattern next to the skip
  block) the returned point spreads over the tied blocks, exactly like CVXPY + Clarabel.
- cone forms start from their relaxation (the same program without cones, cheap): where its
  optimum is unique and meets the cones it is the cone form's optimum (`_via_relaxation`),
  else its support, both signs, is the starting working set (cone blocks cost n d^2 + n^2 d
  each per iteration, so they should enter only where needed). Other starting sets: the
  skip block; the blocks best correlated with y and with the least-squares dual.
- an exact-penalty l1 slack (cost SLACK_COST per unit) keeps every working-set subproblem
  feasible; a slack left over at the end means the program itself is infeasible.
- a certificate from the final primal point and a dual-feasible lam (lam scaled down by its
  largest dual constraint): relative primal residual, dual violation, relative duality gap.
  A solve whose certificate is not tight to CERT_TOL raises convex.SolveFailed.
- where the interior-point method stalls just short of that (its late Newton directions lose
  accuracy on degenerate blocks), two fallbacks, each kept only where it improves the
  certificate: the working set rerun from the support and the active blocks, then Newton's
  method on the optimality conditions on the support and its active cone rows (`_polish`).
"""
import warnings

import numpy as np
import scipy.linalg as sla
from scipy.linalg import blas, lapack
from scipy.optimize import nnls

from convex import SolveFailed, norm_cone_matrices

CERT_TOL = 1e-8      # certificate: relative residual, dual violation and gap must be below
IPM_TOL = 1e-10      # interior-point stopping tolerance (relative)
ROUND_TOL = 1e-6     # ... of a working-set round that may not be the last
TIE_TOL = 1e-6       # a dual constraint within this of 1 is active: its block may be optimal
SLACK_COST = 1e3     # exact penalty of the feasibility slack (>> any dual lam entry we meet)
MAX_ITER = 80
PROJ_MEMORY = 2 ** 28  # bytes of cached n x n projectors per working set (normalization blocks)
SCREEN_MIN = 20      # a batch screen of the cone blocks' dual values pays from this many
WARM_ERR = 1e-2     # a round's iterate kept to start the next one from (see _warm_state)
WARM_ITER = 50      # ... which falls back to a cold start if it has not converged by then
WARM_ADD = 0.25     # ... only where it adds at most this fraction of its blocks (more: no gain)
PRUNE_TOL = 1e-4     # the retry after a loose certificate keeps the blocks with v_g >= 1 - this
REFINE_TOL = 1e-10   # iterative refinement stops where the Newton residual is below this, relative


# ------------------------------------------------------------------------------------------
# Block families: the linear algebra the interior-point method needs, for a set of blocks.

class ReluBlocks:
    """Blocks A_g = sign_g diag(m_g) X (mask m_g in {0,1}^n; the skip block has m = 1), with
    the cone G_g = diag(2 m_g - 1) X on blocks flagged `cone`."""

    def __init__(self, X, masks, signs, cone, XXt=None):
        self.X = X
        self.Mk = np.asarray(masks, float)
        self.sg = np.asarray(signs, float)
        self.cone = np.asarray(cone, bool)
        self.XXt = X @ X.T if XXt is None else XXt
        self.n, self.d = X.shape
        self.k = self.Mk.shape[1]
        self._at = None
        self.mu_cache = {}  # block -> its last NNLS cone multiplier (see _dual_values)
        self.lip_cache = {}  # block -> ||G_g||^2 estimate (see _cone_screen)
        self.twin = None  # block -> its opposite-sign copy, -1 if none (cone forms; see _working_set)

    def subset(self, idx):
        sub = ReluBlocks(self.X, self.Mk[:, idx], self.sg[idx], self.cone[idx], self.XXt)
        sub.twin = _subset_twin(self.twin, idx)
        return sub

    def apply(self, Wb):
        """sum_g A_g w_g for Wb of shape (k, d)."""
        return ((self.X @ Wb.T) * self.Mk) @ self.sg

    def adjoint(self, lam):
        """A_g^T lam for every block, shape (k, d): one d x n x k product."""
        return (self.X.T @ (self.Mk * lam[:, None])).T * self.sg[:, None]

    def gram(self, c):
        """sum_g c_g A_g A_g^T = (X X^T) o (M diag(c) M^T)."""
        return ((self.Mk * c) @ self.Mk.T) * self.XXt

    def cols(self, U):
        """The n x k matrix of columns A_g u_g."""
        return (self.X @ U.T) * self.Mk * self.sg

    # the cone blocks, indices ci into this family
    def g_apply(self, ci, Wc):
        return (self.X @ Wc.T).T * (2 * self.Mk[:, ci].T - 1)

    def g_adjoint(self, ci, Z):
        return (Z * (2 * self.Mk[:, ci].T - 1)) @ self.X

    def g_ops(self, gs):
        """(W -> G_g w_g, Z -> G_g^T z_g) over the blocks gs (see DenseBlocks.g_ops)."""
        return (lambda W: self.g_apply(gs, W)), (lambda Z: self.g_adjoint(gs, Z))

    def g_normal(self, gs):
        """Z -> G_g^T G_g z_g over the blocks gs: X^T X z_g (the signs square to 1)."""
        XtX = self.X.T @ self.X
        return lambda Z: Z @ XtX

    def g_gram(self, ci, C):
        """G_g^T diag(c_g) G_g = X^T diag(c_g) X (the signs square to 1), shape (kc, d, d):
        lower triangles only (see _syrk_grams)."""
        return _syrk_grams(lambda j: self.X, C)

    def a_t(self, ci):
        """The A_g^T of the cone blocks, explicit: (kc, d, n), kept for the IPM's iterations."""
        if self._at is None or not np.array_equal(self._at[0], ci):
            self._at = (ci, self.X.T[None] * (self.Mk[:, ci].T * self.sg[ci, None])[:, None, :])
        return self._at[1]

    def g_matrix(self, g):
        return (2 * self.Mk[:, g] - 1)[:, None] * self.X


class DenseBlocks:
    """Explicit blocks A_g = sign_g U[base_g] (U: (Pb, n, d) base matrices, zero-padded to a
    common width d: padded coordinates only enter the norm, so they are 0 at the optimum),
    with cones G[base_g] w >= 0 (G: (Pb, m, d), or anything indexed like it) on blocks flagged
    `cone`. The normalization layer of §3e: U_i from the compact SVD of D_i X,
    G_i = (2 D_i - I) X V_i Sigma_i^-1. Blocks index the base arrays, so the +- copies of the
    exact form share memory."""

    def __init__(self, U, base, signs, cone, G=None):
        self.U, self.G = U, G
        self.base = np.asarray(base, int)
        self.sg = np.asarray(signs, float)
        self.cone = np.asarray(cone, bool)
        self.k = len(self.base)
        self.n, self.d = U.shape[1], U.shape[2]
        self._proj = None  # the projectors U_b U_b^T, once gram needs them
        self._gc = None  # (ci, G of the blocks ci)
        self._at = None  # (ci, A^T of the blocks ci)
        self.mu_cache = {}  # block -> its last NNLS cone multiplier (see _dual_values)
        self.lip_cache = {}  # block -> ||G_g||^2 estimate (see _cone_screen)
        self.twin = None  # block -> its opposite-sign copy, -1 if none (cone forms; see _working_set)

    def subset(self, idx):
        # a compact copy of the base blocks used: every product then runs over these only
        ub, base = np.unique(self.base[idx], return_inverse=True)
        sub = DenseBlocks(self.U[ub], base, self.sg[idx], self.cone[idx],
                          None if self.G is None else self.G[ub])
        sub.twin = _subset_twin(self.twin, idx)
        return sub

    def apply(self, Wb):
        # summed per base block first: the zero blocks (most of them, in a certificate) and
        # the copies of a base block then cost nothing
        Wbase = np.zeros((len(self.U), self.d))
        np.add.at(Wbase, self.base, Wb * self.sg[:, None])
        used = np.flatnonzero(Wbase.any(1))
        U = self.U if len(used) == len(self.U) else self.U[used]
        return np.einsum("gnd,gd->n", U, Wbase[used])

    def adjoint(self, lam):
        # one product over the distinct base blocks, then gathered
        V = np.einsum("gnd,n->gd", self.U, lam)
        return V[self.base] * self.sg[:, None]

    def gram(self, c):
        """sum_g c_g A_g A_g^T = sum_b (summed c)_b U_b U_b^T over the base blocks. A working
        set's projectors U_b U_b^T are computed once and kept (when they fit in PROJ_MEMORY):
        each IPM iteration is then a weighted sum of n x n matrices, not an n x (k d) product."""
        cb = np.bincount(self.base, weights=c, minlength=len(self.U))
        if self._proj is None and len(self.U) * self.n ** 2 * 8 <= PROJ_MEMORY:
            self._proj = self.U @ self.U.transpose(0, 2, 1)
        if self._proj is not None:
            return np.tensordot(cb, self._proj, axes=1)
        keep = np.flatnonzero(cb > 0)
        B = self.U[keep] * np.sqrt(cb[keep])[:, None, None]
        B = B.transpose(1, 0, 2).reshape(self.n, -1)
        return B @ B.T

    def cols(self, U):
        return np.einsum("gnd,gd->ng", self.U[self.base], U * self.sg[:, None])

    def _cones(self, ci):
        """G of the cone blocks ci, gathered once per IPM (ci is the same at every iteration)."""
        if self._gc is None or not np.array_equal(self._gc[0], ci):
            self._gc = (ci, self.G[self.base[ci]])
        return self._gc[1]

    def g_apply(self, ci, Wc):
        return np.einsum("gmd,gd->gm", self._cones(ci), Wc)

    def g_adjoint(self, ci, Z):
        return np.einsum("gmd,gm->gd", self._cones(ci), Z)

    def g_ops(self, gs):
        """(W -> G_g w_g, Z -> G_g^T z_g) over the blocks gs, for batches of many blocks of
        the whole family: with lazy cones (`_LazyCones.ops`) without forming them."""
        if hasattr(self.G, "ops"):
            return self.G.ops(self.base[gs])
        G = self.G[self.base[gs]]
        return (lambda W: np.einsum("gmd,gd->gm", G, W)), (lambda Z: np.einsum("gmd,gm->gd", G, Z))

    def g_normal(self, gs):
        """Z -> G_g^T G_g z_g over the blocks gs (with lazy cones without forming G)."""
        if hasattr(self.G, "normal"):
            return self.G.normal(self.base[gs])
        G, Gt = self.g_ops(gs)
        return lambda Z: Gt(G(Z))

    def g_gram(self, ci, C):
        G = self._cones(ci)
        return _syrk_grams(lambda j: G[j], C)

    def a_t(self, ci):
        if self._at is None or not np.array_equal(self._at[0], ci):
            self._at = (ci, self.U[self.base[ci]].transpose(0, 2, 1) * self.sg[ci, None, None])
        return self._at[1]

    def g_matrix(self, g):
        return self.G[self.base[g]]


def _subset_twin(twin, idx):
    """The opposite-sign copies (see ReluBlocks.twin) within the subset idx of the blocks."""
    if twin is None:
        return None
    idx = np.asarray(idx, int)
    pos = np.full(len(twin), -1)
    pos[idx] = np.arange(len(idx))
    tw = twin[idx]
    return np.where(tw >= 0, pos[np.maximum(tw, 0)], -1)


def _syrk_grams(G, C):
    """The lower triangles (upper parts 0) of G(j)^T diag(c_j) G(j) for the rows c_j of C >= 0:
    one syrk per block, half the work of a product and at n 270, d 100 twice as fast as a
    batched matmul; the Cholesky factorizations that use them read only lower triangles."""
    S = np.sqrt(C)
    out = np.empty((len(C),) + (G(0).shape[1],) * 2) if len(C) else np.zeros((0, 0, 0))
    for j in range(len(C)):
        out[j] = blas.dsyrk(1.0, G(j) * S[j][:, None], trans=1, lower=1)
    return out


# ------------------------------------------------------------------------------------------
# Second-order cone algebra on arrays of shape (k, 1 + d): column 0 is the "t" part.

def _jdot(u, v):
    return u[:, 0] * v[:, 0] - np.einsum("ij,ij->i", u[:, 1:], v[:, 1:])


def _det(u):
    """u0^2 - ||u1||^2, factored to avoid cancellation near the cone's boundary."""
    nu1 = np.linalg.norm(u[:, 1:], axis=1)
    # clipped at a relative 1e-300: rounding may put a point that is on the boundary to
    # working precision just outside
    return np.maximum((u[:, 0] - nu1) * (u[:, 0] + nu1), 1e-300 * u[:, 0] ** 2)


def _jmul(u, v):
    """Jordan product u o v = (u^T v, u0 v1 + v0 u1)."""
    out = np.empty_like(u)
    out[:, 0] = np.einsum("ij,ij->i", u, v)
    out[:, 1:] = u[:, :1] * v[:, 1:] + v[:, :1] * u[:, 1:]
    return out


def _jdiv(u, r):
    """x with u o x = r."""
    x = np.empty_like(r)
    x[:, 0] = (u[:, 0] * r[:, 0] - np.einsum("ij,ij->i", u[:, 1:], r[:, 1:])) / _det(u)
    x[:, 1:] = (r[:, 1:] - x[:, :1] * u[:, 1:]) / u[:, :1]
    return x


def _soc_step(u, du):
    """Largest a in [0, inf] with u + a du in the cone (u inside): smallest positive root of
    det(u + a du) = c + 2 b a + a a^2, det(v) = v0^2 - ||v1||^2 (the cone's two halves are
    separated by det = 0, so leaving the cone means crossing it)."""
    a = _jdot(du, du)
    b = _jdot(u, du)
    c = _det(u)
    disc = b * b - a * c
    out = np.full(len(u), np.inf)
    real = disc >= 0
    sq = np.sqrt(np.where(real, disc, 0.0))
    q = -(b + np.copysign(sq, b))
    with np.errstate(divide="ignore", invalid="ignore"):
        r1 = np.where(real & (a != 0), q / a, np.inf)
        r2 = np.where(real & (q != 0), c / q, np.inf)
    for r in (r1, r2):
        out = np.where((r > 0) & (r < out), r, out)
    return out


def _lin_step(u, du):
    with np.errstate(divide="ignore"):
        r = np.where(du < 0, -u / du, np.inf)
    return r.min() if r.size else np.inf


class _SocScaling:
    """Nesterov-Todd scaling W of SOC pairs (s, z): W z = W^-1 s = lmbda, W symmetric,
    W = eta (2 v v^T - J), W^2 = eta^2 (2 wb wb^T - J), W^-2 = eta^-2 (2 J wb wb^T J - J)."""

    def __init__(self, s, z):
        sn = np.sqrt(_det(s))
        zn = np.sqrt(_det(z))
        sb = s / sn[:, None]
        zb = z / zn[:, None]
        gam = np.sqrt((1 + np.einsum("ij,ij->i", sb, zb)) / 2)
        zbJ = zb.copy()
        zbJ[:, 1:] *= -1
        self.wb = (sb + zbJ) / (2 * gam[:, None])
        self.eta = np.sqrt(sn / zn)
        self.v = self.wb.copy()
        self.v[:, 0] += 1
        self.v /= np.sqrt(2 * (self.wb[:, 0] + 1))[:, None]
        self.lmbda = self.mul(z)

    @staticmethod
    def _J(u):
        u = u.copy()
        u[:, 1:] *= -1
        return u

    def mul(self, u):      # W u
        return self.eta[:, None] * (2 * self.v * np.einsum("ij,ij->i", self.v, u)[:, None] - self._J(u))

    def mulinv(self, u):   # W^-1 u
        Jv = self._J(self.v)
        return (2 * Jv * np.einsum("ij,ij->i", Jv, u)[:, None] - self._J(u)) / self.eta[:, None]

    def sq(self, u):       # W^2 u
        w = self.wb
        return self.eta[:, None] ** 2 * (2 * w * np.einsum("ij,ij->i", w, u)[:, None] - self._J(u))

    def isq(self, u):      # W^-2 u
        Jw = self._J(self.wb)
        return (2 * Jw * np.einsum("ij,ij->i", Jw, u)[:, None] - self._J(u)) / self.eta[:, None] ** 2

    def isq_matrix(self):  # W^-2 as (k, 1+d, 1+d) matrices
        Jw = self._J(self.wb)
        m = Jw.shape[1]
        J = np.diag(np.r_[1.0, -np.ones(m - 1)])
        return (2 * Jw[:, :, None] * Jw[:, None, :] - J) / self.eta[:, None, None] ** 2


def _norm(x):
    """The 2-norm of a nest of tuples and lists of arrays."""
    if isinstance(x, (tuple, list)):
        return np.sqrt(sum(_norm(u) ** 2 for u in x))
    return np.linalg.norm(x)


def _tri_inv(L):
    """Inverses of the lower triangular matrices L (k, m, m): LAPACK's trtri, a third of
    the work of a general inverse."""
    out = np.empty_like(L)
    for g in range(len(L)):
        out[g] = lapack.dtrtri(L[g], lower=1)[0]
    return out


def _pairs(F, ci):
    """The cone blocks ci grouped by their A_g up to sign: positions `lead` into ci, one per
    group, and `mate` (the position of the lead's opposite-sign copy F.twin, -1 if that is
    not in ci)."""
    if F.twin is None:
        return np.arange(len(ci)), np.full(len(ci), -1)
    pos = {g: j for j, g in enumerate(ci.tolist())}
    lead, mate = [], []
    for j, g in enumerate(ci.tolist()):
        m = pos.get(int(F.twin[g]), -1)
        if m < 0 or m > j:
            lead.append(j)
            mate.append(m)
    return np.array(lead, int), np.array(mate, int)


def _schur_rows(T, lead, mate, At):
    """R with R^T R = the cone blocks' Schur terms sum_g A_g K_g^-1 A_g^T, one row block
    S_b A_g^T per lead g (At[b] = A_g^T), where S_b^T S_b = T_g^T T_g (+ T_g'^T T_g' with its
    mate g'). T_g, the w-part of L_g^-1, is lower triangular, and T_g^T T_g is the w-part of
    K_g^-1; A_g' = -A_g makes the pair's two terms one, half the work. S_b: T_g alone;
    for a pair, the Cholesky factor of the sum (as accurate as the products it replaces:
    rounding of order eps ||T||^2 either way), or the R of a QR of the stacked factors where
    the sum is not numerically positive definite. Triangular products throughout (LAPACK
    lauum, BLAS trmm): a third and half the work of general ones."""
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


# ------------------------------------------------------------------------------------------
# The interior-point method on one family of blocks.

def _ipm(F, y, **kw):
    """_ipm_core with floating-point warnings off: a late numerical breakdown is caught there
    by keeping the best iterate, and the certificate judges the result anyway."""
    with np.errstate(all="ignore"):
        return _ipm_core(F, y, **kw)


def _ipm_core(F, y, rho=None, slack=True, cost=SLACK_COST, tol=IPM_TOL, max_iter=MAX_ITER, state=None,
              warm_err=None):
    """Primal-dual IPM (NT scaling, Mehrotra) for

        min  sum_g t_g + C 1^T (e+ + e-)  [+ 1/(2 rho) ||r||^2]
        s.t. sum_g A_g w_g + e+ - e-  [- r] = y,  (t_g, w_g) in SOC,  G_g w_g >= 0,  e+-  >= 0

    in the form  min c^T x + 1/2 x^T P x,  Ax = y,  s = Gx in K  (s, z separate: infeasible
    start). Newton system reduced to  (A K^-1 A^T) dlam = rhs,  K = P + G^T W^-2 G, block
    diagonal; for plain SOC blocks K_g^-1 = W_g^2 in closed form. The slack e (exact penalty
    for feasibility) is used only without rho; with rho the lasso is always feasible.
    Returns dict(W, t, lam, mu, e, r, pobj, dobj, iters, converged, state, warm): `state` (the
    iterate where it stopped at a loose tol; None after a breakdown) resumes it, on the same
    F, y, rho, cost, toward a tighter tol; `warm` is the first iterate with error below
    warm_err (None if none), from which `_warm_state` starts a larger working set.
    """
    n, d, k = F.n, F.d, F.k
    ci = np.flatnonzero(F.cone)
    pi = np.flatnonzero(~F.cone)
    kc = len(ci)
    use_e = slack and rho is None
    ne = 2 * n if use_e else 0
    # primal x = (t, Wb, e, r); cone variables s, z for SOC (k,1+d), lin (kc,n), e (ne)
    t = np.ones(k)
    Wb = np.zeros((k, d))
    e = np.full(ne, 1 / cost)  # s o z = 1 at the start, z_E = C: dual feasible
    r = np.zeros(n if rho is not None else 0)
    lam = np.zeros(n)
    sQ = np.zeros((k, d + 1)); sQ[:, 0] = 1
    zQ = sQ.copy()
    # the linear cones start at the scale of their entries at the optimum: with ||y|| = 1 and
    # unit-norm data columns (or orthonormal U_i), G_g w_g and its multipliers are about
    # 1/sqrt(n) per row (a start at 1 took 7-10% more block-iterations on 110 sample cells)
    sL = np.full((kc, n), 1 / np.sqrt(n)); zL = sL.copy()
    sE = e.copy(); zE = np.full(ne, cost)
    nu = k + kc * n + ne
    ynorm = np.linalg.norm(y)

    # a cone block and its opposite-sign copy (A_g = -A_g') share one Schur term (_schur_rows)
    lead, mate = _pairs(F, ci)
    # Mehrotra's centring sigma = (1 - a_aff)^3, and steps 0.99 of the way to the boundary;
    # with cone blocks the program is degenerate (most blocks end at their cones' apex), and
    # more central iterates take fewer iterations there: sigma = (1 - a_aff)^4 and 0.95 (on 230
    # sample cells 5-14% fewer block-iterations; in relaxed rounds they cost 2-19% more)
    power, to_boundary = (4, 0.95) if kc else (3, 0.99)

    it0, best, warm = 0, None, None
    if state is not None:
        t, Wb, e, r, lam, sQ, zQ, sL, zL, sE, zE, it0, best = state

    def A_x(Wb, e, r):
        out = F.apply(Wb)
        if use_e:
            out = out + e[:n] - e[n:]
        if rho is not None:
            out = out - r
        return out

    stop = None
    for it in range(it0, max_iter):
        # residuals: rd = c + Px - A^T lam - G^T z, rp = Ax - y, rs = Gx - s
        ATl = F.adjoint(lam)
        rd_t = 1 - zQ[:, 0]
        rd_w = -ATl - zQ[:, 1:]
        if kc:
            rd_w[ci] -= F.g_adjoint(ci, zL)
        rd_e = cost - np.r_[lam, -lam] - zE if use_e else np.zeros(0)
        rd_r = r / rho + lam if rho is not None else np.zeros(0)
        rp = A_x(Wb, e, r) - y
        rsQ = np.column_stack([t, Wb]) - sQ
        rsL = F.g_apply(ci, Wb[ci]) - sL if kc else np.zeros((0, n))
        rsE = e - sE
        pobj = t.sum() + cost * e.sum() + (r @ r / (2 * rho) if rho is not None else 0)
        dobj = y @ lam - (rho / 2 * lam @ lam if rho is not None else 0)
        gap = (sQ * zQ).sum() + (sL * zL).sum() + sE @ zE
        pres = max(np.linalg.norm(rp), np.linalg.norm(rsQ), np.linalg.norm(rsL), np.linalg.norm(rsE)) / (1 + ynorm)
        dres = np.sqrt((rd_t @ rd_t) + (rd_w * rd_w).sum() + rd_e @ rd_e + rd_r @ rd_r) / (1 + np.sqrt(k))
        rgap = max(gap, abs(pobj - dobj)) / max(1.0, abs(pobj))
        err = max(pres, dres, rgap)
        if best is None or err < best[0]:
            best = (err, dict(W=Wb, t=t, lam=lam, mu=zL, e=e, r=r, pobj=pobj, dobj=dobj, iters=it,
                              err=err))
        if warm is None and warm_err is not None and err < warm_err:
            warm = (t, Wb, e, r, lam, sQ, zQ, sL, zL, sE, zE)
        if err < tol:
            stop = (t, Wb, e, r, lam, sQ, zQ, sL, zL, sE, zE, it, best)
            break
        if (best[0] < 1e-8 and err > 10 * best[0]) or (it > 10 and err > 1e3 * best[0]):
            break  # numerical breakdown far below the starting error: keep the best iterate
        mu = gap / nu

        # scalings
        WQ = _SocScaling(sQ, zQ)
        lmQ = WQ.lmbda
        lmL = np.sqrt(sL * zL)
        lmE = np.sqrt(sE * zE)
        dL = zL / sL  # W^-2 of the linear cones
        dE = zE / sE

        # K^-1 per block: plain SOC blocks W^2 (closed form); cone blocks dense
        if kc:
            # K_g = W_g^-2 + [0, 0; 0, G_g^T W_L^-2 G_g], dense; its Cholesky factor L_g gives
            # the Schur term A_g K_g^-1 A_g^T = R_g^T R_g, R_g = L_g^-1 [0; A_g^T], which stays
            # positive semidefinite in rounding (an explicit inverse of K_g, whose condition
            # number reaches 1e18 late on, does not)
            Kc = WQ.isq_matrix()[ci]
            Kc[:, 1:, 1:] += F.g_gram(ci, dL)  # (lower triangles right; cholesky reads only those)
            Lc = None
            scale = np.trace(Kc, axis1=1, axis2=2)[:, None, None] / (d + 1)
            for kreg in (0.0, 1e-15, 1e-13, 1e-11):
                try:
                    Lc = np.linalg.cholesky(Kc + kreg * scale * np.eye(d + 1))
                    break
                except np.linalg.LinAlgError:
                    continue
            if Lc is None:
                break  # numerical breakdown: keep the best iterate
            Linv = _tri_inv(Lc)
            R = _schur_rows(Linv[:, 1:, 1:], lead, mate, F.a_t(ci[lead]))
        H = np.zeros((n, n))
        if len(pi):  # the plain blocks' W_g^2 = eta_g^2 (I + 2 u_g u_g^T)
            H += F.gram(np.where(F.cone, 0.0, WQ.eta ** 2))
            C = F.cols(np.where(F.cone[:, None], 0.0, np.sqrt(2) * WQ.eta[:, None] * WQ.wb[:, 1:]))[:, pi]
            H += C @ C.T
        if kc:
            RR = blas.dsyrk(1.0, R.T, lower=1)  # R^T R, half the work of a product
            H += RR + np.tril(RR, -1).T
        if use_e:
            H[np.diag_indices(n)] += 1 / dE[:n] + 1 / dE[n:]
        if rho is not None:
            H[np.diag_indices(n)] += rho
        # H is positive definite in exact arithmetic (the slack's s/z on the diagonal), but
        # on a small working set most of it is rank deficient at the scale of the large
        # blocks: add the smallest static regularization that factors, and let iterative
        # refinement (in `newton`) remove its effect on the direction
        cho, reg = None, 0.0
        hmax = np.abs(np.diag(H)).max()
        for reg in (0.0, 1e-15, 1e-13, 1e-11, 1e-9):
            try:
                cho = sla.cho_factor(H + reg * hmax * np.eye(n), lower=True, check_finite=True)
                break
            except (np.linalg.LinAlgError, ValueError):
                continue
        if cho is None:
            break  # numerical breakdown: keep the best iterate

        def Kinv(vt, vw, ve, vr):
            """K^-1 (vt, vw, ve, vr)."""
            v = np.column_stack([vt, vw])
            out = WQ.sq(v)
            if kc:
                out[ci] = (((Linv @ v[ci][:, :, None]).transpose(0, 2, 1)) @ Linv)[:, 0]  # L^-T L^-1 v
            return out[:, 0], out[:, 1:], ve / dE if use_e else ve, rho * vr if rho is not None else vr

        def solve(b_d, b_p, b_s, b_c):
            """The Newton system  P dx - A^T dlam - G^T dz = b_d,  A dx = b_p,  G dx - ds = b_s,
            ds + W^2 dz = b_c,  by elimination to the Schur matrix H = A K^-1 A^T."""
            (bd_t, bd_w, bd_e, bd_r), (bsQ, bsL, bsE), (bcQ, bcL, bcE) = b_d, b_s, b_c
            iqQ = WQ.isq(bcQ + bsQ)
            iqL = dL * (bcL + bsL)
            iqE = dE * (bcE + bsE)
            f_t = bd_t + iqQ[:, 0]
            f_w = bd_w + iqQ[:, 1:]
            if kc:
                f_w[ci] += F.g_adjoint(ci, iqL)
            f_e = bd_e + iqE
            kt, kw, ke, kr = Kinv(f_t, f_w, f_e, bd_r)
            dlam = sla.cho_solve(cho, b_p - A_x(kw, ke, kr), check_finite=False)
            ae = np.r_[dlam, -dlam] if use_e else np.zeros(0)
            ar = -dlam if rho is not None else np.zeros(0)
            dt, dW, de, dr = Kinv(f_t, f_w + F.adjoint(dlam), f_e + ae, bd_r + ar)
            GdQ = np.column_stack([dt, dW])
            GdL = F.g_apply(ci, dW[ci]) if kc else np.zeros((0, n))
            dzQ = WQ.isq(bcQ + bsQ - GdQ)
            dzL = dL * (bcL + bsL - GdL)
            dzE = dE * (bcE + bsE - de)
            return [dt, dW, de, dr, dlam, GdQ - bsQ, dzQ, GdL - bsL, dzL, de - bsE, dzE]

        def residual(D, b_d, b_p, b_s, b_c):
            """b - L D for the Newton system of `solve` (for iterative refinement)."""
            dt, dW, de, dr, dlam, dsQ, dzQ, dsL, dzL, dsE, dzE = D
            (bd_t, bd_w, bd_e, bd_r), (bsQ, bsL, bsE), (bcQ, bcL, bcE) = b_d, b_s, b_c
            e_w = bd_w + F.adjoint(dlam) + dzQ[:, 1:]
            if kc:
                e_w[ci] += F.g_adjoint(ci, dzL)
            e_d = (bd_t + dzQ[:, 0], e_w,
                   bd_e + (np.r_[dlam, -dlam] if use_e else 0) + dzE,
                   bd_r - (dr / rho + dlam if rho is not None else 0))
            e_p = b_p - A_x(dW, de, dr)
            GdQ = np.column_stack([dt, dW])
            GdL = F.g_apply(ci, dW[ci]) if kc else np.zeros((0, n))
            e_s = (bsQ - GdQ + dsQ, bsL - GdL + dsL, bsE - de + dsE)
            e_c = (bcQ - dsQ - WQ.sq(dzQ), bcL - dsL - dzL / dL, bcE - dsE - dzE / dE)
            return e_d, e_p, e_s, e_c

        def newton(rcQ, rcL, rcE, refine=True):
            b = ((-rd_t, -rd_w, -rd_e, -rd_r), -rp, (-rsQ, -rsL, -rsE),
                 (WQ.mul(_jdiv(lmQ, rcQ)), np.sqrt(sL / zL) * (rcL / lmL), np.sqrt(sE / zE) * (rcE / lmE)))
            D = solve(*b)
            # iterative refinement: the Schur matrix is ill-conditioned late on
            for _ in range(0 if not refine else 3 if reg or mu < 1e-9 else 1 if mu < 1e-6 else 0):
                res = residual(D, *b)
                if _norm(res) <= REFINE_TOL * _norm(b):
                    break
                D = [u + v for u, v in zip(D, solve(*res))]
            return D

        def step(D):
            _, _, _, _, _, dsQ, dzQ, dsL, dzL, dsE, dzE = D
            a = min(_soc_step(sQ, dsQ).min(initial=np.inf), _soc_step(zQ, dzQ).min(initial=np.inf),
                    _lin_step(sL, dsL), _lin_step(zL, dzL), _lin_step(sE, dsE), _lin_step(zE, dzE))
            return a

        # predictor (affine scaling)
        # (the predictor only sets sigma and the second-order term: no refinement; with it,
        # 40 sample cells took the same block-iterations and 3-7% more time)
        Da = newton(-_jmul(lmQ, lmQ), -lmL * lmL, -lmE * lmE, refine=False)
        a_aff = min(1.0, step(Da))
        sigma = (1 - a_aff) ** power
        # corrector with Mehrotra's second-order term (W^-1 ds_a) o (W dz_a)
        _, _, _, _, _, dsQ, dzQ, dsL, dzL, dsE, dzE = Da
        eQ = np.zeros_like(lmQ); eQ[:, 0] = 1
        rcQ = sigma * mu * eQ - _jmul(lmQ, lmQ) - _jmul(WQ.mulinv(dsQ), WQ.mul(dzQ))
        rcL = sigma * mu - lmL * lmL - (dsL / np.sqrt(sL / zL)) * (dzL * np.sqrt(sL / zL))
        rcE = sigma * mu - lmE * lmE - (dsE / np.sqrt(sE / zE)) * (dzE * np.sqrt(sE / zE))
        D = newton(rcQ, rcL, rcE)
        a = min(1.0, to_boundary * step(D))
        dt, dW, de, dr, dlam, dsQ, dzQ, dsL, dzL, dsE, dzE = D
        t = t + a * dt; Wb = Wb + a * dW; e = e + a * de; r = r + a * dr; lam = lam + a * dlam
        sQ = sQ + a * dsQ; zQ = zQ + a * dzQ
        sL = sL + a * dsL; zL = zL + a * dzL
        sE = sE + a * dsE; zE = zE + a * dzE
    out = dict(best[1], state=stop, warm=warm)
    out["converged"] = out["err"] < tol
    return out


# ------------------------------------------------------------------------------------------
# Dual constraints of the whole family, the working set, the certificate.

def _cone_dual_norm(F, g, u):
    """min_{mu >= 0} ||u + G_g^T mu||: the dual constraint value of cone block g, where
    u = A_g^T lam (= ||projection of u onto the cone {w: G_g w >= 0}||, by Moreau). NNLS."""
    G = F.g_matrix(g)
    mu, res = nnls(G.T, -u, maxiter=50 * G.shape[0])
    return res, mu


def _cone_screen(F, gs, U, screen, iters=25):
    """Upper bounds on the dual constraint values of the cone blocks gs (U: their A_g^T lam):
    ||u_g + G_g^T mu_g|| at the mu_g >= 0 of a few accelerated projected-gradient steps
    (FISTA) on 1/2 ||u_g + G_g^T mu||^2, all blocks in one batch of matrix products. Most
    blocks' values at a round's lam are well below 1 (about 80% below 0.9), and this settles
    them for a fraction of an NNLS each. Step 1/L_g, L_g = ||G_g||^2 by power iteration
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


def _dual_values(F, lam, mu_ws=None, ws=None, screen=1 - TIE_TOL):
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
        keep_smaller(rest, *_cone_screen(F, rest, U[rest], screen))
    for g in np.flatnonzero(F.cone & (v > screen)):
        val, m = _cone_dual_norm(F, g, U[g])
        F.mu_cache[g] = m
        keep_smaller([g], [val], [m])
    return v, mus


def _working_set(F, y, rho=None, init=(), max_rounds=30, add=50):
    """Solve the program of family F by IPM on a growing working set of blocks.

    A round solves the subproblem on the working set ws, evaluates every block's dual
    constraint at its lam, and adds the blocks outside ws with v_g >= 1 - TIE_TOL (violated,
    or active: possible ties), most violated first, at most `add` per round. It stops when
    no such block is left: then lam is dual feasible for the whole family (up to the IPM's
    tolerance) and the subproblem's optimum is the program's. A feasibility slack left at
    that point raises its cost (exact penalty too small) or, at a huge cost, means the
    program is infeasible.
    """
    ws = list(dict.fromkeys(int(g) for g in init))
    if not ws:
        # no skip block: start from the blocks most correlated with the least-squares dual
        # lam = (sum_g A_g A_g^T)^-1 y (a cheap guess of the optimal dual), enough of them to
        # span y: about n/d. Only for ReLU blocks, where that matrix is (XX^T) o (MM^T): for
        # dense blocks it costs n^2 P d, more than the whole solve, and saves no round
        top = int(np.ceil(F.n / F.d)) + 1
        if isinstance(F, ReluBlocks):
            H = F.gram(np.ones(F.k))
            H[np.diag_indices(F.n)] += 1e-10 * np.trace(H) / F.n
            score = np.linalg.norm(F.adjoint(sla.solve(H, y, assume_a="pos")), axis=1)
            ws = [int(g) for g in np.argsort(-score)[:top]]
        # and the blocks most correlated with y itself (orthonormal U_i: the best single fits)
        ws += [int(g) for g in np.argsort(-np.linalg.norm(F.adjoint(y), axis=1))[:top]]
        ws = list(dict.fromkeys(ws))  # a block twice would split its weight between copies
    cost = SLACK_COST
    rounds = 0
    warm = None  # (working set, cost, iterate) of the last round, for the next one's start
    while True:
        rounds += 1
        # a round is solved to ROUND_TOL first: enough to find the blocks to add; only a
        # round that finds none is taken on (the same iterates) to IPM_TOL
        sub = F.subset(ws)
        out = None
        if warm is not None and warm[1] == cost and len(ws) - len(warm[0]) <= WARM_ADD * len(warm[0]):
            out = _ipm(sub, y, rho=rho, cost=cost, tol=ROUND_TOL, max_iter=WARM_ITER, warm_err=WARM_ERR,
                       state=_warm_state(F, warm[0], ws, warm[2]))
            if not out["converged"]:
                out = None  # (the cold start below decides)
        if out is None:
            out = _ipm(sub, y, rho=rho, cost=cost, tol=ROUND_TOL, warm_err=WARM_ERR)
        # the next round restarts from this one's iterate at WARM_ERR: a cold start spends
        # 30-40 iterations on cone rounds (degenerate: many blocks end at 0 on their cones'
        # apex), 12-16 on relaxed ones, where a warm start takes 20-25 and 6-8
        warm = (list(ws), cost, out["warm"]) if out["warm"] is not None else None
        for tight in (False, True):
            if tight:
                if out["state"] is None:
                    break  # (converged to IPM_TOL already, or stalled: keep the best iterate)
                out = _ipm(sub, y, rho=rho, cost=cost, state=out["state"])
            lam = out["lam"]
            v, mus = _dual_values(F, lam, out["mu"], ws)
            outside = np.ones(F.k, bool)
            outside[ws] = False
            cand = np.flatnonzero(outside & (v >= 1 - TIE_TOL))
            if len(cand):
                break
        slack = out["e"].max(initial=0.0)
        if len(cand) == 0 or rounds >= max_rounds:
            if slack > 1e-9:
                if cost >= 1e9:
                    raise SolveFailed("fast: infeasible (y is not in the span of the blocks)")
                cost *= 1e3
                continue
            break
        cand = cand[np.argsort(-v[cand])]
        if F.twin is None:
            cand = cand[:add]
        else:
            # each with its opposite-sign copy (so add / 2 of them): a cone block alone bounds
            # lam from one side only on its active rows (its multipliers cancel a decrease
            # there), so on rows where y is 0 the round's dual optimum is unbounded, and the
            # interior-point lam drifts toward the slack's bound (|lam| ~ SLACK_COST / 2): the
            # next round's dual values, and so its additions, are then set by that drift
            known = set(ws)
            cand = cand[:max(1, add // 2)]
            cand = [g for g in dict.fromkeys(np.c_[cand, F.twin[cand]].ravel().tolist())
                    if g >= 0 and g not in known]
        ws += [int(g) for g in cand]
    out.update(ws=np.array(ws), v=v, mus=mus, rounds=rounds)
    return out


def _warm_state(F, ws_old, ws, warm):
    """An IPM starting point (a `state` of _ipm_core) for the working set ws = ws_old + new
    blocks, from an iterate `warm` of the round on ws_old (the warm start of cutting-plane
    methods): the old blocks keep their values, each new block starts centred at the
    iterate's mu = s^T z / nu. Its dual: cone multipliers z_L = (the NNLS multipliers of its
    last dual value, kept in F.mu_cache) + sqrt(mu), z = (z0, -(A^T lam + G^T z_L)) with
    z0 = max(1, 1.01 ||z1||) (the block is violated: its dual residual 1 - z0 is what the
    round removes); its slacks s = mu z^-1, s_L = mu / z_L; its primal t = s0 and, as in a
    cold start, w = 0 (s1 lies outside the block's cone)."""
    t, Wb, e, r, lam, sQ, zQ, sL, zL, sE, zE = warm
    new = np.asarray(ws[len(ws_old):], int)
    mu = ((sQ * zQ).sum() + (sL * zL).sum() + sE @ zE) / (len(sQ) + sL.size + sE.size)
    Z1 = -F.adjoint(lam)[new]
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
    return (np.r_[t, sq[:, 0]], np.vstack([Wb, np.zeros_like(Z1)]), e, r, lam, np.vstack([sQ, sq]),
            np.vstack([zQ, zq]), np.vstack([sL, mu / ZL]), np.vstack([zL, ZL]), sE, zE, 0, None)


def _certificate(F, y, Wfull, lam, v, rho=None):
    """Certificate of a primal point Wfull (k, d) from lam (reference §3, 'Dual of (a)'):
    relative primal residual ||sum A_g w_g - y|| / ||y|| (BP only), dual violation
    max_g v_g - 1, relative duality gap (primal - dual) / primal with the dual-feasible
    lam / max(1, max v). Lasso (rho): primal sum ||w_g|| + 1/(2 rho) ||r||^2, dual
    y^T lam - rho/2 ||lam||^2."""
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


def _unique(F, Wfull, support):
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


def _cert_excess(cert):
    """The largest certificate entry relative to CERT_TOL (<= 1: tight)."""
    return max(cert[key] for key in ("residual", "dual_violation", "gap", "cone_violation")) / CERT_TOL


def _solve_scaled(F, ys, rho, init):
    """The working-set solve of the scaled program and its certificate: (out, Wfull, cert)."""
    out = _working_set(F, ys, rho=rho, init=init)
    Wfull = np.zeros((F.k, F.d))
    Wfull[out["ws"]] = out["W"]
    # blocks below 1e-9 of the largest are the IPM's noise at its zero blocks: set to 0, as
    # the certificate would otherwise judge their cones relative to their own norms, below
    # the IPM's residuals (~1e-10) after a warm start (the residual and gap judge the change)
    norms = np.linalg.norm(Wfull, axis=1)
    Wfull[norms < 1e-9 * norms.max(initial=0)] = 0
    return out, Wfull, _certificate(F, ys, Wfull, out["lam"], out["v"], rho)


def _block_matrix(F, S):
    """The explicit n x (|S| d) matrix [A_g for g in S]."""
    if isinstance(F, ReluBlocks):
        blocks = [F.sg[g] * F.Mk[:, g, None] * F.X for g in S]
    else:
        blocks = [F.sg[g] * F.U[F.base[g]] for g in S]
    return np.hstack(blocks)


def _polish(F, ys, out, Wfull, rho=None, steps=3, max_size=3000):
    """Newton's method on the optimality conditions of the program restricted to its support S
    and, on cone blocks of S, to the rows I_g of their cones active at Wfull:

        sum_S A_g w_g + rho lam = y,  w_g / ||w_g|| = A_g^T lam + G_gI^T mu_gI,  G_gI w_g = 0

    (rho = 0: basis pursuit; rho > 0: the lasso, lam = residual / rho), as many equations as
    unknowns (w, lam, mu); least squares where the optimum is not unique. A last resort where
    the interior-point method stalled: from its point this converges fast, and the certificate
    (every block's dual constraint, the cones) judges the result, so a wrong guess of I only
    costs the polish. Returns (out, Wfull, cert) of the polished point with the smallest
    residual of these conditions, or None."""
    norms = np.linalg.norm(Wfull, axis=1)
    S = np.flatnonzero(norms > 1e-6 * max(norms.max(initial=0), 1e-300))
    n, d = F.n, F.d
    if len(S) == 0 or not np.all(np.isin(S, out["ws"])):
        return None  # (W is stored by the working set, which holds the support)
    # a cone row is active where G_i w is 0 up to the interior-point method's accuracy (its
    # cosine with w below 1e-6; inactive rows are mostly far from that)
    GI = []
    for g in S:
        G = F.g_matrix(g) if F.cone[g] else np.zeros((0, d))
        Gw = G @ Wfull[g]
        GI.append(G[Gw <= 1e-6 * norms[g] * np.linalg.norm(G, axis=1)])
    m, nw_all = sum(len(G) for G in GI), len(S) * d
    if n + nw_all + m > max_size:
        return None
    A = _block_matrix(F, S)
    Gblk = sla.block_diag(*GI)  # (m, |S| d): the active rows of each block
    w = Wfull[S].ravel().copy()
    lam = out["lam"].copy()
    # the cones' multipliers that fit the stationarity conditions best at the starting point
    # (a start at 0 leaves the first step to set them, and on a misjudged active row that
    # step has overshot)
    u = (Wfull[S] / norms[S, None]).ravel()
    mu = sla.lstsq(Gblk.T, u - A.T @ lam, check_finite=False)[0] if m else np.zeros(0)
    r0 = 0.0 if rho is None else rho
    best = None
    for _ in range(steps + 1):
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
        if _ == steps:
            break
        Jw = np.zeros((nw_all, nw_all))
        for j in range(len(S)):
            sl = slice(j * d, (j + 1) * d)
            Jw[sl, sl] = -(np.eye(d) - np.outer(u[j], u[j])) / nw[j]
        J = np.block([[A, r0 * np.eye(n), np.zeros((n, m))],
                      [Jw, A.T, Gblk.T],
                      [Gblk, np.zeros((m, n + m))]])
        b = np.r_[r1, r2, r3]
        # LU where J can be regular; else least squares, least-norm with singular values
        # below 1e-12 of the largest cut: J is singular where the optimum is not unique, and
        # in basis pursuit where n > |S| d - m, lam is free along the null space of A^T on
        # the cones' faces, and only the least-norm step keeps it at the interior-point lam
        # there (dual feasible for the other blocks)
        ok = False
        if rho is not None or n <= nw_all - m:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", sla.LinAlgWarning)
                    step = sla.solve(J, b, check_finite=False)
                ok = np.all(np.isfinite(step)) and (np.linalg.norm(J @ step - b)
                                                    <= 1e-10 * (np.linalg.norm(J) * np.linalg.norm(step) + np.linalg.norm(b)))
            except (np.linalg.LinAlgError, ValueError):
                pass
        if not ok:
            step = sla.lstsq(J, b, cond=1e-12, lapack_driver="gelsy", check_finite=False)[0]
        w = w + step[:nw_all]
        lam = lam + step[nw_all:nw_all + n]
        mu = mu + step[nw_all + n:]
    _, w, lam = best  # (set on the first pass: every block of S is nonzero)
    Wp = np.zeros_like(Wfull)
    Wp[S] = w.reshape(len(S), d)
    v, mus = _dual_values(F, lam)
    cert = _certificate(F, ys, Wp, lam, v, rho)
    return dict(out, W=Wp[out["ws"]], lam=lam, v=v, mus=mus), Wp, cert


def _via_relaxation(F, ys, rho, R, pos, neg, r_init=()):
    """The cone program F from its relaxation R (the same programs without the cones: block g
    of R is block pos[g] of F, and block neg[g] with the opposite sign, -1 if none).

    The relaxed optimum is <= F's (F's feasible points map to R's by w_pos - w_neg). So where
    R's optimum is unique and each of its blocks meets the cone of pos (or, negated, of neg),
    it is F's optimum, certified by R's lam (dual feasible for F with cone multipliers 0), and
    F's optimum is unique too (w_pos - w_neg = w_R with ||w_pos|| + ||w_neg|| = ||w_R|| makes
    both multiples of w_R, and a nonzero w cannot meet both cones: G_g w = 0 forces w = 0).
    Where the planted model is recovered by R, this spares the cone IPM entirely.
    Returns (found, init): found = (out, Wfull, cert) of F or None; init = F's blocks of
    R's support, both signs (None where R failed to solve). r_init: R's starting working set."""
    try:
        rel = solve_blocks(R, ys, beta=rho, init=r_init)
    except SolveFailed:
        return None, None
    S = rel["support"]
    init = [int(pos[g]) for g in S] + [int(neg[g]) for g in S if neg[g] >= 0]
    if not rel["unique"]:
        return None, init
    Wrel, lam = rel["W"], rel["lam"]

    def sign_block(g, w, tol):
        """(block of F, signed w) that holds w as R's block g: no cone, or w in its cone up to
        a relative tol; None if neither sign does."""
        for b, sw in ((pos[g], w), (neg[g], -w)):
            if b >= 0 and (not F.cone[b] or (F.g_matrix(b) @ sw).min() >= -tol * np.linalg.norm(sw)):
                return b, sw
        return None

    if any(sign_block(g, Wrel[g], 1e-6) is None for g in S):
        return None, init  # a support block far outside both cones: no polish can change that
    if rho is None and np.count_nonzero(np.linalg.norm(Wrel, axis=1)) > len(S):
        # blocks below the support threshold (IPM noise, up to 1e-6 of the largest) need not
        # meet any cone: Newton's method on the support (`_polish`) sets them to exactly 0
        polished = _polish(R, ys, dict(ws=np.arange(R.k), lam=lam), Wrel)
        if polished is None or _cert_excess(polished[2]) > 1:
            return None, init
        Wrel, lam = polished[1], polished[0]["lam"]
    Wfull = np.zeros((F.k, F.d))
    for g in np.flatnonzero(np.linalg.norm(Wrel, axis=1) > 0):
        found = sign_block(g, Wrel[g], CERT_TOL)
        if found is not None:
            Wfull[found[0]] = found[1]
        elif g in S:
            return None, init
        # (else the lasso's noise block is dropped: the certificate judges the change)
    v, mus = _dual_values(F, lam)
    cert = _certificate(F, ys, Wfull, lam, v, rho)
    if _cert_excess(cert) > 1:
        return None, init
    ws = np.flatnonzero(np.linalg.norm(Wfull, axis=1) > 0)
    out = dict(W=Wfull[ws], ws=ws, lam=lam, v=v, mus=mus, iters=rel["certificate"]["ipm_iters"],
               rounds=rel["rounds"])
    return (out, Wfull, cert), init


def solve_blocks(F, y, beta=None, init=(), relaxation=None):
    """Group basis pursuit (beta None) or group lasso (1/2||.||^2 + beta sum ||w_g||) over the
    block family F, certified. Returns dict(W (k, d), objective, lam, certificate, support,
    unique, active, rounds). Raises SolveFailed where the certificate is not tight.
    relaxation: (R, pos, neg, init of R) of `_via_relaxation`, for cone families: tried first, and its
    support is the starting working set where it does not settle the program."""
    ynorm = np.linalg.norm(y)
    k, d = F.k, F.d
    if ynorm == 0:  # the optimum is w = 0, certified by lam = 0
        return dict(W=np.zeros((k, d)), objective=0.0, lam=np.zeros(F.n), support=np.zeros(0, int),
                    unique=True, active=np.zeros(0, int), rounds=0,
                    certificate=dict(residual=0.0, dual_violation=0.0, gap=0.0, cone_violation=0.0))
    ys = y / ynorm  # scale-free: w scales with ||y||, lam does not; rho = beta / ||y||
    rho = None if beta is None else beta / ynorm
    found = None
    if relaxation is not None:
        found, rel_init = _via_relaxation(F, ys, rho, *relaxation)
        init = list(init) + (rel_init or [])
    if found is not None:
        out, Wfull, cert = found
    else:
        out, Wfull, cert = _solve_scaled(F, ys, rho, init)
    excess = _cert_excess(cert)
    if excess > 1 and cert["cone_violation"] > CERT_TOL:
        # blocks just outside their cones by the interior-point method's rounding (seen on a
        # block 1e-9 to 1e-6 of the largest, judged relative to its own norm): each is moved
        # to its projection onto its cone, w + G_g^T mu (Moreau, mu from `_cone_dual_norm`),
        # or to 0 where that projection is at the rounding level of w itself; the
        # certificate judges the change
        Wp = Wfull.copy()
        for g in np.flatnonzero(F.cone & (np.linalg.norm(Wp, axis=1) > 0)):
            G = F.g_matrix(g)
            if (G @ Wp[g]).min() < 0:
                Wp[g] = Wp[g] + G.T @ _cone_dual_norm(F, g, Wp[g])[1]
                if (G @ Wp[g]).min() < 0:
                    Wp[g] = 0
        pcert = _certificate(F, ys, Wp, out["lam"], out["v"], rho)
        if _cert_excess(pcert) < excess:
            out, Wfull, cert = dict(out, W=Wp[out["ws"]]), Wp, pcert
            excess = _cert_excess(cert)
    if excess > 1:
        # the interior-point method stalled just short of CERT_TOL: late on, its Newton
        # directions lose accuracy (the Schur matrix, and the cone blocks' K_g, become
        # ill-conditioned as the blocks outside the support go to 0 and their linear cones
        # degenerate). Retry the working set from the blocks that can matter, the support and
        # the active blocks (v_g near 1, ties kept): the blocks with v_g < 1 are 0 at every
        # optimum, and dropping them removes the degenerate ones; any they were needed for
        # (the smaller subproblem's lam violates their dual constraint) rejoin as usual
        nw = np.linalg.norm(out["W"], axis=1)
        ws = out["ws"]
        keep = ws[(out["v"][ws] >= 1 - PRUNE_TOL) | (nw > 1e-6 * max(nw.max(initial=0), 1e-300))]
        if 0 < len(keep) < len(ws):
            try:
                retry = _solve_scaled(F, ys, rho, keep)
            except SolveFailed:
                retry = None
            if retry is not None and _cert_excess(retry[2]) < excess:
                out, Wfull, cert = retry
                excess = _cert_excess(cert)
    if excess > 1:
        # Newton on the support, then on the support less one of its (up to 3) smallest
        # blocks: a block with a tie (v_g = 1) that is 0 at the optimum can be all but
        # interchangeable with a support block (two patterns that differ in a row whose x_i
        # is nearly orthogonal to the optimum), and the interior-point method, whose iterates
        # keep to the centre of that nearly flat valley, leaves weight on both
        W0, out0 = Wfull, out
        norms = np.linalg.norm(W0, axis=1)
        S = np.flatnonzero(norms > 1e-6 * norms.max(initial=0))
        for drop in [None, *S[np.argsort(norms[S])][:3]] if len(S) > 1 else [None]:
            start = W0.copy()
            if drop is not None:
                start[drop] = 0
            polished = _polish(F, ys, out0, start, rho)
            if polished is not None and _cert_excess(polished[2]) < excess:
                out, Wfull, cert = polished
                excess = _cert_excess(cert)
            if excess <= 1:
                break
    W = Wfull * ynorm
    norms = np.linalg.norm(W, axis=1)
    support = np.flatnonzero(norms > 1e-6 * max(norms.max(initial=0), 1e-300))
    lam = out["lam"]  # scale-free; for the lasso it is (y - fit) / beta
    if beta is None:
        objective = norms.sum()
    else:
        objective = 0.5 * np.sum((F.apply(W) - y) ** 2) + beta * norms.sum()
    cert = dict(cert, ipm_iters=out["iters"], rounds=out["rounds"], blocks=len(out["ws"]))
    bad = [key for key in ("residual", "dual_violation", "gap", "cone_violation") if cert[key] > CERT_TOL]
    sol = dict(W=W, objective=float(objective), lam=lam, certificate=cert, support=support,
               unique=_unique(F, W, support), active=np.flatnonzero(out["v"] >= 1 - TIE_TOL),
               rounds=out["rounds"])
    if bad:
        raise SolveFailed("fast: certificate not tight: " + ", ".join(f"{key} {cert[key]:.1e}" for key in bad))
    return sol


# ------------------------------------------------------------------------------------------
# The ReLU programs of reference §3a-d.

def relu_family(X, M, form="relaxed", beta=None, skip=True):
    """Blocks of a ReLU program: [skip X] + relaxed: D_i X per pattern; exact/training:
    D_i X (w_i) then -D_i X (w_i'), both with the cone (2 D_i - I) X w >= 0."""
    n, d = X.shape
    M = np.asarray(M, bool)
    P = M.shape[1]
    cones = form == "exact" or beta is not None
    masks = [M, M] if cones else [M]
    signs = [np.ones(P), -np.ones(P)] if cones else [np.ones(P)]
    if skip:
        masks = [np.ones((n, 1), bool)] + masks
        signs = [np.ones(1)] + signs
    masks = np.column_stack(masks)
    signs = np.concatenate(signs)
    cone = np.ones(len(signs), bool) if cones else np.zeros(len(signs), bool)
    if skip:
        cone[0] = False
    F = ReluBlocks(X, masks, signs, cone)
    if cones:
        o = 1 if skip else 0
        F.twin = np.r_[-np.ones(o, int), o + P + np.arange(P), o + np.arange(P)]
    return F


def solve_relu(X, M, y, form="relaxed", beta=None, skip=True):
    """The program of convex.solve_relu (same arguments but the solver, same return dict:
    w0, W, Wp, objective, status, lam) by the certified working-set IPM, plus certificate,
    unique (the optimum is a single point), support and active (block indices: 0 is the
    skip block when skip, then the patterns, then the w_i' blocks), rounds.

    Recovery = the planted model is the unique optimum: with `unique` False the returned point
    is inside the optimal face (tied blocks nonzero), so convex.skip_recovered is False on it,
    as on CVXPY's interior-point answer. Raises convex.SolveFailed on a loose certificate.
    """
    if form not in ("relaxed", "exact"):
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
        pos = np.arange(o + P)
        neg = np.r_[-np.ones(o, int), o + P + np.arange(P)]
        relaxation = (relu_family(X, M, "relaxed", None, skip), pos, neg, init)
    sol = solve_blocks(F, y, beta=beta, init=init, relaxation=relaxation)
    B = sol.pop("W")
    w0 = B[0] if skip else None
    W = B[o:o + P].T.copy()
    Wp = B[o + P:o + 2 * P].T.copy() if F.k > o + P else None
    return dict(w0=w0, W=W, Wp=Wp, status="optimal", **sol)


def certify_relu(X, M, y, sol, form="relaxed", beta=None, skip=True):
    """Check a given solution dict (w0, W, Wp, lam as solve_relu returns) of a ReLU program
    with its own lam: the certificate of `_certificate` (lam made dual feasible by scaling,
    cone multipliers by NNLS). Returns it; raises SolveFailed where it is not tight."""
    X = np.asarray(X, float)
    F = relu_family(X, M, form, beta, skip)
    blocks = ([sol["w0"][None]] if skip else []) + [sol["W"].T]
    if F.k > len(np.concatenate(blocks)):
        blocks.append(sol["Wp"].T)
    Wfull = np.concatenate(blocks)
    ynorm = np.linalg.norm(y)
    if ynorm == 0:
        return dict(residual=0.0, dual_violation=0.0, gap=float(np.linalg.norm(Wfull) > 0))
    lam = sol["lam"]
    v, _ = _dual_values(F, lam, screen=0.0)
    rho = None if beta is None else beta / ynorm
    cert = _certificate(F, y / ynorm, Wfull / ynorm, lam, v, rho)
    bad = [key for key in ("residual", "dual_violation", "gap", "cone_violation") if cert[key] > CERT_TOL]
    if bad:
        raise SolveFailed("certificate not tight: " + ", ".join(f"{key} {cert[key]:.1e}" for key in bad))
    return cert


def recovered(sol, w, tol=1e-4):
    """rec of reference §4 with ties: the planted skip model is the unique optimum."""
    blocks = sol["W"] if sol["Wp"] is None else np.concatenate([sol["W"], sol["Wp"]], 1)
    return bool(sol["unique"] and np.allclose(sol["w0"], w, rtol=0, atol=tol)
                and np.all(np.abs(blocks) <= tol))


# ------------------------------------------------------------------------------------------
# The normalization-layer programs of reference §3e.

class _LazyCones:
    """G[idx] = the cone matrices of the patterns idx, computed when asked: the solver needs
    them only for the blocks of the working set and for the few whose dual constraint needs
    an NNLS, and all P of them cost as much as the solve."""

    def __init__(self, B):
        self.B = B
        self.XtX = None

    def __getitem__(self, idx):
        return norm_cone_matrices(self.B, idx)

    def ops(self, idx):
        """(W -> G_i w_i, Z -> G_i^T z_i) over the patterns idx without forming G: the cone
        matrix is (2 D_i - I) X T_i, so G_i^T z = T_i^T X^T ((2 m_i - 1) o z)."""
        X, T, S = self.B["X"], self.B["T"][idx], 2.0 * self.B["M"][:, idx] - 1

        def apply(W):
            return (X @ (T @ W[:, :, None])[:, :, 0].T).T * S.T

        def adjoint(Z):
            return (T.transpose(0, 2, 1) @ (X.T @ (S * Z.T)).T[:, :, None])[:, :, 0]
        return apply, adjoint

    def normal(self, idx):
        """Z -> G_i^T G_i z_i = T_i^T X^T X T_i z_i over the patterns idx (the signs square to
        1): d x d products only."""
        if self.XtX is None:
            self.XtX = self.B["X"].T @ self.B["X"]
        T, XtX = self.B["T"][idx], self.XtX
        return lambda Z: (T.transpose(0, 2, 1) @ ((T @ Z[:, :, None])[:, :, 0] @ XtX)[:, :, None])[:, :, 0]


def norm_family(B, form="relaxed", beta=None):
    """Blocks of the normalization programs on the blocks B of convex.norm_blocks: relaxed
    U_i per pattern; exact/training U_i (w_i) then -U_i (w_i'), with the cones
    (2 D_i - I) X V_i Sigma_i^-1 w >= 0."""
    U = np.ascontiguousarray(B["U"], dtype=float)
    P = U.shape[0]
    cones = form == "exact" or beta is not None
    G = None
    if cones:
        G = _LazyCones(B)
        base, signs = np.r_[np.arange(P), np.arange(P)], np.r_[np.ones(P), -np.ones(P)]
    else:
        base, signs = np.arange(P), np.ones(P)
    F = DenseBlocks(U, base, signs, np.full(len(base), cones), G)
    if cones:
        F.twin = np.r_[P + np.arange(P), np.arange(P)]
    return F


def solve_norm(B, y, form="relaxed", beta=None):
    """convex.solve_norm (same arguments but the solver, same return dict: w0 None, W and Wp
    r x P, objective, status, lam) by the certified working-set IPM, plus certificate,
    unique, support, active, rounds as in solve_relu."""
    if form not in ("relaxed", "exact"):
        raise ValueError(f"unknown form {form}")
    P = B["U"].shape[0]
    F = norm_family(B, form, beta)
    y = np.asarray(y, float)
    relaxation = None
    if F.cone.any():
        relaxation = (norm_family(B, "relaxed"), np.arange(P), P + np.arange(P))
    sol = solve_blocks(F, y, beta=beta, relaxation=relaxation)
    Z = sol.pop("W")
    W = Z[:P].T.copy()
    Wp = Z[P:].T.copy() if F.k > P else None
    return dict(w0=None, W=W, Wp=Wp, status="optimal", **sol)
