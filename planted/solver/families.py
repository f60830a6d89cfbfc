"""Block families: the linear algebra the solver needs for a set of blocks (docs/reference.md §3).

A family holds k blocks A_g (n x d), each with a sign, and on the blocks flagged `cone` the
linear cone G_g w_g >= 0. `BlockFamily` declares what every part of the solver may ask of
one; `ReluBlocks` (§3a-d: A_g = +-D_i X, G_g = (2 D_i - I) X, the skip block A_0 = X) and
`DenseBlocks` (§3e: A_g = +-U_i, G_g = (2 D_i - I) X V_i Sigma_i^-1) implement it without
ever forming the n x (k d) matrix of all blocks.
"""
from abc import ABC, abstractmethod

import numpy as np
from scipy.linalg import blas

from planted.normblocks import norm_cone_matrices

PROJ_MEMORY = 2 ** 28  # bytes of cached n x n projectors per working set (normalization blocks)


class BlockFamily(ABC):
    """k blocks A_g (n x d) with signs `sg` (+-1) and the cones G_g w_g >= 0 on the blocks
    flagged `cone` (bool, k). Block values are arrays W of shape (k, d), one row per block;
    the cone methods take the indices ci of cone blocks and their rows.

    Per-family state the solver keeps (it depends on the blocks, not on lam):
    twin: block -> its opposite-sign copy (A_g' = -A_g, same cone), -1 if none; None where
        the family has no such copies (the cone forms have them, see working_set).
    mu_cache: block -> its last NNLS cone multiplier (see duals.dual_values).
    lip_cache: block -> ||G_g||^2 estimate (see duals.cone_screen).
    """
    # Is sum_g A_g A_g^T over all blocks cheap, so that the least-squares dual
    # (sum_g A_g A_g^T)^-1 y is worth computing as the working set's start (see working_set)?
    cheap_gram = False

    def __init__(self, n, d, signs, cone):
        self.n, self.d = n, d
        self.sg = np.asarray(signs, float)
        self.cone = np.asarray(cone, bool)
        self.k = len(self.sg)
        self.twin = None
        self.mu_cache = {}
        self.lip_cache = {}

    def subset(self, idx):
        """The family of the blocks idx (in that order), twins renumbered."""
        sub = self._subset(idx)
        sub.twin = _subset_twin(self.twin, idx)
        return sub

    def pairs(self, ci):
        """The cone blocks ci grouped by their A_g up to sign: positions `lead` into ci, one per
        group, and `mate` (the position of the lead's opposite-sign copy, -1 if that is not in
        ci)."""
        if self.twin is None:
            return np.arange(len(ci)), np.full(len(ci), -1)
        pos = {g: j for j, g in enumerate(ci.tolist())}
        lead, mate = [], []
        for j, g in enumerate(ci.tolist()):
            m = pos.get(int(self.twin[g]), -1)
            if m < 0 or m > j:
                lead.append(j)
                mate.append(m)
        return np.array(lead, int), np.array(mate, int)

    @abstractmethod
    def _subset(self, idx):
        """The blocks idx as a new family (twin, caches: fresh)."""

    @abstractmethod
    def apply(self, Wb):
        """sum_g A_g w_g for Wb of shape (k, d)."""

    @abstractmethod
    def adjoint(self, lam):
        """A_g^T lam for every block, shape (k, d)."""

    @abstractmethod
    def gram(self, c):
        """sum_g c_g A_g A_g^T, n x n."""

    @abstractmethod
    def cols(self, U):
        """The n x k matrix of columns A_g u_g."""

    @abstractmethod
    def a_matrix(self, g):
        """The explicit A_g, n x d."""

    def block_matrix(self, S):
        """The explicit n x (|S| d) matrix [A_g for g in S]."""
        return np.hstack([self.a_matrix(g) for g in S])

    @abstractmethod
    def a_t(self, ci):
        """The A_g^T of the cone blocks ci, explicit: (kc, d, n), kept for an IPM's iterations."""

    @abstractmethod
    def g_matrix(self, g):
        """The explicit cone matrix G_g of block g, m x d."""

    @abstractmethod
    def g_apply(self, ci, Wc):
        """G_g w_g for the cone blocks ci (rows of Wc), shape (kc, m)."""

    @abstractmethod
    def g_adjoint(self, ci, Z):
        """G_g^T z_g for the cone blocks ci (rows of Z), shape (kc, d)."""

    @abstractmethod
    def g_ops(self, gs):
        """(W -> G_g w_g, Z -> G_g^T z_g) over the blocks gs, for batches of many blocks of the
        whole family (see duals.cone_screen)."""

    @abstractmethod
    def g_normal(self, gs):
        """Z -> G_g^T G_g z_g over the blocks gs."""

    @abstractmethod
    def g_gram(self, ci, C):
        """G_g^T diag(c_g) G_g for the cone blocks ci and the rows c_g of C >= 0, shape
        (kc, d, d): lower triangles only (see _syrk_grams)."""


