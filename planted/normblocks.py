"""Normalization-layer blocks: D_i X = U_i S_i for every pattern, and their cones (docs/reference.md §3e).

The normalization-layer programs work in the coordinates of an orthonormal basis U_i of
range(D_i X): block i contributes U_i w_i, and the cone (2 D_i - I) X V_i Sigma_i^-1 w_i >= 0
says that the first-layer direction of w_i has pattern D_i.
"""
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

TALL, WIDE, EXPLICIT = 0, 1, 2  # how a pattern's U_i is held (NormBlocks.kind)
STACK_MEMORY = 2 ** 27  # bytes of one stack of active rows factored at once (norm_blocks)
DENSE_MEMORY = 2 ** 28  # bytes of all U_i up to which they are stored dense (norm_blocks)


@dataclass
class NormBlocks:
    """The factored patterns of one instance, zero-padded to r = the largest rank.

    X (n, d), M (n, P) the kept patterns (rank-0 ones dropped), rank (P,), T (P, d, r) with
    D_i X T_i = U_i (block -> first-layer direction; the V_i Sigma_i^-1 of §3e up to a change
    of basis); coordinates beyond rank_i are zero.

    The orthonormal U_i (n x r each, P n r numbers in all: the bulk of the memory) are not
    stored where they follow from X, M and T (`kind`): TALL (more active rows than d,
    Cholesky QR) U_i = D_i X T_i; WIDE (at most d active rows) U_i = the identity on the
    active rows, coordinate j the j-th of them. The others (EXPLICIT, by SVD) keep U_i and
    S_i in Ue, Se (in pattern order). Small instances keep every U_i, S_i dense as well (Ud,
    Sd; None otherwise), and compute with those. `apply`, `adjoint` and `u_blocks` give the
    products and the dense blocks; U and S (every block, dense) are for small instances.
    """
    X: np.ndarray
    M: np.ndarray
    rank: np.ndarray
    T: np.ndarray
    kind: np.ndarray
    Ue: np.ndarray
    Se: np.ndarray
    Ud: np.ndarray | None = None
    Sd: np.ndarray | None = None

    def __post_init__(self):
        self.pos = np.cumsum(self.kind == EXPLICIT) - 1  # pattern -> its row of Ue, Se
        wide = np.flatnonzero(self.kind == WIDE)
        self.wide = wide
        # the active rows of the WIDE patterns, padded with n (a row that is not there)
        rows = np.argsort(~self.M[:, wide].T, axis=1, kind="stable")[:, :self.r]
        self.wide_rows = np.where(np.arange(self.r) < self.rank[wide, None], rows, self.n)

    @property
    def P(self):
        return self.M.shape[1]

    @property
    def n(self):
        return self.X.shape[0]

    @property
    def r(self):
        return self.T.shape[2]

    @property
    def dense(self):
        return self.Ud is not None

    @property
    def U(self):
        """Every U_i, dense: (P, n, r)."""
        return self.Ud if self.dense else self.u_blocks(np.arange(self.P))

    @property
    def S(self):
        """Every S_i (D_i X = U_i S_i), dense: (P, r, d)."""
        return self.Sd if self.dense else self.s_blocks(np.arange(self.P))

    def u_blocks(self, idx):
        """The dense U_i of the patterns idx: (len(idx), n, r)."""
        idx = np.asarray(idx, int).reshape(-1)
        if self.dense:
            return self.Ud[idx]
        out = np.zeros((len(idx), self.n, self.r))
        kind = self.kind[idx]
        j = np.flatnonzero(kind == TALL)
        if len(j):
            out[j] = (self.X @ self.T[idx[j]]) * self.M[:, idx[j]].T[:, :, None]
        j = np.flatnonzero(kind == WIDE)
        if len(j):
            rows = self.wide_rows[np.searchsorted(self.wide, idx[j])]
            pad = np.zeros((len(j), self.n + 1, self.r))
            pad[np.arange(len(j))[:, None], rows, np.arange(self.r)] = 1.0
            out[j] = pad[:, :self.n]
        j = np.flatnonzero(kind == EXPLICIT)
        if len(j):
            out[j] = self.Ue[self.pos[idx[j]]]
        return out

    def s_blocks(self, idx):
        """S_i with D_i X = U_i S_i for the patterns idx: (len(idx), r, d). TALL: T_i^-1 (T_i
        is upper triangular there); WIDE: the active rows of X."""
        idx = np.asarray(idx, int).reshape(-1)
        if self.dense:
            return self.Sd[idx]
        out = np.zeros((len(idx), self.r, self.X.shape[1]))
        for a, i in enumerate(idx):
            if self.kind[i] == TALL:
                out[a] = lapack.dtrtri(self.T[i], lower=0)[0]
            elif self.kind[i] == WIDE:
                rows = self.wide_rows[np.searchsorted(self.wide, i)]
                on = rows < self.n
                out[a, on] = self.X[rows[on]]
            else:
                out[a] = self.Se[self.pos[i]]
        return out

    def adjoint(self, lam):
        """U_i^T lam for every pattern: (P, r)."""
        if self.dense:
            return np.einsum("gnd,n->gd", self.Ud, lam)
        # T_i^T X^T D_i lam: one n x d x P product, then P small ones over T in place
        # (the wide and explicit rows are overwritten: cheaper than a copy of their T_i)
        V = self.X.T @ (self.M * lam[:, None])
        out = np.matmul(self.T.transpose(0, 2, 1), V.T[:, :, None])[:, :, 0]
        if len(self.wide):
            out[self.wide] = np.append(lam, 0.0)[self.wide_rows]
        ex = self.kind == EXPLICIT
        if ex.any():
            out[ex] = np.einsum("gnr,n->gr", self.Ue, lam)
        return out

    def apply(self, Z, idx=None):
        """sum_i U_i z_i over the patterns idx (default all) and the rows z_i of Z."""
        if self.dense:
            return np.einsum("pnr,rp->n", self.Ud if idx is None else self.Ud[idx], Z.T)
        idx = np.arange(self.P) if idx is None else np.asarray(idx, int)
        f = np.zeros(self.n + 1)
        kind = self.kind[idx]
        j = kind == TALL
        if j.any():
            Y = (self.T[idx[j]] @ Z[j][:, :, None])[:, :, 0]  # T_i z_i: first-layer directions
            f[:-1] += ((self.X @ Y.T) * self.M[:, idx[j]]).sum(1)
        j = kind == WIDE
        if j.any():
            np.add.at(f, self.wide_rows[np.searchsorted(self.wide, idx[j])], Z[j])
        j = kind == EXPLICIT
        if j.any():
            f[:-1] += np.einsum("gnr,gr->n", self.Ue[self.pos[idx[j]]], Z[j])
        return f[:-1]


