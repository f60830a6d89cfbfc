"""Planted data of the neural-isometry experiments (docs/reference.md §1).

Every function takes a numpy Generator, so that a cell's data depend only on the
generator it is handed (see utils.cell_rng).
"""
import numpy as np

OPTX = {0: "Gaussian", 1: "cubic Gaussian", 2: "whitened Gaussian", 3: "whitened cubic Gaussian",
        4: "Rademacher", 5: "sparse Bernoulli-Gaussian", 6: "Student-t", 7: "correlated Gaussian",
        8: "mean-shifted Gaussian"}
SIGN_SYMMETRIC = (0, 1, 2, 3, 4, 5, 6, 7)  # X and -X equal in distribution; not 8
DENSITY = 0.1    # optx 5: P(entry != 0)
T_DOF = 3        # optx 6: degrees of freedom (variance T_DOF / (T_DOF - 2) = 3)
RHO = 0.5        # optx 7: column covariance RHO^|i-j|


def unit_entries(n, d, optx, rng):
    """An n x d draw of kind optx 4..8 before the 1/sqrt(n) of make_X, scaled so that its
    entries have E x^2 = 1 as a standard normal's (optx 8: 1 + 1/d, the mean's share).

    4: +-1 with probability 1/2 each. 5: B g / sqrt(DENSITY), B ~ Bernoulli(DENSITY).
    6: t / sqrt(3), t ~ Student-t(3). 7: rows L g with L L^T = Sigma, Sigma_ij = RHO^|i-j|
    (unit diagonal). 8: rows g + mu, mu = 1_d / sqrt(d), so ||mu|| = 1.
    """
    if optx == 4:
        return rng.choice((-1.0, 1.0), size=(n, d))
    if optx == 5:
        G = rng.standard_normal((n, d))
        return np.where(rng.random((n, d)) < DENSITY, G, 0.0) / np.sqrt(DENSITY)
    if optx == 6:
        return rng.standard_t(T_DOF, size=(n, d)) / np.sqrt(T_DOF / (T_DOF - 2))
    if optx == 7:
        i = np.arange(d)
        L = np.linalg.cholesky(RHO ** np.abs(i[:, None] - i[None, :]))
        return rng.standard_normal((n, d)) @ L.T
    if optx == 8:
        return rng.standard_normal((n, d)) + 1 / np.sqrt(d)
    raise ValueError(f"unknown optx {optx}")


def make_X(n, d, optx, rng):
    """X of §1: randn(n, d)/sqrt(n), optionally cubed and/or whitened, or one of the
    kinds of `unit_entries` divided by sqrt(n).

    The cubic draw is G**3 / sqrt(15 n) (E g^6 = 15), so that its columns have the same
    expected norm as the Gaussian ones and a noise level sigma means the same for both;
    the kinds 4..7 are scaled to the same end (E X_ij^2 = 1/n; optx 8: (1 + 1/d)/n).
    Whitening replaces X by U of its thin SVD (n >= d: orthonormal columns) or by V^T
    (n < d: orthonormal rows).
    """
    if optx not in OPTX:
        raise ValueError(f"unknown optx {optx}")
    if optx >= 4:
        return unit_entries(n, d, optx, rng) / np.sqrt(n)
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


# ----- planted ReLU neurons: normalization-layer and plain-ReLU experiments -----------------


class NeverActive(ValueError):
    """No draw gave every planted neuron an active sample (e.g. (u, -u) with n = 1)."""


def relu_undefined(n, d, k, optw, n_ge_d):
    """Why a planted-ReLU cell has no program (a status 'undefined: ...'), or None.

    The normalization-layer programs need n >= d (§1: `n_ge_d`); e_1..e_k needs
    k <= d; the pair (u, -u) needs two samples, one on each side.
    """
    if n_ge_d and n < d:
        return "n < d"
    if optw == 1 and k > d:
        return "k > d"
    if optw == 2 and n < 2:
        return "n < 2"
    return None


def planted_relu(d, k, optw, rng):
    """d x k planted ReLU neurons with unit columns (§1).

    optw 0: Gaussian columns. optw 1: e_1, ..., e_k. optw 2: (u, -u), u Gaussian (k = 2).
    """
    if optw == 0:
        W = rng.standard_normal((d, k))
    elif optw == 1:
        if k > d:
            raise ValueError(f"optw 1 plants e_1..e_k: needs k <= d, got k={k}, d={d}")
        W = np.eye(d, k)
    elif optw == 2:
        if k != 2:
            raise ValueError(f"optw 2 plants the pair (u, -u): needs k = 2, got k={k}")
        u = rng.standard_normal(d)
        W = np.column_stack([u, -u])
    else:
        raise ValueError(f"unknown optw {optw}")
    return W / np.linalg.norm(W, axis=0)


def relu_labels(X, W, normalize):
    """sum_j (X w_j)_+, each term divided by ||(X w_j)_+||_2 when `normalize` (§1)."""
    H = np.maximum(X @ W, 0)
    if normalize:
        H = H / np.linalg.norm(H, axis=0)
    return H.sum(1)


def all_active(X, W):
    """Is every planted neuron active on some sample, i.e. (X w_j)_+ != 0 for all j?"""
    return bool(np.all((X @ W > 0).any(0)))


def relu_instance(n, d, k, optx, optw, sigma, rng, normalize, max_tries=1000):
    """One planted-ReLU instance: k neurons W, labels of relu_labels plus noise, a test set.

    X, W and X_test are redrawn together until every planted neuron is active on both X and
    X_test: with normalization a never-active neuron has no label (0/0, §1); for
    the plain network (where §1 asks no redraw) a never-active neuron has no pattern, so it
    is redrawn too (probability <= 2k 2^-n per draw). `redraws` counts the rejected draws.
    """
    for tries in range(max_tries):
        X = make_X(n, d, optx, rng)
        W = planted_relu(d, k, optw, rng)
        X_test = make_X(n, d, optx, rng)
        if all_active(X, W) and all_active(X_test, W):
            break
    else:
        raise NeverActive(f"some planted neuron was never active in {max_tries} draws (n={n}, d={d})")
    y = relu_labels(X, W, normalize) + noise(n, sigma, rng)
    return dict(X=X, W=W, y=y, X_test=X_test, y_test=relu_labels(X_test, W, normalize),
                redraws=tries)


def norm_instance(n, d, k, optx, optw, sigma, rng):
    """Normalization-layer labels: y = sum_j (X w_j)_+ / ||(X w_j)_+|| + z."""
    return relu_instance(n, d, k, optx, optw, sigma, rng, normalize=True)


def plain_instance(n, d, k, optx, optw, sigma, rng):
    """Plain ReLU labels: y = sum_j (X w_j)_+ + z."""
    return relu_instance(n, d, k, optx, optw, sigma, rng, normalize=False)


def relu_cell(args, n, d, rng, normalize, n_ge_d=None):
    """The instance of one planted-ReLU cell, or why the cell has none: (inst, None) or
    (None, 'undefined: ...'). Uses args.neu, optx, optw, sigma. n_ge_d (default: normalize,
    the normalization-layer programs) marks cells with n < d undefined."""
    why = relu_undefined(n, d, args.neu, args.optw, normalize if n_ge_d is None else n_ge_d)
    if why is None:
        try:
            return relu_instance(n, d, args.neu, args.optx, args.optw, args.sigma, rng, normalize), None
        except NeverActive as e:
            why = str(e)
    return None, f"undefined: {why}"