def _subset_twin(twin, idx):
    """The opposite-sign copies (BlockFamily.twin) within the subset idx of the blocks."""
    if twin is None:
        return None
    idx = np.asarray(idx, int)
    pos = np.full(len(twin), -1)
    pos[idx] = np.arange(len(idx))
    tw = twin[idx]
    return np.where(tw >= 0, pos[np.maximum(tw, 0)], -1)


def _syrk_grams(G, C):
    """The lower triangles (upper parts 0) of G(j)^T diag(c_j) G(j) for the rows c_j of C >= 0:
    one syrk per block, half the work of a product; the Cholesky factorizations that use them
    read only lower triangles."""
    S = np.sqrt(C)
    out = np.empty((len(C),) + (G(0).shape[1],) * 2) if len(C) else np.zeros((0, 0, 0))
    for j in range(len(C)):
        out[j] = blas.dsyrk(1.0, G(j) * S[j][:, None], trans=1, lower=1)
    return out


class ReluBlocks(BlockFamily):
    """Blocks A_g = sign_g diag(m_g) X (mask m_g in {0,1}^n; the skip block has m = 1), with
    the cone G_g = diag(2 m_g - 1) X on blocks flagged `cone`."""
    # sum_g A_g A_g^T = (X X^T) o (M M^T): a Hadamard product of n x n matrices
    cheap_gram = True

    def __init__(self, X, masks, signs, cone, XXt=None):
        super().__init__(X.shape[0], X.shape[1], signs, cone)
        self.X = X
        self.Mk = np.asarray(masks, float)
        self.XXt = X @ X.T if XXt is None else XXt
        self._at = None

    def _subset(self, idx):
        return ReluBlocks(self.X, self.Mk[:, idx], self.sg[idx], self.cone[idx], self.XXt)

    def apply(self, Wb):
        return ((self.X @ Wb.T) * self.Mk) @ self.sg

    def adjoint(self, lam):
        # one d x n x k product
        return (self.X.T @ (self.Mk * lam[:, None])).T * self.sg[:, None]

    def gram(self, c):
        # (X X^T) o (M diag(c) M^T)
        return ((self.Mk * c) @ self.Mk.T) * self.XXt

    def cols(self, U):
        return (self.X @ U.T) * self.Mk * self.sg

    def a_matrix(self, g):
        return self.sg[g] * self.Mk[:, g, None] * self.X

    def a_t(self, ci):
        if self._at is None or not np.array_equal(self._at[0], ci):
            self._at = (ci, self.X.T[None] * (self.Mk[:, ci].T * self.sg[ci, None])[:, None, :])
        return self._at[1]

    def g_matrix(self, g):
        return (2 * self.Mk[:, g] - 1)[:, None] * self.X

    def g_apply(self, ci, Wc):
        return (self.X @ Wc.T).T * (2 * self.Mk[:, ci].T - 1)

    def g_adjoint(self, ci, Z):
        return (Z * (2 * self.Mk[:, ci].T - 1)) @ self.X

    def g_ops(self, gs):
        return (lambda W: self.g_apply(gs, W)), (lambda Z: self.g_adjoint(gs, Z))

    def g_normal(self, gs):
        # X^T X z_g: the signs square to 1
        XtX = self.X.T @ self.X
        return lambda Z: Z @ XtX

    def g_gram(self, ci, C):
        # X^T diag(c_g) X: the signs square to 1
        return _syrk_grams(lambda j: self.X, C)


