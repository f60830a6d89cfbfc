"""Hyperplane-arrangement patterns D_i = diag(1[X g_i >= 0]) (docs/reference.md §2).

A set of patterns is an n x P boolean matrix M whose column i is the diagonal of D_i, so
that D_i X w_i for all i at once is M * (X @ W).
"""
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack
from scipy.optimize import linprog

from planted.solution import SolveFailed

ALL_ONES_ITERS = 1000  # projected-gradient steps before the LP decides (see all_ones_decision)
# HiGHS's method for the LP: dual simplex on small X, interior point from n d of about 1e5 on,
# where it is 2-3x faster (docs/solver.md, "Scale")
ALL_ONES_IPM_SIZE = 1.2e5


@dataclass
class AllOnes:
    """Whether D = I is a ReLU pattern of X, and what decided it (docs/reference.md §2).

    how: "sampled" (a sampled direction had X g >= 0), "direction" (vector = u with X u >= 0,
    X u != 0), "stiemke" (vector = lam > 0 with X^T lam = 0: no such u, since lam^T X u would
    be both 0 and > 0), "lp" (HiGHS; vector its u, empty when infeasible) or "lp-stiemke"
    (HiGHS left it undecided, Stiemke's LP found its lam)."""
    feasible: bool
    how: str
    vector: np.ndarray

    def arrays(self):
        """The decision for --save_details."""
        return dict(all_ones_how=np.str_(self.how), all_ones_vector=self.vector)


def _range_basis(X):
    """An orthonormal basis Q (n x r) of range(X), the map v -> u with X u = Q v, and a lower
    bound on the smallest nonzero singular value of X.

    Cholesky QR where X^T X factors and R is well conditioned (d x d work beyond one n d^2
    product), else the SVD with numpy's matrix_rank tolerance."""
    n, d = X.shape
    if n >= d:
        R, info = lapack.dpotrf(X.T @ X, lower=0, clean=1)
        if info == 0 and lapack.dtrcon(R, norm="1", uplo="U")[0] > 1e-6:
            Rinv = lapack.dtrtri(R, lower=0)[0]
            return X @ Rinv, (lambda v: Rinv @ v), 1 / np.linalg.norm(Rinv)  # ||R^-1||_F >= ||R^-1||_2
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    r = int((s > s[:1].max(initial=0) * max(n, d) * np.finfo(float).eps).sum())
    if r == 0:
        return np.zeros((n, 0)), (lambda v: np.zeros(d)), 0.0
    return U[:, :r], (lambda v: Vt[:r].T @ (v / s[:r])), s[r - 1]


def _simplex_projection(V):
    """Every column of V projected onto the unit simplex {x >= 0, sum x = 1}."""
    n = V.shape[0]
    U = -np.sort(-V, axis=0)
    css = np.cumsum(U, axis=0) - 1
    hit = U - css / np.arange(1, n + 1)[:, None] > 0
    rho = n - np.argmax(hit[::-1], axis=0)
    return np.maximum(V - css[rho - 1, np.arange(V.shape[1])] / rho, 0)


