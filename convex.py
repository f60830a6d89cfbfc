"""Convex programs of ReLU networks, solved with CVXPY (reference.md section 3).

Blocks: the columns of W (d x P) are the w_i, one per pattern (column of the n x P mask M);
the exact and training forms have a second set Wp for the w_i'. With `skip=True` the skip
block w0 enters too; without it these are the plain-ReLU programs (§3d).

    relaxed (§3a):  min ||w0|| + sum_i ||w_i||        s.t. X w0 + sum_i D_i X w_i = y
    exact   (§3b):  min ||w0|| + sum_i ||w_i||+||w_i'|| s.t. X w0 + sum_i D_i X (w_i - w_i') = y,
                                                        (2D_i - I) X w_i >= 0, same for w_i'
    train   (§3c):  min 1/2 ||X w0 + sum_i D_i X (w_i - w_i') - y||^2
                        + beta (||w0|| + sum_i ||w_i|| + ||w_i'||), same cones

The training objective carries the 1/2 of the reference (the original code omitted it, which
amounts to doubling beta).
"""
import numpy as np
import cvxpy as cp
from scipy.linalg import lapack

FORMS = ("relaxed", "exact")
SOLVERS = ("fast", "CLARABEL", "SCS", "MOSEK")  # fast: fast_solver.py; the others via CVXPY
ZERO_TOL = 1e-10  # blocks at most this large are no neuron when mapping back to a network


class SolveFailed(RuntimeError):
    """A solver returned no usable solution; the sweep records the status and goes on."""


def _solve(fit, cost, cons, y, beta, solver, opts=None):
    """Minimise cost s.t. fit == y (beta None), or 1/2 ||fit - y||^2 + beta cost, under cons;
    opts: the solver's own settings (e.g. Clarabel's tol_gap_rel).

    Returns (objective, status, lam); lam is the equality's dual vector (None for training).
    """
    if beta is None:
        eq = fit == y
        prob = cp.Problem(cp.Minimize(cost), [eq] + cons)
    else:
        eq = None
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(fit - y) + beta * cost), cons)
    try:
        prob.solve(solver=solver, **(opts or {}))
    except cp.error.SolverError as e:
        raise SolveFailed(f"{solver}: {e}".splitlines()[0]) from None
    if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or prob.value is None:
        raise SolveFailed(f"{solver}: {prob.status}")
    # CVXPY's multiplier of `fit == y` is -lambda in the convention max lambda^T y of §3
    return float(prob.value), prob.status, None if eq is None else -np.asarray(eq.dual_value)


def solve_relu(X, M, y, form="relaxed", beta=None, skip=True, solver="CLARABEL", opts=None):
    """Solve one of the programs above: `form` relaxed/exact, or beta given for training.

    Returns dict(w0, W, Wp, objective, status, lam); w0 is None without skip, Wp is None for
    the relaxed form, lam is the dual vector of the equality constraint (the lambda of the
    dual in §3; None for training). solver "fast" hands the program to fast_solver.py, which
    returns the same dict plus its certificate and whether the optimum is unique.
    """
    if solver == "fast":
        import fast_solver  # it imports this module: imported here, not at the top
        return fast_solver.solve_relu(X, M, y, form=form, beta=beta, skip=skip)
    n, d = X.shape
    P = M.shape[1]
    W = cp.Variable((d, P))
    w0 = cp.Variable(d) if skip else None
    Wp = cp.Variable((d, P)) if form == "exact" or beta is not None else None
    XW = X @ W
    fit = cp.sum(cp.multiply(M, XW if Wp is None else XW - X @ Wp), axis=1)
    cost = cp.sum(cp.norm(W, 2, axis=0))
    cons = []
    if Wp is not None:
        S = 2.0 * M - 1.0
        cost = cost + cp.sum(cp.norm(Wp, 2, axis=0))
        cons += [cp.multiply(S, XW) >= 0, cp.multiply(S, X @ Wp) >= 0]
    if skip:
        fit = fit + X @ w0
        cost = cost + cp.norm(w0, 2)
    objective, status, lam = _solve(fit, cost, cons, y, beta, solver, opts)
    value = lambda v: None if v is None else np.asarray(v.value)
    return dict(w0=value(w0), W=value(W), Wp=value(Wp), objective=objective,
                status=status, lam=lam)