class Cones(ABC):
    """The cone matrices of a DenseBlocks' base blocks: G[idx] explicit (m x d each), and the
    batched products `ops` and `normal` over the base blocks idx."""

    @abstractmethod
    def __getitem__(self, idx):
        """The cone matrices of the base blocks idx, explicit."""

    def ops(self, idx):
        """(W -> G_b w_b, Z -> G_b^T z_b) over the base blocks idx."""
        G = self[idx]
        return (lambda W: np.einsum("gmd,gd->gm", G, W)), (lambda Z: np.einsum("gmd,gm->gd", G, Z))

    def normal(self, idx):
        """Z -> G_b^T G_b z_b over the base blocks idx."""
        G, Gt = self.ops(idx)
        return lambda Z: Gt(G(Z))


class ExplicitCones(Cones):
    """Cone matrices held as one array (Pb, m, d)."""

    def __init__(self, G):
        self.G = G

    def __getitem__(self, idx):
        return self.G[idx]


class NormCones(Cones):
    """The cone matrices (2 D_i - I) X T_i of the normalization layer (T_i = V_i Sigma_i^-1 up
    to a change of basis, planted.normblocks), computed when asked: the solver needs them only
    for the blocks of the working set and for the few whose dual constraint needs an NNLS, and
    all P of them cost as much as the solve. The batched products never form them."""

    def __init__(self, B):
        self.B = B
        self.XtX = None

    def __getitem__(self, idx):
        return norm_cone_matrices(self.B, idx)

    def ops(self, idx):
        # G_i^T z = T_i^T X^T ((2 m_i - 1) o z)
        X, T, S = self.B.X, self.B.T[idx], 2.0 * self.B.M[:, idx] - 1

        def apply(W):
            return (X @ (T @ W[:, :, None])[:, :, 0].T).T * S.T

        def adjoint(Z):
            return (T.transpose(0, 2, 1) @ (X.T @ (S * Z.T)).T[:, :, None])[:, :, 0]
        return apply, adjoint

    def normal(self, idx):
        # T_i^T X^T X T_i z_i (the signs square to 1): d x d products only
        if self.XtX is None:
            self.XtX = self.B.X.T @ self.B.X
        T, XtX = self.B.T[idx], self.XtX
        return lambda Z: (T.transpose(0, 2, 1) @ ((T @ Z[:, :, None])[:, :, 0] @ XtX)[:, :, None])[:, :, 0]


class ExplicitBases:
    """Base matrices held as one array U (Pb, n, d): what DenseBlocks asks of its bases
    (NormBlocks answers the same, from its factors)."""

    def __init__(self, U):
        self.U = U
        self.P, self.n, self.r = U.shape

    def u_blocks(self, idx):
        return self.U[idx]

    def adjoint(self, lam):
        return np.einsum("gnd,n->gd", self.U, lam)

    def apply(self, Z, idx=None):
        return np.einsum("gnd,gd->n", self.U if idx is None else self.U[idx], Z)


