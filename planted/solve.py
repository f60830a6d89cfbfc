"""The one solve dispatch: every script solves a program through here (docs/reference.md §3).

`solver="fast"` is the certified solver of planted.solver; any other name is a CVXPY solver
(CLARABEL, SCS, MOSEK), whose module, and cvxpy with it, is imported only when one is asked
for: a sweep with the fast solver never loads cvxpy. Both return a planted.solution.Solution
with the same fields (the CVXPY ones leave `unique` and the certificate unset).
"""
from planted import solver as fast
from planted.solver import FORMS

SOLVERS = ("fast", "CLARABEL", "SCS", "MOSEK")  # fast: planted.solver; the others via CVXPY


def _check(form, solver):
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; one of {', '.join(FORMS)}")
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; one of {', '.join(SOLVERS)}")


def solve_relu(X, M, y, form="relaxed", beta=None, skip=True, solver="fast", opts=None):
    """The ReLU programs of §3a-d on patterns M (n x P): relaxed or exact form, or the
    training program when beta is given; with skip the skip block w0 joins. opts: a CVXPY
    solver's own settings."""
    _check(form, solver)
    if solver == "fast":
        return fast.solve_relu(X, M, y, form=form, beta=beta, skip=skip)
    from planted import cvx  # loads cvxpy: only when a CVXPY solver is asked for
    return cvx.solve_relu(X, M, y, form=form, beta=beta, skip=skip, solver=solver, opts=opts)


def solve_norm(B, y, form="relaxed", beta=None, solver="fast", opts=None):
    """The normalization-layer programs of §3e on NormBlocks B (see solve_relu)."""
    _check(form, solver)
    if solver == "fast":
        return fast.solve_norm(B, y, form=form, beta=beta)
    from planted import cvx  # loads cvxpy: only when a CVXPY solver is asked for
    return cvx.solve_norm(B, y, form=form, beta=beta, solver=solver, opts=opts)