def fitted(X, M, sol):
    """X w0 + sum_i D_i X (w_i - w_i'): the convex model's fitted values."""
    V = sol["W"] if sol["Wp"] is None else sol["W"] - sol["Wp"]
    f = (M * (X @ V)).sum(1)
    return f if sol["w0"] is None else f + X @ sol["w0"]


def skip_recovered(sol, w, tol=1e-4):
    """rec of §4: the skip block equals the planted w and every ReLU block is 0, to tol.

    Where the solver says whether the optimum is a single point (fast_solver's `unique`), a
    tie is no recovery even if the returned point happens to be the planted one (issue 4).
    """
    if not sol.get("unique", True):
        return False
    blocks = sol["W"] if sol["Wp"] is None else np.concatenate([sol["W"], sol["Wp"]], 1)
    return bool(np.allclose(sol["w0"], w, rtol=0, atol=tol) and np.all(np.abs(blocks) <= tol))


def to_network(sol):
    """A two-layer ReLU network (with skip neuron) of the convex solution (§3, 'Back to a network').

    Block w_i becomes the neuron with input weights w_i/sqrt||w_i|| and output weight
    +sqrt||w_i|| (-sqrt||w_i'|| for w_i'). Returns dict(U, a, w0): U is d x m, a is m.
    """
    blocks = [sol["W"]] + ([] if sol["Wp"] is None else [sol["Wp"]])
    signs = [1.0, -1.0][:len(blocks)]
    U, a = [], []
    for B, s in zip(blocks, signs):
        norms = np.linalg.norm(B, axis=0)
        keep = norms > ZERO_TOL
        root = np.sqrt(norms[keep])
        U.append(B[:, keep] / root)
        a.append(s * root)
    return dict(U=np.concatenate(U, 1), a=np.concatenate(a), w0=sol["w0"])


def network_output(net, X):
    """f(X) = X w0 + (X U)_+ a, with real ReLUs."""
    f = np.maximum(X @ net["U"], 0) @ net["a"]
    return f if net["w0"] is None else f + X @ net["w0"]


def skip_certificate(X, M, y, sol, lam):
    """Optimality certificate of a relaxed skip solution from a dual vector lam (§3, dual of (a)).

    Returns dict(residual, dual_violation, gap): the relative primal residual, how far
    max(||X^T lam||, max_i ||X^T D_i lam||) exceeds 1, and the relative gap between the
    primal objective and lam^T y. All three near 0 prove the primal point optimal.
    """
    obj = np.linalg.norm(sol["w0"]) + np.linalg.norm(sol["W"], axis=0).sum()
    res = np.linalg.norm(fitted(X, M, sol) - y) / max(np.linalg.norm(y), 1e-300)
    dual = max(np.linalg.norm(X.T @ lam), np.linalg.norm(X.T @ (M * lam[:, None]), axis=0).max())
    return dict(residual=float(res), dual_violation=float(dual - 1.0),
                gap=float(abs(obj - lam @ y) / max(obj, 1.0)))


def planted_skip_solution(w, P, d):
    """The planted point in convex variables: w0 = w, every ReLU block 0."""
    return dict(w0=np.asarray(w, float), W=np.zeros((d, P)), Wp=None)


def skip_distances(sol, inst):
    """dis_abs = ||w0 - w|| and dis_test = ||f(X_test) - y_test|| of the mapped network (§4)."""
    f = network_output(to_network(sol), inst["X_test"])
    return dict(dis_abs=float(np.linalg.norm(sol["w0"] - inst["w"])),
                dis_test=float(np.linalg.norm(f - inst["y_test"])))


def arrays(sol):
    """The solution's arrays, for --save_details (npz stores no None)."""
    return {k: v for k, v in sol.items() if isinstance(v, np.ndarray)}


# ----- planted ReLU neurons: plain network (§3d) and normalization layer (§3e) -------------

def planted_plain_solution(M, W, cols):
    """The planted point of the plain programs: block s_j holds w_j, every other block is 0.

    D_{s_j} X w_j = (X w_j)_+, so this is feasible for the relaxed and exact programs (§3d);
    neurons sharing a pattern share its block.
    """
    B = np.zeros((W.shape[0], M.shape[1]))
    np.add.at(B.T, cols, W.T)
    return dict(w0=None, W=B, Wp=None)


