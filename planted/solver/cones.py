"""Second-order cone algebra and Nesterov-Todd scaling (the cones of the IPM, see ipm.py).

Arrays of shape (k, 1 + d) hold k points of the cone {(u0, u1): u0 >= ||u1||}: column 0 is
the "t" part. The Jordan product u o v = (u^T v, u0 v1 + v0 u1) has identity e = (1, 0), and
u is in the interior iff det(u) = u0^2 - ||u1||^2 > 0 with u0 > 0.
"""
import numpy as np


def jdot(u, v):
    """u0 v0 - u1^T v1: the bilinear form of det (det(u) = jdot(u, u))."""
    return u[:, 0] * v[:, 0] - np.einsum("ij,ij->i", u[:, 1:], v[:, 1:])


def det(u):
    """u0^2 - ||u1||^2, factored to avoid cancellation near the cone's boundary."""
    nu1 = np.linalg.norm(u[:, 1:], axis=1)
    # clipped at a relative 1e-300: rounding may put a point that is on the boundary to
    # working precision just outside
    return np.maximum((u[:, 0] - nu1) * (u[:, 0] + nu1), 1e-300 * u[:, 0] ** 2)


def jmul(u, v):
    """Jordan product u o v = (u^T v, u0 v1 + v0 u1)."""
    out = np.empty_like(u)
    out[:, 0] = np.einsum("ij,ij->i", u, v)
    out[:, 1:] = u[:, :1] * v[:, 1:] + v[:, :1] * u[:, 1:]
    return out


def jdiv(u, r):
    """x with u o x = r."""
    x = np.empty_like(r)
    x[:, 0] = (u[:, 0] * r[:, 0] - np.einsum("ij,ij->i", u[:, 1:], r[:, 1:])) / det(u)
    x[:, 1:] = (r[:, 1:] - x[:, :1] * u[:, 1:]) / u[:, :1]
    return x


def soc_step(u, du):
    """Largest a in [0, inf] with u + a du in the cone (u inside): smallest positive root of
    det(u + a du) = c + 2 b a + a a^2, det(v) = v0^2 - ||v1||^2 (the cone's two halves are
    separated by det = 0, so leaving the cone means crossing it)."""
    a = jdot(du, du)
    b = jdot(u, du)
    c = det(u)
    disc = b * b - a * c
    out = np.full(len(u), np.inf)
    real = disc >= 0
    sq = np.sqrt(np.where(real, disc, 0.0))
    q = -(b + np.copysign(sq, b))
    with np.errstate(divide="ignore", invalid="ignore"):
        r1 = np.where(real & (a != 0), q / a, np.inf)
        r2 = np.where(real & (q != 0), c / q, np.inf)
    for r in (r1, r2):
        out = np.where((r > 0) & (r < out), r, out)
    return out


def lin_step(u, du):
    """Largest a in [0, inf] with u + a du >= 0 (u > 0), over all entries."""
    with np.errstate(divide="ignore"):
        r = np.where(du < 0, -u / du, np.inf)
    return r.min() if r.size else np.inf


class SocScaling:
    """Nesterov-Todd scaling W of SOC pairs (s, z): W z = W^-1 s = lmbda, W symmetric,
    W = eta (2 v v^T - J), W^2 = eta^2 (2 wb wb^T - J), W^-2 = eta^-2 (2 J wb wb^T J - J)."""

    def __init__(self, s, z):
        sn = np.sqrt(det(s))
        zn = np.sqrt(det(z))
        sb = s / sn[:, None]
        zb = z / zn[:, None]
        gam = np.sqrt((1 + np.einsum("ij,ij->i", sb, zb)) / 2)
        zbJ = zb.copy()
        zbJ[:, 1:] *= -1
        self.wb = (sb + zbJ) / (2 * gam[:, None])
        self.eta = np.sqrt(sn / zn)
        self.v = self.wb.copy()
        self.v[:, 0] += 1
        self.v /= np.sqrt(2 * (self.wb[:, 0] + 1))[:, None]
        self.lmbda = self.mul(z)

    @staticmethod
    def _J(u):
        u = u.copy()
        u[:, 1:] *= -1
        return u

    def mul(self, u):      # W u
        return self.eta[:, None] * (2 * self.v * np.einsum("ij,ij->i", self.v, u)[:, None] - self._J(u))

    def mulinv(self, u):   # W^-1 u
        Jv = self._J(self.v)
        return (2 * Jv * np.einsum("ij,ij->i", Jv, u)[:, None] - self._J(u)) / self.eta[:, None]

    def sq(self, u):       # W^2 u
        w = self.wb
        return self.eta[:, None] ** 2 * (2 * w * np.einsum("ij,ij->i", w, u)[:, None] - self._J(u))

    def isq(self, u):      # W^-2 u
        Jw = self._J(self.wb)
        return (2 * Jw * np.einsum("ij,ij->i", Jw, u)[:, None] - self._J(u)) / self.eta[:, None] ** 2

    def isq_matrix(self):  # W^-2 as (k, 1+d, 1+d) matrices
        Jw = self._J(self.wb)
        m = Jw.shape[1]
        J = np.diag(np.r_[1.0, -np.ones(m - 1)])
        return (2 * Jw[:, :, None] * Jw[:, None, :] - J) / self.eta[:, None, None] ** 2
