"""Normalization-layer blocks: D_i X = U_i S_i for every pattern, and their cones (docs/reference.md §3e).

The normalization-layer programs work in the coordinates of an orthonormal basis U_i of
range(D_i X): block i contributes U_i w_i, and the cone (2 D_i - I) X V_i Sigma_i^-1 w_i >= 0
says that the first-layer direction of w_i has pattern D_i.
"""
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack


@dataclass
class NormBlocks:
    """The factored patterns of one instance, zero-padded to r = the largest rank.

    X (n, d), M (n, P) the kept patterns (rank-0 ones dropped), rank (P,), U (P, n, r) the
    orthonormal U_i, T (P, d, r) with D_i X T_i = U_i (block -> first-layer direction; the
    V_i Sigma_i^-1 of §3e up to a change of basis), S (P, r, d) (first-layer direction ->
    block); coordinates beyond rank_i are zero.
    """
    X: np.ndarray
    M: np.ndarray
    rank: np.ndarray
    U: np.ndarray
    T: np.ndarray
    S: np.ndarray

    @property
    def P(self):
        return self.U.shape[0]


def _factor_stack(A, size, tol):
    """D_i X = U_i S_i with orthonormal U_i, and T_i with D_i X T_i = U_i, for a stack A (g, m, d)
    of the active rows of D_i X (size_i of them, then zero rows), all tall (size_i > d) or all
    wide (size_i <= d). Returns U (g, m, c), S (g, c, d), T (g, d, c), rank (g,), c = min(m, d),
    coordinates beyond rank_i zero.

    Any orthonormal basis of range(D_i X) gives the same programs as the compact SVD of §3e:
    another is U_i Q (Q orthogonal), an orthogonal change of block i's variables, which keeps
    ||w_i|| and maps the cone onto itself. So the fastest (2-3x an SVD on 130 x 100 stacks):
    tall, Cholesky QR: R^T R = A^T A, U = A R^-1, S = R, T = R^-1; wide: the active rows span
    all of R^size_i, so U = I on them, S = A, T = A^T (A A^T)^-1. Kept where U^T U = I (tall)
    or A T = U (wide) to 1e-12, which holds where cond(A_i) < about 100 (the error is
    cond^2 * eps); the others by SVD, with rank the singular values above tol * the largest."""
    g, m, d = A.shape
    tall = m > d
    c = min(m, d)
    on = np.arange(m) < size[:, None]  # (g, m): the active rows
    rank = np.minimum(size, d)
    with np.errstate(all="ignore"):
        if tall:
            gram = A.transpose(0, 2, 1) @ A
        else:  # identity on the padding rows: each pattern's own rows only
            gram = A @ A.transpose(0, 2, 1) + np.eye(m) * ~on[:, None, :]
        ok = np.ones(g, bool)
        L, Linv = np.zeros_like(gram), np.zeros_like(gram)
        for j in range(g):
            L[j], info = lapack.dpotrf(gram[j], lower=1, clean=1)
            ok[j] = info == 0
            if ok[j]:
                Linv[j] = lapack.dtrtri(L[j], lower=1)[0]
        if tall:
            T = Linv.transpose(0, 2, 1)
            U = A @ T
            S = L.transpose(0, 2, 1)
            err = U.transpose(0, 2, 1) @ U - np.eye(c)
        else:
            U = np.eye(m) * on[:, None, :]
            S = A.copy()
            T = A.transpose(0, 2, 1) @ (Linv.transpose(0, 2, 1) @ Linv) * on[:, None, :]
            err = A @ T - U
        ok &= np.abs(err).max(axis=(1, 2), initial=0) <= 1e-12  # (NaN fails too)
    bad = np.flatnonzero(~ok)
    if len(bad):
        u, s, vt = np.linalg.svd(A[bad], full_matrices=False)
        keep = s > s[:, :1] * tol
        U[bad] = u * keep[:, None, :]
        S[bad] = (s * keep)[:, :, None] * vt
        T[bad] = vt.transpose(0, 2, 1) * np.where(keep, 1 / np.where(keep, s, 1), 0)[:, None, :]
        rank[bad] = keep.sum(1)
    return U, S, T, rank


def norm_blocks(X, M, buckets=4):
    """Orthonormal factors D_i X = U_i S_i of every pattern (§3e: U_i spans range(D_i X); see
    `_factor_stack` for why any such basis will do), rank-0 patterns dropped.

    Returns the NormBlocks of the P kept patterns, zero-padded to r = max rank. Rank: as
    numpy's matrix_rank, singular values above max(n, d) * eps * the largest.

    The zero rows of D_i X change neither its rank nor S_i, so each pattern is factored on its
    active rows only, stacked in `buckets` groups of similar size per kind (tall or wide).
    """
    n, d = X.shape
    M = np.asarray(M, bool)
    P = M.shape[1]
    r = min(n, d)
    U = np.zeros((P, n, r))
    S = np.zeros((P, r, d))
    T = np.zeros((P, d, r))
    rank = np.zeros(P, int)
    size = M.sum(0)
    order = np.argsort(size, kind="stable")
    wide = size[order] <= d
    for kind in (order[wide & (size[order] > 0)], order[~wide]):  # (all-zero patterns: rank 0)
        for grp in np.array_split(kind, buckets):
            if len(grp) == 0:
                continue
            m = int(size[grp].max())
            rows = np.argsort(~M[:, grp].T, axis=1, kind="stable")[:, :m]  # active rows first
            on_row = np.take_along_axis(M[:, grp].T, rows, 1)
            u, s, t, rk = _factor_stack(X[rows] * on_row[:, :, None], size[grp], max(n, d) * np.finfo(float).eps)
            c = u.shape[2]
            U[grp[:, None], rows, :c] = u * on_row[:, :, None]  # (each pattern's rows are distinct)
            S[grp, :c], T[grp, :, :c], rank[grp] = s, t, rk
    keep = rank > 0
    r = int(rank.max(initial=0))
    if not keep.all() or r < U.shape[2]:  # (copies: skipped in the usual full-rank case)
        U, S, T = U[keep, :, :r], S[keep, :r], T[keep, :, :r]
    return NormBlocks(X=X, M=M[:, keep], rank=rank[keep], U=U, T=T, S=S)


def norm_cone_matrices(B, idx=slice(None)):
    """The cone matrices (2D_i - I) X V_i Sigma_i^-1 of §3e for the patterns idx (default all):
    shape (P, n, r), or (n, r) for one pattern."""
    return (2.0 * B.M[:, idx].T[..., None] - 1) * (B.X @ B.T[idx])