def blocks_recovered(sol, planted, tol=1e-4):
    """rec of §4 for planted ReLU neurons: every block within tol (entrywise) of the planted
    point (w_{s_j} = planted block, all others 0); the blocks w_i' of the cone forms all 0.
    A tie (fast_solver's `unique` False) is no recovery."""
    ok = sol.get("unique", True) and np.all(np.abs(sol["W"] - planted["W"]) <= tol)
    return bool(ok and (sol["Wp"] is None or np.all(np.abs(sol["Wp"]) <= tol)))


def planted_distance(sol, planted, cols):
    """dis_abs of §4: sqrt(sum_j ||block_{s_j} - planted block||^2), block = w_i - w_i'."""
    s = np.unique(cols)
    V = sol["W"] if sol["Wp"] is None else sol["W"] - sol["Wp"]
    return float(np.linalg.norm(V[:, s] - planted["W"][:, s]))


def plain_distances(sol, planted, cols, inst):
    """dis_abs and dis_test (the solution as a plain ReLU network, real ReLUs) of §4."""
    f = network_output(to_network(sol), inst["X_test"])
    return dict(dis_abs=planted_distance(sol, planted, cols),
                dis_test=float(np.linalg.norm(f - inst["y_test"])))


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

    Returns dict(X, M, rank, U, T, S) for the P kept patterns, zero-padded to r = max rank:
    U (P, n, r) the U_i, T (P, d, r) with D_i X T_i = U_i (block -> first-layer direction; the
    V_i Sigma_i^-1 of §3e up to the change of basis), S (P, r, d) (first-layer direction ->
    block). Rank: as numpy's matrix_rank, singular values above max(n, d) * eps * the largest.

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
    return dict(X=X, M=M[:, keep], rank=rank[keep], U=U, T=T, S=S)


def norm_cone_matrices(B, idx=slice(None)):
    """The cone matrices (2D_i - I) X V_i Sigma_i^-1 of §3e for the patterns idx (default all):
    shape (P, n, r), or (n, r) for one pattern."""
    return (2.0 * B["M"][:, idx].T[..., None] - 1) * (B["X"] @ B["T"][idx])


def solve_norm(B, y, form="relaxed", beta=None, solver="CLARABEL", opts=None):
    """The normalization-layer programs of §3e on the blocks B of norm_blocks.

        relaxed: min sum_i ||w_i||                s.t. sum_i U_i w_i = y
        exact:   min sum_i ||w_i|| + ||w_i'||     s.t. sum_i U_i (w_i - w_i') = y,
                                                 (2D_i - I) X V_i Sigma_i^-1 w_i >= 0 (and w_i')
        train (beta given): min 1/2 ||sum_i U_i (w_i - w_i') - y||^2
                                + beta sum_i ||w_i|| + ||w_i'||, same cones

    Returns dict(W, Wp, objective, status, lam) like solve_relu, W and Wp r x P (column i
    is block i; entries beyond rank r_i are 0).
    """
    if solver == "fast":
        import fast_solver
        return fast_solver.solve_norm(B, y, form=form, beta=beta)
    P, n, r = B["U"].shape
    on = np.arange(r)[None, :] < B["rank"][:, None]  # P x r: the real coordinates
    Umat = np.transpose(B["U"], (1, 0, 2)).reshape(n, P * r)  # column i*r + c is U_i[:, c]
    z = cp.Variable(P * r)
    Z = cp.reshape(z, (P, r), order="C")
    cone_form = form == "exact" or beta is not None
    zp = cp.Variable(P * r) if cone_form else None
    # padded coordinates enter only the norms, so they are 0 at the optimum
    cost = cp.sum(cp.norm(Z, 2, axis=1))
    fit = Umat @ z
    cons = []
    if cone_form:
        cost = cost + cp.sum(cp.norm(cp.reshape(zp, (P, r), order="C"), 2, axis=1))
        fit = fit - Umat @ zp
        C = _norm_cones(B)
        cons += [C @ z >= 0, C @ zp >= 0]
    objective, status, lam = _solve(fit, cost, cons, y, beta, solver, opts)
    blocks = lambda v: None if v is None else (np.asarray(v.value).reshape(P, r) * on).T
    return dict(w0=None, W=blocks(z), Wp=blocks(zp), objective=objective,
                status=status, lam=lam)


