"""Planted points, recovery and distances, and the map from a convex solution back to a
network (docs/reference.md §3 'Back to a network', §4).

The planted points are Solutions too (status "planted"), so every metric compares two
objects of one kind.
"""
import numpy as np

from planted import patterns
from planted.normblocks import norm_blocks
from planted.solution import Solution

ZERO_TOL = 1e-10  # blocks at most this large are no neuron when mapping back to a network
REC_TOL = 1e-4    # rec of §4: entrywise agreement with the planted point to this


def _planted(W, w0=None):
    cost = np.linalg.norm(W, axis=0).sum() + (0.0 if w0 is None else np.linalg.norm(w0))
    return Solution(W=W, Wp=None, w0=w0, objective=float(cost), status="planted")


def fitted(X, M, sol):
    """X w0 + sum_i D_i X (w_i - w_i'): the convex ReLU model's fitted values."""
    f = (M * (X @ sol.difference)).sum(1)
    return f if sol.w0 is None else f + X @ sol.w0


def norm_fitted(B, sol):
    """sum_i U_i (w_i - w_i'): the convex normalization model's fitted values."""
    return B.apply(sol.difference.T)


# ----- the ReLU + skip programs: one planted linear neuron ---------------------------------

def planted_skip_solution(w, P, d):
    """The planted point in convex variables: w0 = w, every ReLU block 0."""
    return _planted(np.zeros((d, P)), np.asarray(w, float))


def skip_recovered(sol, w, tol=REC_TOL):
    """rec of §4: the skip block equals the planted w and every ReLU block is 0, to tol.

    Where the solver decides whether the optimum is a single point (the fast solver), a tie
    is no recovery even if the returned point happens to be the planted one.
    """
    if sol.unique is False:
        return False
    return bool(np.allclose(sol.w0, w, rtol=0, atol=tol) and np.all(np.abs(sol.blocks) <= tol))


def skip_distances(sol, inst):
    """dis_abs = ||w0 - w|| and dis_test = ||f(X_test) - y_test|| of the mapped network (§4)."""
    f = network_output(to_network(sol), inst["X_test"])
    return dict(dis_abs=float(np.linalg.norm(sol.w0 - inst["w"])),
                dis_test=float(np.linalg.norm(f - inst["y_test"])))


def to_network(sol):
    """A two-layer ReLU network (with skip neuron when sol has one) of a convex solution.

    Block w_i becomes the neuron with input weights w_i/sqrt||w_i|| and output weight
    +sqrt||w_i|| (-sqrt||w_i'|| for w_i'). Returns dict(U, a, w0): U is d x m, a is m.
    """
    blocks = [sol.W] + ([] if sol.Wp is None else [sol.Wp])
    U, a = [], []
    for B, s in zip(blocks, (1.0, -1.0)):
        norms = np.linalg.norm(B, axis=0)
        keep = norms > ZERO_TOL
        root = np.sqrt(norms[keep])
        U.append(B[:, keep] / root)
        a.append(s * root)
    return dict(U=np.concatenate(U, 1), a=np.concatenate(a), w0=sol.w0)


def network_output(net, X):
    """f(X) = X w0 + (X U)_+ a, with real ReLUs."""
    f = np.maximum(X @ net["U"], 0) @ net["a"]
    return f if net["w0"] is None else f + X @ net["w0"]


# ----- planted ReLU neurons: plain network (§3d) and normalization layer (§3e) -------------

def planted_plain_solution(M, W, cols):
    """The planted point of the plain programs: block s_j holds w_j, every other block is 0.

    D_{s_j} X w_j = (X w_j)_+, so this is feasible for the relaxed and exact programs (§3d);
    neurons sharing a pattern share its block.
    """
    B = np.zeros((W.shape[0], M.shape[1]))
    np.add.at(B.T, cols, W.T)
    return _planted(B)


def planted_norm_solution(B, W, cols):
    """The planted point of the normalization programs (§3e): neuron j sits at its pattern
    s_j with w_hat_j = S_{s_j} w_j / ||S_{s_j} w_j|| (unit: U_{s_j} w_hat_j is the unit vector
    (X w_j)_+ / ||(X w_j)_+||), every other block 0. Neurons sharing a pattern add up."""
    Z = np.zeros((B.r, B.P))
    hat = np.einsum("jrd,dj->rj", B.s_blocks(cols), W)
    np.add.at(Z.T, cols, (hat / np.linalg.norm(hat, axis=0)).T)
    return _planted(Z)


def blocks_recovered(sol, planted, tol=REC_TOL):
    """rec of §4 for planted ReLU neurons: every block within tol (entrywise) of the planted
    point (w_{s_j} = planted block, all others 0); the blocks w_i' of the cone forms all 0.
    A tie (the fast solver's unique False) is no recovery."""
    ok = sol.unique is not False and np.all(np.abs(sol.W - planted.W) <= tol)
    return bool(ok and (sol.Wp is None or np.all(np.abs(sol.Wp) <= tol)))


def planted_distance(sol, planted, cols):
    """dis_abs of §4: sqrt(sum_j ||block_{s_j} - planted block||^2), block = w_i - w_i'."""
    s = np.unique(cols)
    return float(np.linalg.norm(sol.difference[:, s] - planted.W[:, s]))


def plain_distances(sol, planted, cols, inst):
    """dis_abs and dis_test (the solution as a plain ReLU network, real ReLUs) of §4."""
    f = network_output(to_network(sol), inst["X_test"])
    return dict(dis_abs=planted_distance(sol, planted, cols),
                dis_test=float(np.linalg.norm(f - inst["y_test"])))


def to_norm_network(sol, B):
    """The normalization-layer network of a convex solution (§3e, 'Back to a network').

    Block w_i becomes the neuron with first-layer direction T_i w_i and
    alpha_i = gamma_i = sqrt||w_i|| (alpha_i = -sqrt||w_i'|| for w_i'): on the cone,
    (X u_i)_+ = U_i w_i, whose norm is ||w_i||, so the neuron outputs U_i w_i.
    Returns dict(U (d x m), a, gamma).
    """
    blocks = [sol.W] + ([] if sol.Wp is None else [sol.Wp])
    U, a, g = [], [], []
    for Z, sign in zip(blocks, (1.0, -1.0)):
        norms = np.linalg.norm(Z, axis=0)
        keep = np.flatnonzero(norms > ZERO_TOL)
        root = np.sqrt(norms[keep])
        U.append(np.einsum("pdr,rp->dp", B.T[keep], Z[:, keep]))
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


# ----- the set-up of one planted-ReLU cell ------------------------------------------------

def plain_setup(inst, rng, num=None):
    """Patterns (planted first, patterns.relu_patterns), planted columns and planted point of
    the plain programs for a data.plain_instance: (M, cols, planted)."""
    M = patterns.relu_patterns(inst["X"], inst["W"], rng, num)
    cols = patterns.planted_columns(M, inst["X"], inst["W"])
    return M, cols, planted_plain_solution(M, inst["W"], cols)


def norm_setup(inst, rng, num=None):
    """NormBlocks of the patterns (planted first), planted columns and planted point of the
    normalization programs for a data.norm_instance: (B, cols, planted)."""
    B = norm_blocks(inst["X"], patterns.relu_patterns(inst["X"], inst["W"], rng, num))
    cols = patterns.planted_columns(B.M, inst["X"], inst["W"])
    return B, cols, planted_norm_solution(B, inst["W"], cols)