def _factor_stack(A, size, tol):
    """D_i X = U_i S_i with orthonormal U_i, and T_i with D_i X T_i = U_i, for a stack A (g, m, d)
    of the active rows of D_i X (size_i of them, then zero rows), all tall (size_i > d) or all
    wide (size_i <= d). Returns U (g, m, c), S (g, c, d), T (g, d, c), rank (g,), c = min(m, d),
    coordinates beyond rank_i zero, and ok (g,): False where the SVD made them.

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
    return U, S, T, rank, ok


def norm_blocks(X, M, buckets=4):
    """Orthonormal factors D_i X = U_i S_i of every pattern (§3e: U_i spans range(D_i X); see
    `_factor_stack` for why any such basis will do), rank-0 patterns dropped.

    Returns the NormBlocks of the P kept patterns, zero-padded to r = max rank. Rank: as
    numpy's matrix_rank, singular values above max(n, d) * eps * the largest.

    The zero rows of D_i X change neither its rank nor S_i, so each pattern is factored on its
    active rows only, stacked in `buckets` groups of similar size per kind (tall or wide),
    each cut into stacks of at most STACK_MEMORY bytes. Every U_i and S_i is kept dense where
    they fit in DENSE_MEMORY, else only T_i, and U_i, S_i where the SVD made them (NormBlocks).
    """
    n, d = X.shape
    M = np.asarray(M, bool)
    P = M.shape[1]
    r = min(n, d)
    T = np.zeros((P, d, r))
    dense = P * n * r * 8 <= DENSE_MEMORY
    U, S = (np.zeros((P, n, r)), np.zeros((P, r, d))) if dense else (None, None)
    rank = np.zeros(P, int)
    kind = np.full(P, WIDE)
    explicit = {}  # pattern -> (U_i (n, r), S_i (r, d)) of the SVD-factored ones
    size = M.sum(0)
    order = np.argsort(size, kind="stable")
    wide = size[order] <= d
    tol = max(n, d) * np.finfo(float).eps
    for grp_kind in (order[wide & (size[order] > 0)], order[~wide]):  # (all-zero patterns: rank 0)
        for grp in np.array_split(grp_kind, buckets):
            if len(grp) == 0:
                continue
            m = int(size[grp].max())
            for stack in np.array_split(grp, -(-len(grp) * m * d * 8 // STACK_MEMORY)):
                m = int(size[stack].max())
                rows = np.argsort(~M[:, stack].T, axis=1, kind="stable")[:, :m]  # active rows first
                on_row = np.take_along_axis(M[:, stack].T, rows, 1)
                u, s, t, rk, ok = _factor_stack(X[rows] * on_row[:, :, None], size[stack], tol)
                c = u.shape[2]
                T[stack, :, :c], rank[stack] = t, rk
                kind[stack] = TALL if m > d else WIDE
                if dense:
                    U[stack[:, None], rows, :c] = u * on_row[:, :, None]  # (each pattern's rows are distinct)
                    S[stack, :c] = s
                for j in np.flatnonzero(~ok):
                    Ui = np.zeros((n, r))
                    Ui[rows[j], :c] = u[j] * on_row[j][:, None]  # (each pattern's rows are distinct)
                    Si = np.zeros((r, d))
                    Si[:c] = s[j]
                    explicit[int(stack[j])] = (Ui, Si)
    kind[list(explicit)] = EXPLICIT
    keep = rank > 0
    r = int(rank.max(initial=0))
    if not keep.all() or r < T.shape[2]:  # (copies: skipped in the usual full-rank case)
        T = T[keep, :, :r]
        if dense:
            U, S = U[keep, :, :r], S[keep, :r]
    ex = [i for i in range(P) if keep[i] and kind[i] == EXPLICIT]
    Ue = np.array([explicit[i][0][:, :r] for i in ex]).reshape(len(ex), n, r)
    Se = np.array([explicit[i][1][:r] for i in ex]).reshape(len(ex), r, d)
    return NormBlocks(X=X, M=M[:, keep], rank=rank[keep], T=T, kind=kind[keep], Ue=Ue, Se=Se, Ud=U, Sd=S)


def norm_cone_matrices(B, idx=slice(None)):
    """The cone matrices (2D_i - I) X V_i Sigma_i^-1 of §3e for the patterns idx (default all):
    shape (P, n, r), or (n, r) for one pattern."""
    return (2.0 * B.M[:, idx].T[..., None] - 1) * (B.X @ B.T[idx])