def _norm_cones(B):
    """The sparse block-diagonal matrix of the cones (2D_i - I) X V_i Sigma_i^-1 w_i >= 0."""
    import scipy.sparse as sparse
    P, n, r = B["U"].shape
    A = norm_cone_matrices(B)
    p, t, c = np.nonzero(A)
    return sparse.csr_matrix((A[p, t, c], (p * n + t, p * r + c)), shape=(P * n, P * r))



def planted_norm_solution(B, W, cols):
    """The planted point of the normalization programs (§3): neuron j sits at its pattern s_j
    with w_hat_j = Sigma V^T w_j / ||Sigma V^T w_j|| (unit: U_{s_j} w_hat_j is the unit vector
    (X w_j)_+ / ||(X w_j)_+||), every other block 0. Neurons sharing a pattern add up."""
    P, n, r = B["U"].shape
    Z = np.zeros((r, P))
    hat = np.einsum("jrd,dj->rj", B["S"][cols], W)
    np.add.at(Z.T, cols, (hat / np.linalg.norm(hat, axis=0)).T)
    return dict(w0=None, W=Z, Wp=None)


def norm_fitted(B, sol):
    """sum_i U_i (w_i - w_i'): the convex normalization model's fitted values."""
    V = sol["W"] if sol["Wp"] is None else sol["W"] - sol["Wp"]
    return np.einsum("pnr,rp->n", B["U"], V)


def to_norm_network(sol, B):
    """The normalization-layer network of a convex solution (§3, 'Back to a network').

    Block w_i becomes the neuron with first-layer direction V_i Sigma_i^-1 w_i and
    alpha_i = gamma_i = sqrt||w_i|| (alpha_i = -sqrt||w_i'|| for w_i'): on the cone,
    (X u_i)_+ = U_i w_i, whose norm is ||w_i||, so the neuron outputs U_i w_i.
    Returns dict(U (d x m), a, gamma).
    """
    blocks = [sol["W"]] + ([] if sol["Wp"] is None else [sol["Wp"]])
    U, a, g = [], [], []
    for Z, sign in zip(blocks, (1.0, -1.0)):
        norms = np.linalg.norm(Z, axis=0)
        keep = np.flatnonzero(norms > ZERO_TOL)
        root = np.sqrt(norms[keep])
        U.append(np.einsum("pdr,rp->dp", B["T"][keep], Z[:, keep]))
        a.append(sign * root)
        g.append(root)
    return dict(U=np.concatenate(U, 1), a=np.concatenate(a), gamma=np.concatenate(g))


def norm_network_output(net, X):
    """f(X) = sum_i a_i gamma_i (X u_i)_+ / ||(X u_i)_+|| with real ReLUs, the norm over the
    rows of X (a neuron active on no row outputs 0)."""
    H = np.maximum(X @ net["U"], 0)
    norms = np.linalg.norm(H, axis=0)
    H = H / np.where(norms > 0, norms, 1)
    return H @ (net["a"] * net["gamma"])


def norm_distances(sol, B, planted, cols, inst):
    """dis_abs and dis_test (the solution as a normalization-layer network) of §4."""
    f = norm_network_output(to_norm_network(sol, B), inst["X_test"])
    return dict(dis_abs=planted_distance(sol, planted, cols),
                dis_test=float(np.linalg.norm(f - inst["y_test"])))


def plain_setup(inst, rng, num=None):
    """Patterns (planted first, patterns.relu_patterns), planted columns and planted point of
    the plain programs for a data.plain_instance: (M, cols, planted)."""
    import patterns
    M = patterns.relu_patterns(inst["X"], inst["W"], rng, num)
    cols = patterns.planted_columns(M, inst["X"], inst["W"])
    return M, cols, planted_plain_solution(M, inst["W"], cols)


def norm_setup(inst, rng, num=None):
    """Blocks (norm_blocks of the patterns, planted first), planted columns and planted point
    of the normalization programs for a data.norm_instance: (B, cols, planted)."""
    import patterns
    B = norm_blocks(inst["X"], patterns.relu_patterns(inst["X"], inst["W"], rng, num))
    cols = patterns.planted_columns(B["M"], inst["X"], inst["W"])
    return B, cols, planted_norm_solution(B, inst["W"], cols)