def all_ones_decision(X, iters=ALL_ONES_ITERS):
    """Is D = I a genuine ReLU pattern, i.e. is there u with X u >= 0, X u != 0? (§2)

    Exactly one of two certificates exists in general position: range(X) holds a z > 0
    (z = X u), or its orthogonal complement holds a lam > 0 (Stiemke's alternative: then
    lam^T X u = 0 for every u, so X u >= 0 forces X u = 0). With Q an orthonormal basis of
    range(X), the minimum-norm points of the unit simplex under the projections onto range(X)
    and onto its complement,

        min  1/2 ||Q^T lam||^2            and      min  1/2 ||mu - Q Q^T mu||^2,

    give them: where the first optimum is > 0, its KKT conditions make z = Q Q^T lam > 0
    entrywise; where the second is, lam = mu - Q Q^T mu > 0. Both run side by side (one n x 2
    product per step, accelerated projected gradient, step 1: both are projections) and stop
    at the first iterate that proves either; the proof is then checked on X itself: X u >= 0
    with X u != 0, or ||X^T lam|| < sigma_min(X) min(lam) / 2 (for X u = z >= 0,
    lam^T z <= ||X^T lam|| ||u|| and lam^T z >= min(lam) ||z|| >= min(lam) sigma_min ||u||).
    Where neither is found within `iters` steps (near the boundary, or when every z >= 0 in
    range(X) has zeros), the LP decides (`_all_ones_lp`). Returns an AllOnes.
    """
    n, d = X.shape
    nonzero = np.abs(X).max(1, initial=0) > 0
    if not nonzero.all():
        # A zero row has x_i u = 0 for every u, so it constrains nothing, but it rules out the
        # strict z > 0 the iteration looks for (sparse data has many): decide on the other rows.
        # Their u serves X; a Stiemke lam gets weight 1 on the zero rows (X^T lam unchanged).
        if not nonzero.any():
            return AllOnes(False, "stiemke", np.ones(n))  # X = 0: X u is always 0
        inner = all_ones_decision(X[nonzero], iters)
        if not inner.feasible and inner.vector.size:
            lam = np.ones(n)
            lam[nonzero] = inner.vector
            return AllOnes(False, inner.how, lam)
        return inner
    Q, to_u, smin = _range_basis(X)
    if Q.shape[1] == 0:
        return AllOnes(False, "stiemke", np.ones(n))  # X numerically 0: X u is always 0
    Qt = np.ascontiguousarray(Q.T)
    lam = np.full((n, 2), 1.0 / n)
    y, t = lam, 1.0
    for _ in range(iters):
        V = Qt @ y
        grad = Qt.T @ V
        grad[:, 1] = y[:, 1] - grad[:, 1]
        z, stiemke = grad[:, 0], grad[:, 1]
        if z.min() > 0:
            u = to_u(V[:, 0])
            Xu = X @ u
            if Xu.min() >= 0 and Xu.max() > 0:
                return AllOnes(True, "direction", u)
        if stiemke.min() > 0 and np.linalg.norm(X.T @ stiemke) < 0.5 * smin * stiemke.min():
            return AllOnes(False, "stiemke", stiemke / stiemke.min())
        new = _simplex_projection(y - grad)
        t_next = (1 + np.sqrt(1 + 4 * t * t)) / 2
        y = new + (t - 1) / t_next * (new - lam)
        lam, t = new, t_next
    return _all_ones_lp(X)


def _all_ones_lp(X):
    """The LP of §2: find u with X u >= 0 and 1^T X u = 1 (HiGHS). Near the boundary HiGHS may
    leave it undecided ('unknown'); then Stiemke's LP decides (`stiemke_infeasible`)."""
    n, d = X.shape
    res = linprog(np.zeros(d), A_ub=-X, b_ub=np.zeros(n), A_eq=X.sum(0, keepdims=True),
                  b_eq=[1.0], bounds=[(None, None)] * d,
                  method="highs-ipm" if n * d >= ALL_ONES_IPM_SIZE else "highs-ds")
    if res.status == 0:
        return AllOnes(True, "lp", res.x)
    if res.status == 2:  # proven infeasible
        return AllOnes(False, "lp", np.zeros(0))
    lam = stiemke_lambda(X)
    if lam is not None:
        return AllOnes(False, "lp-stiemke", lam)
    raise SolveFailed(f"all-ones LP undecided by HiGHS: {res.message}")


def all_ones_feasible(X):
    """Is D = I a genuine ReLU pattern of X? (`all_ones_decision`, its verdict only.)"""
    return all_ones_decision(X).feasible


