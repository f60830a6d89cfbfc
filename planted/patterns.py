"""Hyperplane-arrangement patterns D_i = diag(1[X g_i >= 0]) (docs/reference.md §2).

A set of patterns is an n x P boolean matrix M whose column i is the diagonal of D_i, so
that D_i X w_i for all i at once is M * (X @ W).
"""
import numpy as np
from scipy.optimize import linprog

from planted.solution import SolveFailed


def all_ones_feasible(X):
    """Is D = I a genuine ReLU pattern, i.e. is there u with X u >= 0, X u != 0?

    Decided exactly by the LP: find u with X u >= 0 and 1^T X u = 1 (HiGHS). Near the
    boundary HiGHS may leave it undecided ('unknown'); then the alternative of Stiemke's lemma
    decides: no such u exists iff some lam > 0 has X^T lam = 0 (`stiemke_infeasible`).
    """
    n, d = X.shape
    res = linprog(np.zeros(d), A_ub=-X, b_ub=np.zeros(n), A_eq=X.sum(0, keepdims=True),
                  b_eq=[1.0], bounds=[(None, None)] * d, method="highs")
    if res.status in (0, 2):  # 0: a u found; 2: proven infeasible
        return res.status == 0
    if stiemke_infeasible(X):
        return False
    raise SolveFailed(f"all-ones LP undecided by HiGHS: {res.message}")


def stiemke_infeasible(X):
    """Is there lam >= 1 with X^T lam = 0? If so, no u has X u >= 0, X u != 0 (lam^T X u > 0)."""
    n = X.shape[0]
    res = linprog(np.zeros(n), A_eq=X.T, b_eq=np.zeros(X.shape[1]), bounds=[(1, None)] * n,
                  method="highs")
    return res.status == 0


def wendel_probability(n, d):
    """P(D = I is a pattern) for Gaussian X: 2^-(n-1) sum_{k<d} C(n-1, k) (1 when n <= d)."""
    from scipy.special import comb
    if n <= d:
        return 1.0
    return float(sum(comb(n - 1, k, exact=True) for k in range(d)) / 2 ** (n - 1))


def sample_patterns(X, num, rng, first=()):
    """Distinct patterns of num Gaussian directions g_i, with the all-ones one decided by LP.

    `first` lists directions whose patterns go first, in that order (planted neurons), so
    that their columns are 0..len(first)-1. The all-zero pattern (a block that can never
    contribute) is dropped; the all-ones one is kept iff all_ones_feasible(X).
    Returns the n x P boolean matrix M.
    """
    n, d = X.shape
    G = rng.standard_normal((d, num))
    if len(first):
        G = np.column_stack([np.asarray(first).reshape(len(first), d).T, G])
    M = X @ G >= 0
    # unique columns in order of first appearance, so planted patterns keep their places
    _, idx = np.unique(M, axis=1, return_index=True)
    M = M[:, np.sort(idx)]
    M = M[:, M.any(0)]
    ones = M.all(0)
    if ones.any():
        return M  # some X g >= 0 was drawn: a genuine pattern (X g != 0 almost surely)
    if all_ones_feasible(X):
        M = np.column_stack([M, np.ones(n, bool)])
    return M


def skip_patterns(X, rng):
    """The patterns of the skip experiments: max(n, 50) sampled directions."""
    return sample_patterns(X, max(X.shape[0], 50), rng)


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
