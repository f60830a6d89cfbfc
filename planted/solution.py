"""What every solver returns: one Solution type, whatever program and solver (docs/reference.md §3).

The blocks of a program are stored column-wise: W[:, i] is the block w_i of pattern i, Wp[:, i]
its w_i' in the cone forms (exact and training), w0 the skip block. The normalization-layer
programs use the same layout with r x P blocks (the coordinates of U_i).
"""
from dataclasses import dataclass, field

import numpy as np


class SolveFailed(RuntimeError):
    """A solver returned no usable solution; the sweep records the status and goes on."""


@dataclass
class Solution:
    """One solved convex program.

    W, Wp, w0: the blocks (Wp None for the relaxed form, w0 None without a skip block).
    objective: the program's optimal value. status: the solver's word for it.
    lam: the dual vector of the equality constraint sum_i A_i w_i = y (the lambda of the duals
        in docs/reference.md §3); None for the training programs under CVXPY.
    unique: whether the optimum is a single point. The fast solver decides it; a CVXPY solver
        does not, and leaves None, which the recovery checks read as "not a tie".
    certificate: the fast solver's optimality certificate (residual, dual violation, gap, ...).
    support, active: block indices of the nonzero blocks and of the blocks whose dual
        constraint is active (fast solver only; 0 is the skip block when there is one, then
        the patterns, then the w_i' blocks).
    """
    W: np.ndarray
    Wp: np.ndarray | None
    w0: np.ndarray | None
    objective: float
    status: str
    lam: np.ndarray | None = None
    unique: bool | None = None
    certificate: dict = field(default_factory=dict)
    support: np.ndarray | None = None
    active: np.ndarray | None = None
    rounds: int | None = None

    @property
    def difference(self):
        """w_i - w_i' per block (w_i for the relaxed form): what the fitted values see."""
        return self.W if self.Wp is None else self.W - self.Wp

    @property
    def blocks(self):
        """Every ReLU block side by side, (d, P) or (d, 2P): all zero when nothing is used."""
        return self.W if self.Wp is None else np.concatenate([self.W, self.Wp], 1)

    def arrays(self):
        """The solution for --save_details, every name prefixed sol_ so that none shadows the
        planted instance's (W, w): its arrays, objective, status and, when decided, unique."""
        names = ("w0", "W", "Wp", "lam", "support", "active")
        out = {f"sol_{k}": getattr(self, k) for k in names if isinstance(getattr(self, k), np.ndarray)}
        out.update(sol_objective=np.float64(self.objective), sol_status=np.str_(self.status))
        if self.unique is not None:
            out["sol_unique"] = np.bool_(self.unique)
        return out
