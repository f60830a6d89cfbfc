"""The neural isometry conditions (docs/reference.md §6): dual certificates at the planted point.

Each condition builds the minimum-norm dual candidate lambda of a relaxed program (§3) at the
planted point and asks whether it is strictly feasible for every other block. Where it holds,
the planted model is the unique optimum of that program (a sufficient condition, not a
necessary one). `value` is the largest dual norm over the non-planted blocks, which must be < 1.

    linear            ReLU + skip program (§3a), planted linear neuron:
                        max_i ||X^T D_i X (X^T X)^-1 w_hat|| < 1
    nic1              plain ReLU program (§3d), one planted ReLU neuron (NIC-1):
                        max_{D_i != D*} ||X^T D_i D* X (X^T D* X)^-1 w_hat|| < 1
    nick              plain ReLU program, k planted neurons (NIC-k):
                        lambda = X_S (X_S^T X_S)^-1 w_S, max_{i not in S} ||X^T D_i lambda|| < 1
    norm1             normalization-layer program (§3e), one neuron:
                        max_{i != s} ||U_i^T U_s w_hat|| < 1
    normk             normalization layer, k neurons (irrepresentability):
                        lambda = U_S (U_S^T U_S)^+ w_S, max_{i not in S} ||U_i^T lambda|| < 1

These are the irrepresentability experiments of §2: max(2n, 50) directions per instance.
"""
import numpy as np

from planted import patterns, recovery, solve

CONDITIONS = ("linear", "nic1", "nick", "norm1", "normk")
# "< 1" by a margin: within 1e-3 of 1 the condition is a near-tie that a solver at ~1e-8
# accuracy cannot resolve (a spurious block of size ~1e-8 / (1 - value) may appear), and
# D = I makes the linear value exactly 1, up to rounding
MARGIN = 1e-3
RANK_RTOL = 1e-10  # a Gram matrix with a smaller relative eigenvalue is singular: no candidate


def _verdict(norms, others):
    """(holds, value): value = the largest dual norm over the blocks `others` (boolean mask);
    holds = value < 1 - MARGIN."""
    value = float(norms[others].max()) if others.any() else 0.0
    return dict(holds=value < 1 - MARGIN, value=value)


def _no_candidate():
    """No lambda solves the subgradient equations: the certificate does not exist."""
    return dict(holds=False, value=np.nan)


def _full_column_rank(A):
    s = np.linalg.svd(A, compute_uv=False)
    return A.shape[0] >= A.shape[1] and s.min() > RANK_RTOL * s.max()


def relu_dual_norms(X, M, lam):
    """||X^T D_i lam|| for every pattern i (column of M)."""
    return np.linalg.norm(X.T @ (M * lam[:, None]), axis=0)


def norm_dual_norms(B, lam):
    """||U_i^T lam|| for every normalization block i."""
    return np.linalg.norm(np.einsum("pnr,n->pr", B.U, lam), axis=1)


def linear(X, M, w):
    """Linear planted neuron, ReLU + skip: max_i ||X^T D_i X (X^T X)^-1 w_hat|| < 1 (§6).

    lambda = X (X^T X)^-1 w_hat has X^T lambda = w_hat (the skip block's subgradient); it
    needs rank X = d (n >= d). With D = I among the patterns the value is exactly 1.
    """
    if not _full_column_rank(X):
        return _no_candidate()
    lam = X @ np.linalg.solve(X.T @ X, w / np.linalg.norm(w))
    return _verdict(relu_dual_norms(X, M, lam), np.ones(M.shape[1], bool))


def nic1(X, M, w, s):
    """NIC-1, one planted ReLU neuron of pattern D* = D_s, plain ReLU:
    max_{i != s} ||X^T D_i D* X (X^T D* X)^-1 w_hat|| < 1 (§6); needs rank D* X = d."""
    DX = M[:, s, None] * X
    if not _full_column_rank(DX):
        return _no_candidate()
    lam = DX @ np.linalg.solve(DX.T @ DX, w / np.linalg.norm(w))
    return _verdict(relu_dual_norms(X, M, lam), np.arange(M.shape[1]) != s)