def stiemke_lambda(X):
    """Some lam >= 1 with X^T lam = 0 (HiGHS), or None: where one exists, no u has X u >= 0,
    X u != 0 (lam^T X u > 0)."""
    n = X.shape[0]
    res = linprog(np.zeros(n), A_eq=X.T, b_eq=np.zeros(X.shape[1]), bounds=[(1, None)] * n,
                  method="highs")
    return res.x if res.status == 0 else None


def stiemke_infeasible(X):
    """Is there lam >= 1 with X^T lam = 0 (`stiemke_lambda`)?"""
    return stiemke_lambda(X) is not None


def wendel_probability(n, d):
    """P(D = I is a pattern) for Gaussian X: 2^-(n-1) sum_{k<d} C(n-1, k) (1 when n <= d).

    In exact integers (C(n-1, k+1) = C(n-1, k) (n-1-k) / (k+1)), one correctly rounded
    division at the end."""
    if n <= d:
        return 1.0
    total, term = 0, 1
    for k in range(d):
        total += term
        term = term * (n - 1 - k) // (k + 1)
    return total / 2 ** (n - 1)


def decided_patterns(X, num, rng, first=()):
    """Distinct patterns of num Gaussian directions g_i, and the all-ones decision.

    `first` lists directions whose patterns go first, in that order (planted neurons), so
    that their columns are 0..len(first)-1. The all-zero pattern (a block that can never
    contribute) is dropped; the all-ones one is kept iff D = I is a pattern: at once where a
    sampled X g >= 0 (X g != 0 almost surely), else by all_ones_decision, appended last.
    Returns the n x P boolean matrix M and the AllOnes decision.
    """
    n, d = X.shape
    G = rng.standard_normal((d, num))
    if len(first):
        G = np.column_stack([np.asarray(first).reshape(len(first), d).T, G])
    full = X @ G >= 0
    # unique columns in order of first appearance, so planted patterns keep their places;
    # compared as packed bytes (n / 8 per column), which finds the same first appearances
    packed = np.ascontiguousarray(np.packbits(full, axis=0).T)
    _, idx = np.unique(packed.view(np.dtype((np.void, packed.shape[1]))).ravel(), return_index=True)
    M = full[:, np.sort(idx)]
    M = M[:, M.any(0)]
    ones = np.flatnonzero(full.all(0))
    if len(ones):
        return M, AllOnes(True, "sampled", G[:, ones[0]])
    decision = all_ones_decision(X)
    if decision.feasible:
        M = np.column_stack([M, np.ones(n, bool)])
    return M, decision


def sample_patterns(X, num, rng, first=()):
    """The patterns of `decided_patterns`, without the decision: the n x P boolean matrix M."""
    return decided_patterns(X, num, rng, first)[0]


def skip_patterns(X, rng):
    """The patterns of the skip experiments: max(n, 50) sampled directions."""
    return sample_patterns(X, max(X.shape[0], 50), rng)


def decided_skip_patterns(X, rng):
    """`skip_patterns` and the all-ones decision (an AllOnes)."""
    return decided_patterns(X, max(X.shape[0], 50), rng)


def has_all_ones(M):
    return bool(M.all(0).any())


def relu_patterns(X, W, rng, num=None):
    """Patterns of a planted-ReLU experiment, the planted neurons' own patterns first.

    num directions: max(n, 50) by default; the irrepresentability experiments (nic.py) pass
    max(2n, 50) (§2).
    """
    return sample_patterns(X, max(X.shape[0], 50) if num is None else num, rng, first=W.T)


def planted_columns(M, X, W):
    """Column s_j of M holding planted neuron j's pattern 1[X w_j >= 0], for every j.

    Neurons sharing a pattern share its column; -1 marks a pattern absent from M.
    """
    P = (X @ W >= 0)  # n x k
    hit = (M[:, :, None] == P[:, None, :]).all(0)  # P x k: column i is neuron j's pattern
    return np.where(hit.any(0), hit.argmax(0), -1)
