"""The CVXPY reference programs (docs/reference.md §3): the same programs as the fast solver.

Blocks: the columns of W (d x P) are the w_i, one per pattern (column of the n x P mask M);
the exact and training forms have a second set Wp for the w_i'. With `skip=True` the skip
block w0 enters too; without it these are the plain-ReLU programs (§3d).

    relaxed (§3a):  min ||w0|| + sum_i ||w_i||        s.t. X w0 + sum_i D_i X w_i = y
    exact   (§3b):  min ||w0|| + sum_i ||w_i||+||w_i'|| s.t. X w0 + sum_i D_i X (w_i - w_i') = y,
                                                        (2D_i - I) X w_i >= 0, same for w_i'
    train   (§3c):  min 1/2 ||X w0 + sum_i D_i X (w_i - w_i') - y||^2
                        + beta (||w0|| + sum_i ||w_i|| + ||w_i'||), same cones

The training objective carries the 1/2 of §3c (the original code omitted it, which amounts
to doubling beta). Importing this module loads cvxpy: only a CVXPY solver needs it.
"""
import cvxpy as cp
import numpy as np
import scipy.sparse as sparse

from planted.normblocks import norm_cone_matrices
from planted.solution import Solution, SolveFailed


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
    """One of the ReLU programs above: `form` relaxed/exact, or beta given for training."""
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
    value = lambda v: None if v is None else np.asarray(v.value)  # noqa: E731
    return Solution(W=value(W), Wp=value(Wp), w0=value(w0), objective=objective, status=status, lam=lam)


def solve_norm(B, y, form="relaxed", beta=None, solver="CLARABEL", opts=None):
    """The normalization-layer programs of §3e on NormBlocks B:

        relaxed: min sum_i ||w_i||                s.t. sum_i U_i w_i = y
        exact:   min sum_i ||w_i|| + ||w_i'||     s.t. sum_i U_i (w_i - w_i') = y,
                                                 (2D_i - I) X V_i Sigma_i^-1 w_i >= 0 (and w_i')
        train (beta given): min 1/2 ||sum_i U_i (w_i - w_i') - y||^2
                                + beta sum_i ||w_i|| + ||w_i'||, same cones

    W and Wp are r x P (column i is block i; entries beyond rank r_i are 0).
    """
    P, n, r = B.U.shape
    on = np.arange(r)[None, :] < B.rank[:, None]  # P x r: the real coordinates
    Umat = np.transpose(B.U, (1, 0, 2)).reshape(n, P * r)  # column i*r + c is U_i[:, c]
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
    blocks = lambda v: None if v is None else (np.asarray(v.value).reshape(P, r) * on).T  # noqa: E731
    return Solution(W=blocks(z), Wp=blocks(zp), w0=None, objective=objective, status=status, lam=lam)


def _norm_cones(B):
    """The sparse block-diagonal matrix of the cones (2D_i - I) X V_i Sigma_i^-1 w_i >= 0."""
    P, n, r = B.U.shape
    A = norm_cone_matrices(B)
    p, t, c = np.nonzero(A)
    return sparse.csr_matrix((A[p, t, c], (p * n + t, p * r + c)), shape=(P * n, P * r))


def mosek_problem():
    """None if MOSEK can solve here, else why not (not installed, no license)."""
    try:
        import mosek  # noqa: F401
    except ImportError:
        return "MOSEK is not installed (pip install mosek, plus a license file)"
    x = cp.Variable(1)
    try:
        cp.Problem(cp.Minimize(cp.norm(x - 1)), []).solve(solver="MOSEK")
    except Exception as e:  # MOSEK reports a missing license as any of several errors
        return f"MOSEK is installed but cannot solve ({str(e).splitlines()[0][:120]}); is a license installed?"
    return None