class DenseBlocks(BlockFamily):
    """Blocks A_g = sign_g U[base_g] (U: (Pb, n, d) base matrices, zero-padded to a common
    width d: padded coordinates only enter the norm, so they are 0 at the optimum), with
    cones G[base_g] w >= 0 (G: `Cones` of the base blocks) on blocks flagged `cone`. Blocks
    index the base arrays, so the +- copies of the exact form share memory. U is an array or
    any bases object with ExplicitBases' methods (NormBlocks: U_i from factors, never all
    dense); a subset (a working set) holds its base matrices dense."""

    def __init__(self, U, base, signs, cone, G=None):
        self.bases = ExplicitBases(U) if isinstance(U, np.ndarray) else U
        super().__init__(self.bases.n, self.bases.r, signs, cone)
        self.G = G
        self.base = np.asarray(base, int)
        self._proj = None  # the projectors U_b U_b^T, once gram needs them
        self._gc = None  # (ci, G of the blocks ci)
        self._at = None  # (ci, A^T of the blocks ci)

    def _subset(self, idx):
        # a compact dense copy of the base blocks used: every product then runs over these only
        ub, base = np.unique(self.base[idx], return_inverse=True)
        return DenseBlocks(self.bases.u_blocks(ub), base, self.sg[idx], self.cone[idx],
                           None if self.G is None else ExplicitCones(self.G[ub]))

    def apply(self, Wb):
        # summed per base block first: the zero blocks (most of them, in a certificate) and
        # the copies of a base block then cost nothing
        Wbase = np.zeros((self.bases.P, self.d))
        np.add.at(Wbase, self.base, Wb * self.sg[:, None])
        used = np.flatnonzero(Wbase.any(1))
        if len(used) == self.bases.P:
            return self.bases.apply(Wbase)
        return self.bases.apply(Wbase[used], used)

    def adjoint(self, lam):
        # one product over the distinct base blocks, then gathered
        return self.bases.adjoint(lam)[self.base] * self.sg[:, None]

    def gram(self, c):
        """sum_b (summed c)_b U_b U_b^T over the base blocks. A working set's projectors
        U_b U_b^T are computed once and kept (when they fit in PROJ_MEMORY): each IPM iteration
        is then a weighted sum of n x n matrices, not an n x (k d) product."""
        cb = np.bincount(self.base, weights=c, minlength=self.bases.P)
        if self._proj is None and self.bases.P * self.n ** 2 * 8 <= PROJ_MEMORY:
            U = self.bases.u_blocks(np.arange(self.bases.P))
            self._proj = U @ U.transpose(0, 2, 1)
        if self._proj is not None:
            return np.tensordot(cb, self._proj, axes=1)
        keep = np.flatnonzero(cb > 0)
        B = self.bases.u_blocks(keep) * np.sqrt(cb[keep])[:, None, None]
        B = B.transpose(1, 0, 2).reshape(self.n, -1)
        return B @ B.T

    def cols(self, U):
        return np.einsum("gnd,gd->ng", self.bases.u_blocks(self.base), U * self.sg[:, None])

    def a_matrix(self, g):
        return self.sg[g] * self.bases.u_blocks([self.base[g]])[0]

    def a_t(self, ci):
        if self._at is None or not np.array_equal(self._at[0], ci):
            self._at = (ci, self.bases.u_blocks(self.base[ci]).transpose(0, 2, 1) * self.sg[ci, None, None])
        return self._at[1]

    def _cones(self, ci):
        """G of the cone blocks ci, gathered once per IPM (ci is the same at every iteration)."""
        if self._gc is None or not np.array_equal(self._gc[0], ci):
            self._gc = (ci, self.G[self.base[ci]])
        return self._gc[1]

    def g_matrix(self, g):
        return self.G[self.base[g]]

    def g_apply(self, ci, Wc):
        return np.einsum("gmd,gd->gm", self._cones(ci), Wc)

    def g_adjoint(self, ci, Z):
        return np.einsum("gmd,gm->gd", self._cones(ci), Z)

    def g_ops(self, gs):
        return self.G.ops(self.base[gs])

    def g_normal(self, gs):
        return self.G.normal(self.base[gs])

    def g_gram(self, ci, C):
        G = self._cones(ci)
        return _syrk_grams(lambda j: G[j], C)


def relu_family(X, M, form="relaxed", beta=None, skip=True, XXt=None):
    """Blocks of a ReLU program (§3a-d): [skip X] + relaxed: D_i X per pattern; exact/training:
    D_i X (w_i) then -D_i X (w_i'), both with the cone (2 D_i - I) X w >= 0. XXt: X X^T where
    the caller has it (a cone form and its relaxation share it)."""
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
    F = ReluBlocks(X, masks, signs, cone, XXt)
    if cones:
        o = 1 if skip else 0
        F.twin = np.r_[-np.ones(o, int), o + P + np.arange(P), o + np.arange(P)]
    return F


def norm_family(B, form="relaxed", beta=None):
    """Blocks of the normalization programs (§3e) on the NormBlocks B: relaxed U_i per
    pattern; exact/training U_i (w_i) then -U_i (w_i'), with the cones
    (2 D_i - I) X V_i Sigma_i^-1 w >= 0. The U_i stay in B's factors (products on demand)."""
    P = B.P
    cones = form == "exact" or beta is not None
    G = None
    if cones:
        G = NormCones(B)
        base, signs = np.r_[np.arange(P), np.arange(P)], np.r_[np.ones(P), -np.ones(P)]
    else:
        base, signs = np.arange(P), np.ones(P)
    # small instances: B's dense U_i as one array (the products are the same either way)
    F = DenseBlocks(np.ascontiguousarray(B.Ud) if B.dense else B, base, signs, np.full(len(base), cones), G)
    if cones:
        F.twin = np.r_[P + np.arange(P), np.arange(P)]
    return F
