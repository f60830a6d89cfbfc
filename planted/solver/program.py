"""The scaled program every part of the solver works on, and the two tolerances that judge it.

solve_blocks divides y by ||y||: w scales with ||y|| and lam does not, so every tolerance
below is relative. The program is then basis pursuit (BP) or the group lasso (docs/reference.md
§3a-c, the lasso scaled to weight 1 on the fit):

    (BP)     min  sum_g ||w_g||                          s.t.  sum_g A_g w_g = y
    (LASSO)  min  sum_g ||w_g|| + 1/(2 rho) ||sum_g A_g w_g - y||^2,   rho = beta / ||y||

both with the linear cones G_g w_g >= 0 of the family's cone blocks.
"""
from dataclasses import dataclass

import numpy as np

FORMS = ("relaxed", "exact")  # the programs without and with the cone constraints
CERT_TOL = 1e-8  # certificate: relative residual, dual violation and gap must be below
TIE_TOL = 1e-6   # a dual constraint within this of 1 is active: its block may be optimal


@dataclass(frozen=True, eq=False)  # (eq would compare arrays)
class Program:
    """Labels y (unit norm) and the lasso weight rho (None: basis pursuit); `scale` is the
    ||y|| the program was scaled by, so that a solution's w is w * scale in the caller's units."""
    y: np.ndarray
    rho: float | None = None
    scale: float = 1.0

    @property
    def lasso(self):
        return self.rho is not None

    @classmethod
    def scaled(cls, y, beta):
        """The program of labels y != 0 and weight beta (None: basis pursuit), scaled to ||y|| = 1."""
        ynorm = np.linalg.norm(y)
        return cls(y / ynorm, None if beta is None else beta / ynorm, ynorm)
