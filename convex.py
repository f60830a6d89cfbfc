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

FORMS = ("relaxed", "exact")
SOLVERS = ("CLARABEL", "SCS", "MOSEK")
ZERO_TOL = 1e-10  # blocks at most this large are no neuron when mapping back to a network


class SolveFailed(RuntimeError):
    """A solver returned no usable solution; the sweep records the status and goes on."""


def solve_relu(X, M, y, form="relaxed", beta=None, skip=True, solver="CLARABEL"):
    """Solve one of the programs above: `form` relaxed/exact, or beta given for training.

    Returns dict(w0, W, Wp, objective, status, lam); w0 is None without skip, Wp is None for
    the relaxed form, lam is the dual vector of the equality constraint (the lambda of the
    dual in §3; None for training).
    """
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
    if beta is None:
        eq = fit == y
        prob = cp.Problem(cp.Minimize(cost), [eq] + cons)
    else:
        eq = None
        prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(fit - y) + beta * cost), cons)
    try:
        prob.solve(solver=solver)
    except cp.error.SolverError as e:
        raise SolveFailed(f"{solver}: {e}".splitlines()[0]) from None
    if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or W.value is None:
        raise SolveFailed(f"{solver}: {prob.status}")
    value = lambda v: None if v is None else np.asarray(v.value)
    # CVXPY's multiplier of `fit == y` is -lambda in the convention max lambda^T y of §3
    lam = None if eq is None else -np.asarray(eq.dual_value)
    return dict(w0=value(w0), W=value(W), Wp=value(Wp), objective=float(prob.value),
                status=prob.status, lam=lam)


def fitted(X, M, sol):
    """X w0 + sum_i D_i X (w_i - w_i'): the convex model's fitted values."""
    V = sol["W"] if sol["Wp"] is None else sol["W"] - sol["Wp"]
    f = (M * (X @ V)).sum(1)
    return f if sol["w0"] is None else f + X @ sol["w0"]


def skip_recovered(sol, w, tol=1e-4):
    """rec of §4: the skip block equals the planted w and every ReLU block is 0, to tol."""
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
