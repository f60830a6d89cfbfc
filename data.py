"""Planted data of the neural-isometry experiments (reference.md section 1).

Every function takes a numpy Generator, so that a cell's data depend only on the
generator it is handed (see utils.cell_rng).
"""
import numpy as np

OPTX = {0: "Gaussian", 1: "cubic Gaussian", 2: "whitened Gaussian", 3: "whitened cubic Gaussian"}
OPTW_SKIP = {0: "Gaussian", 1: "smallest singular direction"}


def make_X(n, d, optx, rng):
    """X of reference §1: randn(n, d)/sqrt(n), optionally cubed and/or whitened.

    The cubic draw is G**3 / sqrt(15 n) (E g^6 = 15), so that its columns have the same
    expected norm as the Gaussian ones and a noise level sigma means the same for both.
    Whitening replaces X by U of its thin SVD (n >= d: orthonormal columns) or by V^T
    (n < d: orthonormal rows).
    """
    if optx not in OPTX:
        raise ValueError(f"unknown optx {optx}")
    G = rng.standard_normal((n, d))
    X = G**3 / np.sqrt(15 * n) if optx in (1, 3) else G / np.sqrt(n)
    if optx in (2, 3):
        U, _, Vt = np.linalg.svd(X, full_matrices=False)
        X = U if n >= d else Vt
    return X


def noise(n, sigma, rng):
    """z = sigma * randn(n) / sqrt(n), so that ||z|| is about sigma."""
    return sigma * rng.standard_normal(n) / np.sqrt(n)


def planted_linear(X, optw, rng):
    """The planted linear (skip) neuron w, unit norm.

    optw 0: Gaussian direction. optw 1: the right singular vector of X for the smallest of
    its min(n, d) singular values (thin SVD, so that X w != 0 also when n < d).
    """
    if optw == 0:
        w = rng.standard_normal(X.shape[1])
        return w / np.linalg.norm(w)
    if optw == 1:
        return np.linalg.svd(X, full_matrices=False)[2][-1]
    raise ValueError(f"unknown optw {optw}")


def skip_instance(n, d, optx, optw, sigma, rng):
    """One planted ReLU+skip instance: y = X w + z, and a noise-free test set of the same kind."""
    X = make_X(n, d, optx, rng)
    w = planted_linear(X, optw, rng)
    y = X @ w + noise(n, sigma, rng)
    X_test = make_X(n, d, optx, rng)
    return dict(X=X, w=w, y=y, X_test=X_test, y_test=X_test @ w)