def nick(X, M, W, cols):
    """NIC-k, k planted ReLU neurons at patterns cols, plain ReLU (§6): X_S = [D_{s_j} X],
    lambda = X_S (X_S^T X_S)^-1 w_hat_S, max_{i not in S} ||X^T D_i lambda|| < 1.
    Needs distinct patterns and X_S of full column rank kd."""
    if len(set(cols)) < len(cols) or min(cols) < 0:
        return _no_candidate()
    XS = np.concatenate([M[:, s, None] * X for s in cols], 1)
    if not _full_column_rank(XS):
        return _no_candidate()
    lam = XS @ np.linalg.solve(XS.T @ XS, (W / np.linalg.norm(W, axis=0)).T.ravel())
    others = np.ones(M.shape[1], bool)
    others[cols] = False
    return _verdict(relu_dual_norms(X, M, lam), others)


def norm1(B, w_hat, s):
    """Normalization layer, one neuron at block s with planted block w_hat (unit, §3):
    max_{i != s} ||U_i^T U_s w_hat|| < 1 (§6). lambda = U_s w_hat has U_s^T lambda = w_hat."""
    lam = B.U[s] @ w_hat
    return _verdict(norm_dual_norms(B, lam), np.arange(B.U.shape[0]) != s)


def normk(B, W_hat, cols):
    """Normalization layer, k neurons (irrepresentability, §6): U_S = [U_{s_1} ... U_{s_k}],
    lambda = U_S (U_S^T U_S)^+ w_hat_S; require ||U_i^T lambda|| < 1 for every non-planted i.

    The candidate must solve U_S^T lambda = w_hat_S, and the planted outputs U_{s_j} w_hat_j
    must be linearly independent (else the planted point is not the unique optimum): where
    either fails there is no certificate.
    """
    if len(set(cols)) < len(cols) or min(cols) < 0:
        return _no_candidate()
    US = np.concatenate([B.U[s] for s in cols], 1)  # zero padding columns are harmless
    wS = W_hat.T.ravel()
    lam = US @ (np.linalg.pinv(US.T @ US, hermitian=True) @ wS)
    outputs = np.column_stack([B.U[s] @ W_hat[:, j] for j, s in enumerate(cols)])
    if np.linalg.norm(US.T @ lam - wS) > 1e-8 * np.linalg.norm(wS) or not _full_column_rank(outputs):
        return _no_candidate()
    others = np.ones(B.U.shape[0], bool)
    others[cols] = False
    return _verdict(norm_dual_norms(B, lam), others)


def num_directions(n):
    """Directions sampled per instance in the irrepresentability experiments (§2)."""
    return max(2 * n, 50)


def check_instance(cond, inst, rng, compare=False, solver="CLARABEL"):
    """Draw the patterns of one instance, evaluate condition `cond` and, with `compare`, solve
    the matching relaxed program on the same patterns. Returns the metrics and details."""
    X, num = inst["X"], num_directions(inst["X"].shape[0])
    if cond == "linear":
        M = patterns.sample_patterns(X, num, rng)
        out = linear(X, M, inst["w"])
        details = dict(inst, M=M)
        if compare:
            sol = solve.solve_relu(X, M, inst["y"], form="relaxed", solver=solver)
            out["rec"] = recovery.skip_recovered(sol, inst["w"])
    elif cond in ("nic1", "nick"):
        M, cols, planted = recovery.plain_setup(inst, rng, num)
        out = nic1(X, M, inst["W"][:, 0], cols[0]) if cond == "nic1" else nick(X, M, inst["W"], cols)
        details = dict(inst, M=M, cols=cols)
        if compare:
            sol = solve.solve_relu(X, M, inst["y"], form="relaxed", skip=False, solver=solver)
            out["rec"] = recovery.blocks_recovered(sol, planted)
    else:
        B, cols, planted = recovery.norm_setup(inst, rng, num)
        W_hat = planted.W[:, cols]
        out = norm1(B, W_hat[:, 0], cols[0]) if cond == "norm1" else normk(B, W_hat, cols)
        details = dict(inst, M=B.M, cols=cols)
        if compare:
            sol = solve.solve_norm(B, inst["y"], form="relaxed", solver=solver)
            out["rec"] = recovery.blocks_recovered(sol, planted)
    if compare:
        out["gap"] = int(out["rec"]) - int(out["holds"])
        details.update(sol.arrays())
        out["status"] = sol.status
    return out, details
